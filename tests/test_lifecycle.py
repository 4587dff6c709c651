"""The job lifecycle with real processes: scheduling, retries, timeouts, stop, progress,
idempotency under a race, and signed callbacks to a real HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app import webhooks

from .conftest import wait_until

pytestmark = pytest.mark.integration


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


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


def test_run_at_in_the_past_runs_now(stack):
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body = stack.post({"type": "noop", "run_at": past}).json()
    assert body["status"] == "queued"
    assert stack.wait_for(body["id"])["status"] == "finished"


def test_retries_with_backoff_count_attempts_and_keep_the_last_error(stack_factory):
    stack = stack_factory(RETRY_BACKOFF_BASE_SECONDS="1", RETRY_BACKOFF_MAX_SECONDS="2")
    body = stack.post({"type": "fail", "message": "flaky", "max_retries": 2}).json()
    assert body["max_retries"] == 2
    done = stack.wait_for(body["id"], timeout=40)
    assert done["status"] == "failed"
    assert done["attempts"] == 3
    assert done["error"] == {"type": "RuntimeError", "message": "flaky"}


def test_timeout_fails_the_attempt_and_says_so(stack):
    body = stack.post({"type": "sleep", "seconds": 30, "timeout_seconds": 1, "max_retries": 0}).json()
    done = stack.wait_for(body["id"], timeout=20)
    assert done["status"] == "failed"
    assert done["error"]["type"] == "JobTimeout"
    assert "timed out" in done["error"]["message"]
    # The worker goes on with the next job.
    assert stack.wait_for(stack.post({"type": "noop"}).json()["id"])["status"] == "finished"


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


def test_cancel_a_scheduled_job(stack):
    job_id = stack.post({"type": "noop", "delay_seconds": 3}).json()["id"]
    assert stack.session_post(f"/jobs/{job_id}/cancel").json()["status"] == "canceled"
    time.sleep(4)
    body = stack.get(f"/jobs/{job_id}").json()
    assert body["status"] == "canceled" and body["attempts"] == 0


def test_progress_is_reported_while_count_words_runs(stack_factory):
    stack = stack_factory(workers=1, MAX_TEXT_BYTES=str(64 * 1024 * 1024))
    text = "lorem ipsum dolor sit amet " * 1_500_000  # ~40 MB: long enough to watch
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


def test_racing_identical_requests_make_exactly_one_job(stack, clean_valkey):
    headers = {"Idempotency-Key": "race-1"}
    body = {"type": "count_words", "text": "same body"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: stack.post(body, headers=headers), range(8)))
    codes = sorted(response.status_code for response in responses)
    ids = {response.json()["id"] for response in responses if response.status_code == 202}
    assert len(ids) == 1, ids
    assert set(codes) <= {202, 409}
    assert all(r.headers.get("Retry-After") for r in responses if r.status_code == 409)
    client = clean_valkey.client()
    assert client.zcard("rq:offload:jobs") == 1


class Receiver:
    """A real HTTP server recording callbacks; fails the first ``fail_first`` deliveries."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict, bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(503)
                else:
                    receiver.deliveries.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/offload"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    server = Receiver(fail_first=1)
    yield server
    server.close()


def test_callback_is_signed_and_retried_until_delivered(stack_factory, receiver):
    secret = "whsec-test-123"
    stack = stack_factory(
        WEBHOOK_SECRET=secret, ALLOW_PRIVATE_CALLBACKS="1", RETRY_BACKOFF_BASE_SECONDS="1", WEBHOOK_MAX_RETRIES="3"
    )
    job_id = stack.post(
        {"type": "count_words", "text": "call me back", "callback_url": receiver.url, "metadata": {"order": 9}}
    ).json()["id"]
    assert stack.wait_for(job_id)["status"] == "finished"
    wait_until(lambda: receiver.deliveries, timeout=30, what="the callback")
    headers, body = receiver.deliveries[0]
    payload = json.loads(body)
    assert payload["id"] == job_id and payload["status"] == "finished"
    assert payload["result"]["words"] == 3 and payload["metadata"] == {"order": 9}
    assert headers["Offload-Event"] == "job.finished"
    assert webhooks.verify(secret, body, headers["Offload-Signature"])
    assert not webhooks.verify("wrong-secret", body, headers["Offload-Signature"])
    assert receiver.fail_first == 0  # the first attempt was refused, then retried


def test_callback_of_a_failed_job(stack_factory, receiver):
    receiver.fail_first = 0
    stack = stack_factory(WEBHOOK_SECRET="s", ALLOW_PRIVATE_CALLBACKS="1")
    job_id = stack.post({"type": "fail", "message": "nope", "callback_url": receiver.url}).json()["id"]
    assert stack.wait_for(job_id)["status"] == "failed"
    wait_until(lambda: receiver.deliveries, timeout=20, what="the callback")
    headers, body = receiver.deliveries[0]
    assert headers["Offload-Event"] == "job.failed"
    assert json.loads(body)["error"] == {"type": "RuntimeError", "message": "nope"}


def test_private_callback_urls_are_refused_by_default(stack_factory):
    stack = stack_factory(workers=0, WEBHOOK_SECRET="s")
    for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://[::1]/"):
        response = stack.post({"type": "noop", "callback_url": url})
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "callback_url"


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
