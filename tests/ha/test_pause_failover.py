"""A paused queue stays paused across a Sentinel failover (app/jobs/queues_admin.py): the paused
set is written, like a job, to a replica before the answer, so the promoted replica has it and
the workers, reconnected to it, still pass the queue by; resuming it on the new primary runs the
job that waited (issue 18, item 1)."""

from __future__ import annotations

import pytest
import requests

from ..conftest import wait_until
from .harness import answer_through_failover, sentinel_stack


def _ended(base: str, job_id: str) -> dict:
    def done():
        body = answer_through_failover(lambda: requests.get(f"{base}/jobs/{job_id}?wait=5", timeout=10)).json()
        return body if body["status"] in ("finished", "failed", "canceled", "stopped") else None

    return wait_until(done, timeout=60, interval=0.2, what=f"job {job_id} to end")


@pytest.mark.integration
@pytest.mark.ha
@pytest.mark.timeout(200)
def test_a_paused_queue_stays_paused_across_a_failover(sentinel_topology, tmp_path):
    topo = sentinel_topology
    stack = sentinel_stack(topo, tmp_path)  # WAIT for 1 replica, the default under Sentinel
    try:
        stack.start_web()
        worker = stack.start_worker()
        primary = topo.primary.client()
        wait_until(lambda: len(primary.smembers("rq:workers")) == 1, timeout=30, what="a worker")
        paused = stack.session_post("/queues/default/pause")
        assert paused.status_code == 200 and paused.json()["paused"] is True, paused.text
        held = stack.post({"type": "noop"}).json()["id"]

        topo.primary.kill()
        topo.link.close()
        wait_until(lambda: topo.master_port() == topo.replica.port, timeout=40, interval=0.05, what="the failover")
        topo.primary.start_server("--replicaof", "127.0.0.1", str(topo.replica.port))
        new_primary = topo.replica.client()
        wait_until(lambda: new_primary.info("replication")["connected_slaves"] >= 1, timeout=30, what="a replica again")

        # The worker, now on the new primary, runs a job on low (after default in its order) and
        # still leaves the held one where it is.
        passed = answer_through_failover(lambda: requests.post(f"{stack.base}/jobs", json={"type": "noop", "queue": "low"}, timeout=10))
        assert _ended(stack.base, passed.json()["id"])["status"] == "finished"
        assert answer_through_failover(lambda: requests.get(f"{stack.base}/jobs/{held}", timeout=10)).json()["status"] == "queued"
        default = answer_through_failover(lambda: requests.get(f"{stack.base}/queues/default", timeout=10)).json()
        assert default["paused"] is True and default["queued"] == 1, default

        resumed = answer_through_failover(lambda: requests.post(f"{stack.base}/queues/default/resume", timeout=10))
        assert resumed.status_code == 200 and resumed.json()["paused"] is False
        assert _ended(stack.base, held)["status"] == "finished"
        assert worker.poll() is None
    finally:
        stack.stop()
