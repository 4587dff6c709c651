"""Sentinel failover with real servers: under load, and for the scheduler's delayed jobs.

Run with ``-s`` to see the figures they print (docs/ha.md explains them):
``.venv/bin/python -m pytest -s -m ha tests/ha/test_sentinel.py``.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import requests
from rq import Worker

from ..conftest import wait_until
from .harness import (
    SCHEDULE_BOUND_S,
    TERMINAL,
    Load,
    final_states,
    lateness,
    sentinel_stack,
)


@pytest.mark.integration
@pytest.mark.ha
@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    "wait_replicas",
    [
        pytest.param(1, id="WAIT-1"),  # JobQueue.submit waits: tests/jobs/test_store.py checks it
        pytest.param(0, id="no-WAIT"),
    ],
)
def test_sentinel_failover_under_load(sentinel_topology, tmp_path, wait_replicas):
    """SIGKILL the primary while two clients submit jobs: the API answers 503 with Retry-After
    only during the failover and then accepts again, the same workers go on against the new
    primary, and every accepted job ends; how many are lost is measured.

    The replica's link is stalled for half a second before the kill (see StallableLink), so
    the primary dies holding half a second of writes the replica never got. With WAIT 1 (the
    default under Sentinel) those submissions were never answered 202, so nothing accepted is
    lost; without WAIT, the jobs accepted in that half second are gone.

    The killed primary is started again once the failover is over, as a replica of the new
    primary (as docker-compose.ha.yml's start script does): with one replica and WAIT 1, the
    new primary can confirm submissions only once it has a replica again.
    """
    topo = sentinel_topology
    stack = sentinel_stack(
        topo,
        tmp_path,
        REDIS_WAIT_REPLICAS=str(wait_replicas),
        DEFAULT_MAX_RETRIES="2",
        RETRY_BACKOFF_BASE_SECONDS="1",
        # The limiter on the same Sentinel topology, with limits nobody reaches.
        RATE_LIMIT_ENABLED="1",
        RATE_LIMIT_SUBMIT="100000/second",
        RATE_LIMIT_READ="100000/second",
    )
    load = Load(stack.base)
    try:
        stack.start_web()
        workers = [stack.start_worker(), stack.start_worker()]
        wait_until(lambda: len(topo.primary.client().smembers("rq:workers")) == 2, timeout=30, what="two workers")

        load.start()
        started = time.monotonic()
        wait_until(lambda: load.accepted_since(started) >= 40, timeout=30, what="jobs accepted before the kill")
        time.sleep(1.0)

        topo.link.stall()
        stalled_at = time.monotonic()
        time.sleep(0.5)
        killed_at = time.monotonic()
        topo.primary.kill()
        topo.link.close()  # its address is the dead primary's: it must not lead to the restarted node
        wait_until(lambda: topo.master_port() == topo.replica.port, timeout=40, interval=0.05, what="the failover")
        promoted_at, promoted_wall = time.monotonic(), time.time()

        # The old primary comes back, as a replica of the new one.
        topo.primary.start_server("--replicaof", "127.0.0.1", str(topo.replica.port))
        new_primary = topo.replica.client()
        wait_until(lambda: new_primary.info("replication")["connected_slaves"] >= 1, timeout=30, what="a replica again")
        rejoined_at = time.monotonic()

        # Accepting again: 3 s of nothing but 202s, from every gunicorn process.
        wait_until(
            lambda: time.monotonic() - max(load.last_refusal(), promoted_at) > 3 and load.accepted_since(promoted_at) > 20,
            timeout=40,
            what="the API to accept jobs again",
        )
        # The rate limiter follows the failover too: its counters (on the new primary) count
        # submissions made after the promotion. A fixed window of one second is a counter that
        # lives one second from its first hit, so one found there more than a second after the
        # promotion was written on the new primary.
        def limited_since_promotion() -> bool:
            if time.time() < promoted_wall + 1.5:
                return False
            keys = new_primary.scan_iter(match="*rq:offload:ratelimit*submit_job*/1/second")
            return any(new_primary.ttl(key) >= 0 for key in keys)

        wait_until(limited_since_promotion, timeout=10, what="the limiter's window on the new primary")
        load.stop()
        stopped_at = time.monotonic()

        attempts = sorted(load.attempts, key=lambda attempt: attempt.sent)
        refused = [attempt for attempt in attempts if attempt.status != 202]
        accepted = [attempt for attempt in attempts if attempt.status == 202]

        # 1. Before the incident, everything was accepted; every refusal is a 503 with Retry-After.
        assert all(attempt.status == 202 for attempt in attempts if attempt.answered < stalled_at)
        assert refused, "the kill went unnoticed"
        wrong = [attempt for attempt in refused if attempt.status != 503 or not attempt.retry_after]
        assert not wrong, wrong[:5]
        # 2. ...and only during the failover: none before the stall, none in the last 3 s.
        assert min(attempt.answered for attempt in refused) >= stalled_at
        assert max(attempt.answered for attempt in refused) < stopped_at - 3
        # 3. The same worker processes serve the new primary.
        assert all(worker.poll() is None for worker in workers)
        # (A worker that lost Redis registers again under a new name; the old name lapses, and
        # may leave a hash without a pid behind, written after its contents were lost.)
        pids = {worker.pid for worker in Worker.all(connection=new_primary)} - {None}
        assert pids == {worker.pid for worker in workers}, pids
        # 4. Every accepted job ends; the lost ones are counted.
        # (A job whose attempt the failover broke is retried by the scheduler, which keeps its
        # locks through the failover: see test_delayed_jobs_run_on_time_after_a_failover.)
        states = final_states(stack.base, [attempt.job_id for attempt in accepted], timeout=45)
        drained_at = time.monotonic()
        outcome = Counter(states.values())
        lost = [attempt for attempt in accepted if states[attempt.job_id] == "lost"]
        not_ended = {job_id: state for job_id, state in states.items() if state not in TERMINAL | {"lost"}}
        assert not not_ended, not_ended
        # 5. ?wait= is woken by the job-ended event, so the listener thread followed the
        #    failover too (its fallback, a re-read every 2 s, would be slower); and the
        #    dashboard reads the new primary.
        waits = []
        for _ in range(3):
            job_id = stack.post({"type": "sleep", "seconds": 0.2, "queue": "high"}).json()["id"]
            began = time.monotonic()
            assert stack.get(f"/jobs/{job_id}?wait=10").json()["status"] == "finished"
            waits.append(time.monotonic() - began)
        assert min(waits) < 1.5, waits
        dashboard = stack.get("/dashboard/0/data/workers.json")
        assert dashboard.status_code == 200, dashboard.text
        assert {worker["pid"] for worker in dashboard.json()["workers"]} - {None} == {worker.pid for worker in workers}

        figures = {
            "wait_replicas": wait_replicas,
            "load_s": round(stopped_at - started, 1),
            "drain_s": round(drained_at - stopped_at, 1),
            "failover_s": round(promoted_at - killed_at, 2),
            "replica_back_s": round(rejoined_at - killed_at, 2),
            "first_503_after_kill_s": round(min(a.answered for a in refused) - killed_at, 2),
            "last_503_after_kill_s": round(max(a.answered for a in refused) - killed_at, 2),
            "refused_503": len(refused),
            "accepted": len(accepted),
            "accepted_during_stall": sum(1 for a in accepted if a.sent >= stalled_at and a.answered < killed_at),
            "held_by_link_bytes": topo.link.held_bytes,
            "lost": len(lost),
            "outcomes": dict(outcome),
            "refusals": dict(Counter(attempt.detail[:70] for attempt in refused)),
        }
        print("\nHA figures:", json.dumps(figures))

        # Lost jobs are the ones answered 202 while the link was stalled (or just before: the
        # link's thread may see a write a little after its answer left), never others.
        assert all(stalled_at - 0.5 <= attempt.answered <= killed_at + 0.05 for attempt in lost), lost[:5]
        if wait_replicas:
            assert not lost, f"{len(lost)} accepted jobs lost with WAIT {wait_replicas}"
            assert figures["accepted_during_stall"] == 0
        else:
            assert lost, "no job was accepted during the stall: the test proved nothing"
        assert outcome["failed"] == 0, {job_id: s for job_id, s in states.items() if s == "failed"}
    finally:
        load.stop()
        stack.stop()


@pytest.mark.integration
@pytest.mark.ha
@pytest.mark.timeout(120)
def test_delayed_jobs_run_on_time_after_a_failover(sentinel_topology, tmp_path):
    """RQ's scheduler holds a lock per queue (61 s) that is replicated to the replica; before
    OffloadScheduler, the scheduler died with its connection and a worker that had to start
    over got a scheduler of another name, so the new primary's delayed jobs waited out the lock
    (~61 s). Now a job delayed across the failover, and one delayed after it, each start within
    SCHEDULE_BOUND_S of when they were due."""
    topo = sentinel_topology
    stack = sentinel_stack(topo, tmp_path, REDIS_WAIT_REPLICAS="0")  # submit as soon as the new primary is named
    try:
        stack.start_web()
        workers = [stack.start_worker(), stack.start_worker()]
        primary = topo.primary.client()
        wait_until(lambda: len(primary.smembers("rq:workers")) == 2, timeout=30, what="two workers")
        wait_until(lambda: primary.exists("rq:scheduler-lock:default"), timeout=30, what="a scheduler's lock")
        holder = primary.get("rq:scheduler-lock:default").decode()

        # Both workers busy when the primary dies: a job in hand whose end cannot be written
        # makes RQ's worker leave its loop, and run() start it over under a new worker name.
        for _ in range(2):
            assert stack.post({"type": "sleep", "seconds": 3}).status_code == 202
        across_delay = 9
        across = stack.post({"type": "count_words", "text": "due after the failover", "delay_seconds": across_delay})
        assert across.status_code == 202 and across.json()["status"] == "scheduled", across.text
        wait_until(lambda: topo.replica.client().exists(f"rq:job:{across.json()['id']}"), what="the job on the replica")
        time.sleep(1.0)

        killed_at = time.monotonic()
        topo.primary.kill()
        topo.link.close()
        wait_until(lambda: topo.master_port() == topo.replica.port, timeout=40, interval=0.05, what="the failover")
        promoted_at = time.monotonic()
        new_primary = topo.replica.client()
        # The lock came over with the replication stream, still naming the dead scheduler's owner.
        inherited_ttl = new_primary.ttl("rq:scheduler-lock:default")

        def accepted() -> requests.Response | None:
            try:
                response = stack.post({"type": "count_words", "text": "due soon after", "delay_seconds": 1})
            except requests.RequestException:
                return None
            return response if response.status_code == 202 else None

        after_delay = 1
        after = wait_until(accepted, timeout=30, interval=0.1, what="a submission on the new primary")
        first_accept_s = time.monotonic() - killed_at

        jobs = {}
        for name, response, delay in (("across", across, across_delay), ("after", after, after_delay)):
            job = stack.wait_for(response.json()["id"], timeout=SCHEDULE_BOUND_S + delay + 10)
            assert job["status"] == "finished", (name, job)
            jobs[name] = round(lateness(job, delay), 2)
        figures = {
            "failover_s": round(promoted_at - killed_at, 2),
            "first_202_after_kill_s": round(first_accept_s, 2),
            "lock_ttl_inherited_s": inherited_ttl,
            "late_across_failover_s": jobs["across"],
            "late_after_failover_s": jobs["after"],
            "lock_holder_now": (new_primary.get("rq:scheduler-lock:default") or b"").decode() == holder,
            "workers_started_over": stack.logs().count("left its loop"),
            "scheduler_outages_survived": stack.logs().count("lost Redis ("),
        }
        print("\nScheduler after failover:", json.dumps(figures))
        assert all(worker.poll() is None for worker in workers)
        assert jobs["across"] < SCHEDULE_BOUND_S and jobs["after"] < SCHEDULE_BOUND_S, figures
    finally:
        stack.stop()
