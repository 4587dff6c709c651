"""Webhooks (app/tasks/webhook.py): callbacks end to end, signed and retried, through the API
and a worker, to a real HTTP receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.tasks import webhook

from ..conftest import wait_until


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


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
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
    assert webhook.verify(secret, body, headers["Offload-Signature"])
    assert not webhook.verify("wrong-secret", body, headers["Offload-Signature"])
    assert receiver.fail_first == 0  # the first attempt was refused, then retried


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_callback_of_a_failed_job(stack_factory, receiver):
    receiver.fail_first = 0
    stack = stack_factory(WEBHOOK_SECRET="s", ALLOW_PRIVATE_CALLBACKS="1")
    job_id = stack.post({"type": "fail", "message": "nope", "callback_url": receiver.url}).json()["id"]
    assert stack.wait_for(job_id)["status"] == "failed"
    wait_until(lambda: receiver.deliveries, timeout=20, what="the callback")
    headers, body = receiver.deliveries[0]
    assert headers["Offload-Event"] == "job.failed"
    assert json.loads(body)["error"] == {"type": "RuntimeError", "message": "nope"}


@pytest.mark.integration
@pytest.mark.deployments("default", "cluster")
def test_private_callback_urls_are_refused_by_default(stack_factory):
    stack = stack_factory(workers=0, WEBHOOK_SECRET="s")
    for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://[::1]/"):
        response = stack.post({"type": "noop", "callback_url": url})
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "callback_url"
