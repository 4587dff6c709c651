"""The fast worker (``app/jobs/engine/worker/fast.py``, the default ``WORKER_CLASS=fast``): what it does
differently from RQ's forking worker (one horse for many jobs, one round trip a job in steady
state, the stored payload kept as it was). Every other integration, lifecycle and fault-injection test
runs against it too, as the default; the ones marked ``@pytest.mark.deployments(..., "forking")``
run again against the forking worker (``make test-forking-worker``, see tests/conftest.py)."""

from __future__ import annotations

import time

import pytest

from ..conftest import wait_until

pytestmark = pytest.mark.integration


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return {int(p) for p in handle.read().split()}


def test_one_horse_runs_many_jobs_and_a_killed_one_is_replaced(stack_factory):
    stack = stack_factory(workers=1, WORKER_CLASS="fast")
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


def test_a_job_costs_one_transaction_and_one_script(stack_factory, clean_valkey):
    """Per job, in a worker process: one MULTI/EXEC (its outcome) carrying one EVAL (the dequeue
    script, which takes and starts the next job), where it was one EVALSHA and two MULTI/EXEC."""
    # A long beat: maintenance (every half beat, a few scripts a pass) then runs once, at the
    # start, however long a loaded machine takes over the burst; the counts below are the jobs'.
    stack = stack_factory(workers=0, WORKER_CLASS="fast", JOB_HEARTBEAT_SECONDS="60")
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
    scripts = delta.get("evalsha", 0) + delta.get("eval", 0)
    assert jobs <= scripts <= jobs + 15, delta  # locks and maintenance use a few scripts too
    # start-up, registration, maintenance and shutdown add a handful of transactions
    assert jobs <= delta["exec"] <= jobs + 15, delta
    # (commandstats also counts the commands a script runs: the dequeue's LMOVE and HGETALL)
    assert delta["hgetall"] <= scripts + 10, delta


def test_metrics_and_events_match_the_default_worker(stack_factory):
    stack = stack_factory(workers=1, WORKER_CLASS="fast")
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
    from rq.serializers import JSONSerializer

    from app.jobs.engine.job import OffloadJob
    from app.jobs.engine.worker.payload import _PENDING, payload_keeping

    job = OffloadJob.create("app.tasks.count_words", kwargs={"text": "x " * 1000}, connection=fake_redis, serializer=JSONSerializer)
    job.save()
    stored = fake_redis.hget(job.key, "data")
    fast = payload_keeping(OffloadJob).fetch(job.id, connection=fake_redis, serializer=JSONSerializer)
    assert fast._data is _PENDING and fast.to_dict()["data"] == stored  # not decompressed, not compressed again
    assert fast.kwargs == {"text": "x " * 1000}  # decompressed on first use
    assert fast.to_dict()["data"] == stored
    fast.kwargs = {"text": "changed"}
    assert fast.to_dict()["data"] != stored


def test_the_last_progress_report_rides_the_outcome_transaction(stack_factory, clean_valkey):
    """``count_words`` reports its progress at the end; the fast worker saves it with the outcome
    (app.jobs.running.context.final_progress_rides_outcome), so such a job still costs one transaction,
    not two. A job RQ's own outcome code records (here: one with a dependent) saves it apart."""
    stack = stack_factory(workers=0, WORKER_CLASS="fast", JOB_HEARTBEAT_SECONDS="60")
    texts = [f"word {'x ' * n}" for n in range(40)]
    ids = [stack.post({"type": "count_words", "text": text}).json()["id"] for text in texts]
    parent = stack.post({"type": "count_words", "text": "a b c"}).json()["id"]
    child = stack.post({"type": "noop", "depends_on": [parent]}).json()["id"]
    client = clean_valkey.client()
    # (no MULTI/EXEC may have run yet: a submission is one script)
    before = client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)
    stack.start_worker("--burst")
    assert stack.workers[-1].wait(60) == 0
    transactions = client.info("commandstats")["cmdstat_exec"]["calls"] - before
    for job_id, text in zip(ids, texts, strict=True):
        job = stack.get(f"/jobs/{job_id}").json()
        assert job["status"] == "finished"
        assert job["progress"] == {"done": len(text), "total": len(text)}
    assert stack.get(f"/jobs/{parent}").json()["progress"] == {"done": 5, "total": 5}
    assert stack.get(f"/jobs/{child}").json()["status"] == "finished"
    # 40 jobs at one each, the parent and child through RQ's paths (a handful), start-up and shutdown
    assert len(ids) <= transactions <= len(ids) + 20, transactions


def test_a_job_costs_one_round_trip_in_steady_state(clean_valkey, settings, trips):
    """Issue 26, item 4: a job is taken and started in one script (``lua/dequeue.lua`` runs the
    start transaction's commands), and its outcome transaction takes and starts the next job
    (BullMQ's moveToFinished): one round trip (one fsync) a job. Counted as the requests this
    process sends to Redis (a pipeline or a transaction is one), the horse's aside (it sends
    none for these jobs), plus a fixed number for start-up, maintenance and shutdown."""

    from app.jobs import JobQueue
    from app.worker import build_worker

    from ..conftest import submit

    connection = clean_valkey.client()
    queue = JobQueue(connection, settings)
    jobs = 150
    ids = [submit(queue, settings, type="count_words", text="a b c")["id"] for _ in range(jobs)]
    worker = build_worker(connection, settings)
    trips.clear()
    worker.work(burst=True, with_scheduler=False)
    sent = list(trips)
    assert [queue.get(job_id)["status"] for job_id in ids] == ["finished"] * jobs
    assert all(queue.get(job_id)["attempts"] == 1 for job_id in ids)
    # Start-up and a maintenance pass (three queues' registries) cost about 60 here, whatever the
    # number of jobs; the jobs' three round trips each before (dequeue, start, outcome) were 450.
    assert len(sent) <= jobs + 80, len(sent)
