"""The built-in ``http_request`` task through the API and a real worker: a service in any language
gets offload's signed request, its retries (honouring ``Retry-After``) and its result."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.tasks import webhook

pytestmark = pytest.mark.integration

SECRET = "test-http-request-secret"


class Service:
    """A team's service: answers 503 with ``Retry-After: 1`` to its first request, then 201."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, str, dict, bytes]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                service.calls.append((time.monotonic(), self.command, self.path, dict(self.headers), body))
                first = len(service.calls) == 1
                payload = b'{"stored": true}'
                self.send_response(503 if first else 201)
                if first:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/orders/42"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_an_http_request_job_is_signed_retried_after_retry_after_and_records_the_answer(stack_factory):
    service = Service()
    stack = stack_factory(workers=1, WEBHOOK_SECRET=SECRET, ALLOW_PRIVATE_CALLBACKS="1")
    try:
        body = '{"order": 42}'
        answer = stack.post({"type": "http_request", "method": "PUT", "url": service.url, "body": body,
                             "headers": {"Content-Type": "application/json"}, "max_retries": 2})  # fmt: skip
        assert answer.status_code == 202, answer.text
        done = stack.wait_for(answer.json()["id"], timeout=60)
    finally:
        service.server.shutdown()
    assert done["status"] == "finished", done
    assert done["attempts"] == 2 and done["result"]["status"] == 201
    assert done["result"]["body"] == '{"stored": true}'
    (first_at, *_), (second_at, method, path, headers, sent) = service.calls
    assert method == "PUT" and path == "/orders/42" and sent == body.encode()
    assert second_at - first_at >= 0.9  # Retry-After: 1, not the backoff
    assert webhook.verify_request(SECRET, "PUT", service.url, sent, headers["Offload-Signature"])
    assert headers["Offload-Delivery"] == done["id"]
