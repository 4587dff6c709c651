"""Fixtures of the client tests: a live server, and a small local HTTP stub for what the
server cannot be made to do on demand (a stream that breaks mid-way, a server without live
events)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from offload import Client

from ..conftest import Stack


#: A team's own tasks (reverse_text, typed_echo), loaded by every process of the stacks here.
USER_TASKS = {"OFFLOAD_TASKS": "tests.user_tasks"}


@pytest.fixture
def live(stack_factory) -> Stack:
    """gunicorn, one worker, Valkey and the SMTP sink, with the diagnostic job types and the
    tasks of tests/user_tasks.py."""
    return stack_factory(workers=1, **USER_TASKS)


@pytest.fixture
def idle(stack_factory) -> Stack:
    """The same without a worker: jobs stay queued for as long as a test needs."""
    return stack_factory(workers=0, **USER_TASKS)


@pytest.fixture
def client(live) -> Iterator[Client]:
    with Client(live.base) as client:
        yield client


Route = Callable[["StubHandler"], None]


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, Route]] = {}  # each Stub makes a subclass with its own
    seen: ClassVar[list[dict]] = []

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, "headers": dict(self.headers)})
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_json(404, {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no route"})
        else:
            route(self)

    def send_json(self, status: int, body: dict, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_stream(self, text: str) -> None:
        """An event stream that ends (the connection closes) after ``text``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(text.encode())
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


class Stub:
    def __init__(self) -> None:
        handler = type("Handler", (StubHandler,), {"routes": {}, "seen": []})
        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def routes(self) -> dict[str, Route]:
        return self.handler.routes

    @property
    def seen(self) -> list[dict]:
        return self.handler.seen


@pytest.fixture
def stub() -> Iterator[Stub]:
    stub = Stub()
    stub.thread.start()
    yield stub
    stub.server.shutdown()
    stub.server.server_close()


def job_json(job_id: str = "j1", status: str = "queued", **fields) -> dict:
    """A job resource as the server renders it."""
    return {
        "id": job_id, "type": "count_words", "status": status, "queue": "default",
        "created_at": "2025-01-02T03:04:05.678Z", "enqueued_at": "2025-01-02T03:04:05.678Z",
        "started_at": None, "ended_at": None, "attempts": 0, "max_retries": 0, "progress": None,
        "result": None, "error": None, "metadata": None,
        "links": {"self": f"/jobs/{job_id}", "cancel": f"/jobs/{job_id}/cancel"}, **fields,
    }  # fmt: skip
