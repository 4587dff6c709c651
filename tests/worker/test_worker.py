"""The worker process with real processes (worker.py, app/worker): it refuses what is not an
offload task, serves the queues by priority, finishes its job on SIGTERM and waits out a Redis
outage. Fault injection is in test_faults.py, the fast worker's own ways in test_fast.py."""

from __future__ import annotations

import signal
import time

import pytest

from ..conftest import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.deployments("default", "forking")
def test_worker_refuses_a_function_that_is_not_an_offload_task(stack, clean_valkey, tmp_path):
    """A job written to Redis by anyone, naming any importable function, runs nothing."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    marker = tmp_path / "ran"
    queue = Queue("default", connection=clean_valkey.client(), serializer=JSONSerializer)
    job = queue.enqueue_call("os.mkdir", args=[str(marker)])
    wait_until(lambda: job.get_status(refresh=True) in ("failed", "finished"), what="the worker to take the job")
    assert job.get_status() == "failed"
    assert "is not an offload task" in job.latest_result().exc_string
    assert not marker.exists()
    # And the worker is still serving.
    assert stack.wait_for(stack.post({"type": "count_words", "text": "still here"}).json()["id"])["status"] == "finished"


@pytest.mark.deployments("default", "forking", "cluster")
def test_priority_queues_are_served_high_first(stack_factory):
    stack = stack_factory(workers=0)
    low = stack.post({"type": "noop", "queue": "low"}).json()["id"]
    default = stack.post({"type": "noop"}).json()["id"]
    high = stack.post({"type": "noop", "queue": "high"}).json()["id"]
    stack.start_worker("--burst")
    stack.workers[-1].wait(30)
    started = {job: stack.get(f"/jobs/{job}").json()["started_at"] for job in (low, default, high)}
    assert started[high] < started[default] < started[low]


@pytest.mark.deployments("default", "forking", "cluster")
def test_worker_warm_shutdown_finishes_the_job(stack):
    job_id = stack.post({"type": "sleep", "seconds": 2}).json()["id"]
    wait_until(lambda: stack.get(f"/jobs/{job_id}").json()["status"] == "started", what="the job to start")
    worker = stack.workers[0]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert stack.get(f"/jobs/{job_id}").json()["status"] == "finished"


@pytest.mark.deployments("default", "forking")
def test_worker_waits_for_redis_and_reconnects(stack_factory, clean_valkey):
    stack = stack_factory(workers=1)
    assert stack.wait_for(stack.post({"type": "noop"}).json()["id"])["status"] == "finished"
    clean_valkey.stop()  # graceful: AOF flushed
    time.sleep(2)
    assert stack.workers[0].poll() is None, "the worker must survive Redis going away"
    response = stack.post({"type": "noop"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert stack.get("/readyz").status_code == 503
    clean_valkey.start()
    wait_until(lambda: stack.get("/readyz").status_code == 200, what="readyz to recover")
    job_id = stack.post({"type": "count_words", "text": "back again"}).json()["id"]
    assert stack.wait_for(job_id, timeout=40)["status"] == "finished"
