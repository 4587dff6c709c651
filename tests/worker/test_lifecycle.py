"""The job lifecycle with real processes: scheduling, retries, timeouts, stop, progress and
expiry. (Idempotency under a race is in tests/jobs/test_idempotency.py, signed callbacks to a
real HTTP receiver in tests/tasks/test_webhook.py.)"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from ..conftest import wait_until

pytestmark = pytest.mark.integration


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


@pytest.mark.deployments("default", "forking", "cluster")
def test_delayed_job_is_scheduled_then_runs_on_time(stack):
    response = stack.post({"type": "noop", "delay_seconds": 2})
    body = response.json()
    assert body["status"] == "scheduled"
    submitted = parse(body["created_at"])
    done = stack.wait_for(body["id"], timeout=20)
    assert done["status"] == "finished"
    lag = (parse(done["started_at"]) - submitted).total_seconds()
    # Never early; late by at most RQ's whole-second schedule plus its one-second poll (and start-up).
    assert 2.0 <= lag <= 4.5, lag


@pytest.mark.deployments("default", "cluster")
def test_run_at_in_the_past_runs_now(stack):
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = stack.post({"type": "noop", "run_at": past}).json()
    assert body["status"] == "queued"
    assert stack.wait_for(body["id"])["status"] == "finished"


@pytest.mark.deployments("default", "forking", "cluster")
def test_retries_with_backoff_count_attempts_and_keep_the_last_error(stack_factory):
    stack = stack_factory(RETRY_BACKOFF_BASE_SECONDS="1", RETRY_BACKOFF_MAX_SECONDS="2")
    body = stack.post({"type": "fail", "message": "flaky", "max_retries": 2}).json()
    assert body["max_retries"] == 2
    done = stack.wait_for(body["id"], timeout=40)
    assert done["status"] == "failed"
    assert done["attempts"] == 3
    assert done["error"] == {"type": "RuntimeError", "message": "flaky"}


@pytest.mark.deployments("default", "forking", "cluster")
def test_timeout_fails_the_attempt_and_says_so(stack):
    body = stack.post({"type": "sleep", "seconds": 30, "timeout_seconds": 1, "max_retries": 0}).json()
    done = stack.wait_for(body["id"], timeout=20)
    assert done["status"] == "failed"
    assert done["error"]["type"] == "JobTimeout"
    assert "timed out" in done["error"]["message"]
    # The worker goes on with the next job.
    assert stack.wait_for(stack.post({"type": "noop"}).json()["id"])["status"] == "finished"


@pytest.mark.deployments("default", "forking", "cluster")
def test_cancel_a_running_job_stops_it(stack):
    job_id = stack.post({"type": "sleep", "seconds": 30}).json()["id"]
    wait_until(lambda: stack.get(f"/jobs/{job_id}").json()["status"] == "started", what="the job to start")
    response = stack.session_post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 202
    done = stack.wait_for(job_id, timeout=15)
    assert done["status"] == "stopped"
    assert stack.session_post(f"/jobs/{job_id}/cancel").status_code == 409
    # A stopped job can be retried.
    retried = stack.session_post(f"/jobs/{job_id}/retry")
    assert retried.status_code == 202 and retried.json()["status"] in ("queued", "started")


@pytest.mark.deployments("default", "cluster")
def test_cancel_a_scheduled_job(stack):
    job_id = stack.post({"type": "noop", "delay_seconds": 3}).json()["id"]
    assert stack.session_post(f"/jobs/{job_id}/cancel").json()["status"] == "canceled"
    time.sleep(4)
    body = stack.get(f"/jobs/{job_id}").json()
    assert body["status"] == "canceled" and body["attempts"] == 0


@pytest.mark.deployments("default", "forking", "cluster")
def test_progress_is_reported_while_count_words_runs(stack_factory):
    stack = stack_factory(workers=1, MAX_TEXT_BYTES=str(64 * 1024 * 1024))
    # ~40 MB, not ASCII: long enough to watch (an ASCII text is counted ~4x faster, in well
    # under the 0.25 s between two progress reports, so it reports only its end).
    text = "lorem ipsum dolor sit ämet " * 1_500_000
    job_id = stack.post({"type": "count_words", "text": text}).json()["id"]
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = stack.get(f"/jobs/{job_id}").json()
        if body["progress"]:
            seen.append((body["status"], body["progress"]["done"], body["progress"]["total"]))
        if body["status"] == "finished":
            break
        time.sleep(0.02)
    assert body["status"] == "finished" and body["result"]["words"] == len(text.split())
    assert any(status == "started" and 0 < done < total for status, done, total in seen), seen[:5]
    assert body["progress"] == {"done": len(text), "total": len(text)}


@pytest.mark.deployments("default", "cluster")
def test_finished_and_failed_jobs_expire_and_then_read_as_404(stack_factory):
    stack = stack_factory(RESULT_TTL_SECONDS="2", FAILURE_TTL_SECONDS="3")
    finished = stack.post({"type": "noop"}).json()["id"]
    failed = stack.post({"type": "fail", "message": "x", "max_retries": 0}).json()["id"]
    assert stack.wait_for(finished)["status"] == "finished"
    assert stack.wait_for(failed)["status"] == "failed"
    wait_until(lambda: stack.get(f"/jobs/{finished}").status_code == 404, timeout=10, what="the result to expire")
    assert stack.get(f"/jobs/{failed}").status_code == 200  # kept longer
    wait_until(lambda: stack.get(f"/jobs/{failed}").status_code == 404, timeout=10, what="the failure to expire")
    listed = {job["id"] for job in stack.get("/jobs?limit=200").json()["jobs"]}
    assert finished not in listed and failed not in listed
