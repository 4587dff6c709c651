"""The fast worker (``app/fastworker.py``, ``WORKER_CLASS=fast``) keeps the default worker's
promises: every fault-injection test, and the worker-facing integration and lifecycle tests,
run again here with the fast worker; then a few tests of its own (one horse for many jobs,
three round trips a job, the stored payload kept as it was).

Workers start through ``bench/launch_worker.py``, which is ``worker.py`` with ``WORKER_CLASS``
honoured whether or not ``app.workers.build_worker`` reads the setting yet."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from . import test_faults, test_integration, test_lifecycle
from .conftest import ROOT, Stack, wait_until
from .test_lifecycle import receiver  # noqa: F401 - a fixture the re-run lifecycle tests use

pytestmark = [pytest.mark.integration, pytest.mark.fastworker]

# The same tests, collected again in this module so that the stack_factory below serves them.
_RERUN = {
    test_faults: [name for name in dir(test_faults) if name.startswith("test_")],
    test_integration: [
        "test_count_words_round_trip_over_http",
        "test_email_arrives_at_the_smtp_server",
        "test_smtp_refusal_fails_the_job_with_an_smtp_error",
        "test_wait_returns_as_soon_as_the_job_ends",
        "test_worker_refuses_a_function_that_is_not_an_offload_task",
        "test_priority_queues_are_served_high_first",
        "test_worker_warm_shutdown_finishes_the_job",
        "test_worker_waits_for_redis_and_reconnects",
        "test_dashboard_shows_queues_and_workers_with_json_serializer",
    ],
    test_lifecycle: [
        "test_delayed_job_is_scheduled_then_runs_on_time",
        "test_retries_with_backoff_count_attempts_and_keep_the_last_error",
        "test_timeout_fails_the_attempt_and_says_so",
        "test_cancel_a_running_job_stops_it",
        "test_progress_is_reported_while_count_words_runs",
        "test_callback_is_signed_and_retried_until_delivered",
        "test_callback_of_a_failed_job",
    ],
}
for _module, _names in _RERUN.items():
    for _name in _names:
        if hasattr(_module, _name):
            globals()[f"{_name}__fast"] = getattr(_module, _name)


class FastStack(Stack):
    def start_worker(self, *args: str) -> subprocess.Popen:
        log = self._log(f"worker-{len(self.workers)}")
        process = subprocess.Popen(
            [sys.executable, "bench/launch_worker.py", *args],
            cwd=ROOT,
            env={**self.env, "WORKER_CLASS": "fast"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        return process


@pytest.fixture
def stack_factory(clean_valkey, smtp, tmp_path):
    stacks: list[Stack] = []

    def make(workers: int = 1, web: bool = True, **extra_env: str) -> Stack:
        stack = FastStack(clean_valkey, smtp.url, tmp_path, extra_env)
        stacks.append(stack)
        if web:
            stack.start_web()
        for _ in range(workers):
            stack.start_worker()
        return stack

    yield make
    for stack in stacks:
        stack.stop()


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return {int(p) for p in handle.read().split()}


def test_one_horse_runs_many_jobs_and_a_killed_one_is_replaced(stack_factory):
    stack = stack_factory(workers=1)
    worker = stack.workers[0]
    first = stack.wait_for(stack.post({"type": "noop"}).json()["id"])
    assert first["status"] == "finished"
    before = _children(worker.pid)  # the scheduler and the horse
    for _ in range(5):
        assert stack.wait_for(stack.post({"type": "count_words", "text": "a b c"}).json()["id"])["status"] == "finished"
    assert _children(worker.pid) == before, "the same horse serves every job"
    job_id = stack.post({"type": "sleep", "seconds": 30, "max_retries": 0}).json()["id"]
    wait_until(lambda: stack.get(f"/jobs/{job_id}").json()["status"] == "started", what="the job to start")
    assert stack.session_post(f"/jobs/{job_id}/cancel").status_code == 202
    assert stack.wait_for(job_id)["status"] == "stopped"
    after = stack.wait_for(stack.post({"type": "noop"}).json()["id"])
    assert after["status"] == "finished" and after["attempts"] == 1
    assert worker.poll() is None


def test_a_job_costs_three_round_trips(stack_factory, clean_valkey):
    """One EVALSHA (dequeue) and two MULTI/EXEC (start, outcome) per job."""
    stack = stack_factory(workers=0)
    jobs = 60
    ids = [stack.post({"type": "noop"}).json()["id"] for _ in range(jobs)]
    client = clean_valkey.client()

    def calls() -> dict[str, int]:
        return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}

    before = calls()
    stack.start_worker("--burst")
    assert stack.workers[-1].wait(60) == 0
    after = calls()
    delta = {name: after[name] - before.get(name, 0) for name in after}
    assert all(stack.get(f"/jobs/{job_id}").json()["status"] == "finished" for job_id in ids)
    assert delta["evalsha"] + delta.get("eval", 0) <= jobs + 15  # locks and maintenance use a few scripts too
    # start-up, registration, maintenance and shutdown add a handful of transactions
    assert 2 * jobs <= delta["exec"] <= 2 * jobs + 15, delta
    # (commandstats also counts the commands a script runs: the dequeue's LMOVE and HGETALL)
    assert delta["hgetall"] <= delta["evalsha"] + 10, delta


def test_metrics_and_events_match_the_default_worker(stack_factory):
    stack = stack_factory(workers=1)
    ok = stack.post({"type": "count_words", "text": "one two"}).json()["id"]
    bad = stack.post({"type": "fail", "message": "no", "max_retries": 0}).json()["id"]
    started = time.monotonic()
    assert stack.get(f"/jobs/{ok}?wait=10").json()["status"] == "finished"
    assert time.monotonic() - started < 5, "?wait= is woken by the worker's announcement"
    assert stack.wait_for(bad)["status"] == "failed"
    metrics = stack.get("/metrics").text
    assert 'offload_jobs_total{event="finished",type="count_words"} 1.0' in metrics
    assert 'offload_jobs_total{event="started",type="count_words"} 1.0' in metrics
    assert 'offload_jobs_total{event="failed",type="fail"} 1.0' in metrics
    assert 'offload_job_run_seconds_count{type="count_words"} 1.0' in metrics


def test_the_stored_payload_is_written_back_as_read(fake_redis):
    from app.fastworker import _PENDING, _payload_keeping
    from app.queueing import OffloadJob
    from rq.serializers import JSONSerializer

    job = OffloadJob.create("app.tasks.count_words", kwargs={"text": "x " * 1000}, connection=fake_redis, serializer=JSONSerializer)
    job.save()
    stored = fake_redis.hget(job.key, "data")
    fast = _payload_keeping(OffloadJob).fetch(job.id, connection=fake_redis, serializer=JSONSerializer)
    assert fast._data is _PENDING and fast.to_dict()["data"] == stored  # not decompressed, not compressed again
    assert fast.kwargs == {"text": "x " * 1000}  # decompressed on first use
    assert fast.to_dict()["data"] == stored
    fast.kwargs = {"text": "changed"}
    assert fast.to_dict()["data"] != stored
