"""A one-second schedule across a Sentinel failover (app/jobs/ticker.py): no tick runs twice, and no
gap between ticks run is longer than a period plus the failover.

Every run is read at the SMTP sink, outside Redis: the schedule sends an email whose Message-ID is
its job id, ``<schedule id>-<tick>``. Run with ``-s`` for the figures:
``.venv/bin/python -m pytest -s -m ha tests/ha/test_schedule_failover.py``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime

import pytest
import requests

from ..conftest import wait_until
from .harness import SCHEDULE_BOUND_S, TERMINAL, answer_through_failover, sentinel_stack

PERIOD = 1


def _moment(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _jobs_of(base: str, schedule_id: str) -> list[dict]:
    jobs, url = [], "/jobs?limit=200"
    while url:
        page = answer_through_failover(lambda url=url: requests.get(f"{base}{url}", timeout=10)).json()
        jobs += [job for job in page["jobs"] if job["schedule_id"] == schedule_id]
        url = page["next"]
    return jobs


@pytest.mark.integration
@pytest.mark.ha
@pytest.mark.timeout(200)
def test_a_one_second_schedule_across_a_failover_runs_each_tick_at_most_once(sentinel_topology, tmp_path, smtp):
    topo = sentinel_topology
    stack = sentinel_stack(topo, tmp_path, SMTP_URL=smtp.url)  # WAIT for 1 replica, the default under Sentinel
    try:
        stack.start_web()
        workers = [stack.start_worker(), stack.start_worker()]
        primary = topo.primary.client()
        wait_until(lambda: len(primary.smembers("rq:workers")) == 2, timeout=30, what="two workers")
        body = {"every_seconds": PERIOD, "job": {"type": "send_email", "to": "ha@example.com", "subject": "t", "body": "t"}}
        created = stack.session_post("/schedules", json=body)
        assert created.status_code == 201, created.text
        schedule = created.json()

        def sent() -> Counter:
            return Counter(message["Message-ID"].strip("<>").partition("@")[0] for message in list(smtp.messages))

        wait_until(lambda: len(sent()) >= 5, timeout=30, what="five ticks before the kill")
        killed_at, killed_wall = time.monotonic(), time.time()
        topo.primary.kill()
        topo.link.close()
        wait_until(lambda: topo.master_port() == topo.replica.port, timeout=40, interval=0.05, what="the failover")
        promoted_at = time.monotonic()
        # The old primary comes back as a replica of the new one (WAIT 1 needs a replica again).
        topo.primary.start_server("--replicaof", "127.0.0.1", str(topo.replica.port))
        new_primary = topo.replica.client()
        wait_until(lambda: new_primary.info("replication")["connected_slaves"] >= 1, timeout=30, what="a replica again")

        after_kill = lambda: [tick for tick in sent() if int(tick.rpartition("-")[2]) > killed_wall]  # noqa: E731
        wait_until(lambda: len(after_kill()) >= 8, timeout=60, what="eight ticks after the failover")
        paused = answer_through_failover(
            lambda: requests.patch(f"{stack.base}{schedule['links']['self']}", json={"enabled": False}, timeout=10)
        )
        assert paused.status_code == 200 and paused.json()["enabled"] is False, paused.text
        wait_until(
            lambda: all(job["status"] in TERMINAL for job in _jobs_of(stack.base, schedule["id"])),
            timeout=60,
            what="every job of the schedule to end",
        )
        jobs = {job["id"]: job for job in _jobs_of(stack.base, schedule["id"])}
        emails = sent()

        # No tick ran twice: one email per job id at most (the id is the tick), and on the new
        # primary one enqueue per job.
        twice = {job_id: count for job_id, count in emails.items() if count > 1}
        assert not twice, twice
        assert int(new_primary.hget("rq:offload:metrics", "enqueued:send_email")) == len(jobs)
        ran = sorted({int(job_id.rpartition("-")[2]) for job_id in set(emails) | set(jobs)})
        gaps = [later - tick for tick, later in zip(ran, ran[1:], strict=False)]
        claimed = sorted((_moment(job["created_at"]), int(job_id.rpartition("-")[2])) for job_id, job in jobs.items())
        first_claim_after_kill = min(at for at, _ in claimed if at > killed_wall) - killed_wall
        catch_ups = [tick for at, tick in claimed if at - tick > PERIOD]
        figures = {
            "failover_s": round(promoted_at - killed_at, 2),
            "first_claim_after_kill_s": round(first_claim_after_kill, 2),
            "ticks_run": len(ran),
            "emails": sum(emails.values()),
            "jobs_on_new_primary": len(jobs),
            "ticks_without_job_on_new_primary": len(set(emails) - set(jobs)),
            "max_gap_s": max(gaps),
            "gaps_over_one_period": [gap for gap in gaps if gap > PERIOD],
            "catch_up_runs": len(catch_ups),
            "job_outcomes": dict(Counter(job["status"] for job in jobs.values())),
            "claims_not_replicated_in_time": stack.logs().count("not yet on a replica"),
        }
        print("\nSchedule across a failover:", json.dumps(figures))
        assert all(worker.poll() is None for worker in workers)
        # No gap longer than a period plus the failover (and the scheduler's reconnection, as for delayed jobs).
        assert max(gaps) <= PERIOD + (promoted_at - killed_at) + SCHEDULE_BOUND_S, figures
        # The outage cost one catch-up run, not a burst of the missed ticks.
        assert len(catch_ups) <= 1, figures
        assert not set(emails) - set(jobs), "a tick run before the kill is missing on the new primary"
    finally:
        stack.stop()
