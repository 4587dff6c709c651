"""An idle fast worker, woken by a submission, takes the job and records its start in one round
trip (the dequeue script, as a busy worker's), where it took the job with one script and recorded
its start in a transaction after it: one fsynced round trip more on the path of every job a
waiting client submits (issue 26, the latency target). Counted on a real Valkey."""

from __future__ import annotations

import time

from ..conftest import wait_until


def test_a_woken_worker_takes_and_starts_its_job_in_one_round_trip(stack_factory, clean_valkey):
    # A long beat: maintenance runs once, at the start, not between the jobs counted.
    stack = stack_factory(workers=1, WORKER_CLASS="fast", JOB_HEARTBEAT_SECONDS="60")
    assert stack.wait_for(stack.post({"type": "noop"}).json()["id"])["status"] == "finished"
    client = clean_valkey.client()

    def execs() -> int:
        return client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)

    jobs = 10
    before = execs()
    for _ in range(jobs):
        time.sleep(0.3)  # the worker back to waiting on the wake-up list
        job_id = stack.post({"type": "noop"}).json()["id"]
        wait_until(lambda job_id=job_id: stack.get(f"/jobs/{job_id}?wait=5").json()["status"] == "finished", what="the job")
    spent = execs() - before
    # Per job: the idle heartbeat before the wait, and the outcome. Taken and started in the
    # dequeue script: no start transaction (with it, 3 a job).
    assert spent <= 2 * jobs + 3, f"{spent} MULTI/EXEC for {jobs} jobs, each submitted to an idle worker"
