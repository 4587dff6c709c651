"""``GET /jobs/<id>?wait=N`` (app/jobs/events.py) with real processes: woken by the worker's
job-ended event, or given up after N seconds."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.deployments("default", "forking", "cluster")
def test_wait_returns_as_soon_as_the_job_ends(stack):
    job_id = stack.post({"type": "sleep", "seconds": 1.0}).json()["id"]
    started = time.monotonic()
    body = stack.get(f"/jobs/{job_id}?wait=20").json()
    elapsed = time.monotonic() - started
    assert body["status"] == "finished"
    assert elapsed < 6, elapsed  # far less than the 20 s asked for: the worker's event woke it


@pytest.mark.deployments("default", "cluster")
def test_wait_gives_up_after_n_seconds(stack_factory):
    stack = stack_factory(workers=0)
    job_id = stack.post({"type": "count_words", "text": "x"}).json()["id"]
    started = time.monotonic()
    response = stack.get(f"/jobs/{job_id}?wait=1")
    elapsed = time.monotonic() - started
    assert response.json()["status"] == "queued"
    assert response.headers["Retry-After"]
    assert 0.9 <= elapsed < 4, elapsed
