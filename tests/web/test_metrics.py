"""/metrics (app/web/metrics.py): jobs and requests counted, for admins only, added up across
gunicorn and worker processes."""

from __future__ import annotations

import re

import pytest

from app import create_app
from app.jobs import JobQueue
from app.settings import get_settings

from ..conftest import run_jobs

NOT_FOUND_SAMPLE = r'offload_http_requests_total\{method="GET",route="/jobs/<job_id>",status="404"\} (\S+)'


def _not_found_count(client) -> float:
    found = re.search(NOT_FOUND_SAMPLE, client.get("/metrics").get_data(as_text=True))
    return float(found.group(1)) if found else 0.0


def test_metrics_count_jobs_and_requests(client, job_queue):
    before = _not_found_count(client)  # HTTP counters are per process: other tests count too
    client.post("/jobs", json={"type": "count_words", "text": "a b"})
    client.post("/jobs", json={"type": "fail", "message": "x"})
    client.post("/jobs", json={"type": "noop", "queue": "low"})
    run_jobs(job_queue)
    client.post("/jobs", json={"type": "noop", "queue": "high"})
    client.get("/jobs/nope")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'offload_jobs_total{event="enqueued",type="count_words"} 1.0' in text
    assert 'offload_jobs_total{event="finished",type="count_words"} 1.0' in text
    assert 'offload_jobs_total{event="failed",type="fail"} 1.0' in text
    assert 'offload_jobs_total{event="started",type="noop"} 1.0' in text
    assert 'offload_queue_jobs{queue="high",state="queued"} 1.0' in text
    assert 'offload_job_run_seconds_count{type="count_words"} 1.0' in text
    assert float(re.search(NOT_FOUND_SAMPLE, text).group(1)) == before + 1
    assert 'offload_http_request_duration_seconds_bucket{le="+Inf",route="/jobs"}' in text


def test_metrics_need_an_admin_key(monkeypatch, fake_redis):
    monkeypatch.setenv("API_KEYS", "shop:client:c1,ops:admin:a1")
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer c1"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer a1"}).status_code == 200


@pytest.mark.integration
def test_metrics_add_up_across_gunicorn_and_worker_processes(stack_factory):
    stack = stack_factory(workers=2)  # gunicorn runs 2 processes
    # Under load one worker can still be starting when the other has run all 20 jobs: the test is
    # about adding up across processes, so both workers register first.
    stack.wait_for_workers(2)
    ids = [stack.post({"type": "count_words", "text": f"n {n}"}).json()["id"] for n in range(20)]
    for job_id in ids:
        assert stack.wait_for(job_id)["status"] == "finished"
    samples = [stack.get("/metrics").text for _ in range(6)]  # answered by either process
    for text in samples:
        assert 'offload_jobs_total{event="finished",type="count_words"} 20.0' in text
        assert "offload_workers 2.0" in text
        posts = re.search(r'offload_http_requests_total\{method="POST",route="/jobs",status="202"\} (\S+)', text)
        assert posts and float(posts.group(1)) == 20.0
