"""``GET /jobs/{id}/events`` (app/web/events.py): the live event stream, read strictly.

The integration tests run on real processes (gunicorn, workers, Valkey); the stream is parsed
event by event and every block must be exactly what the format promises. A few fast tests on
fakeredis check the bounds' arithmetic and the stream against the OpenAPI document.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from pydantic import ValidationError

from app.settings import Settings, get_settings

from ..conftest import ROOT, assert_problem, run_jobs, submit, wait_until
from .test_openapi import CHECKS, _config

KEYS = "shop:client:s3cret,blog:client:b1og,ops:admin:t0ps3cret"
SHOP, BLOG, ADMIN = ({"Authorization": f"Bearer {secret}"} for secret in ("s3cret", "b1og", "t0ps3cret"))

# --- reading a stream, strictly -------------------------------------------------------------

_BLOCK = re.compile(
    r"\Aid: (?P<id>[1-9][0-9]*)\n(?:retry: (?P<retry>[0-9]+)\n)?event: (?P<event>status|progress|end)\ndata: (?P<data>[^\n]+)\Z"
)


@dataclass
class Event:
    id: int
    event: str
    data: dict
    retry: int | None
    received: float  # time.time() when it arrived


class Stream:
    """An open ``text/event-stream`` response, read block by block. Any block that is not
    exactly ``: keepalive`` or ``id``, ``retry`` (optional), ``event``, ``data`` in that order,
    each once, fails the test."""

    def __init__(self, response: requests.Response) -> None:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Request-ID"]
        self.response = response
        self.keepalives = 0
        self._blocks = self._read()

    def _read(self) -> Iterator[str]:
        buffer = b""
        for chunk in self.response.iter_content(chunk_size=None):
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                yield block.decode("utf-8")
        assert buffer == b"", f"the stream ended inside an event: {buffer!r}"

    def next(self) -> Event | None:
        """The next event (keepalives counted and skipped), or None when the server closed the stream."""
        for block in self._blocks:
            if block == ": keepalive":
                self.keepalives += 1
                continue
            match = _BLOCK.match(block)
            assert match, f"not an event of the format: {block!r}"
            retry = match["retry"]
            return Event(int(match["id"]), match["event"], json.loads(match["data"]), int(retry) if retry else None, time.time())
        return None

    def until_closed(self) -> list[Event]:
        events = []
        while (event := self.next()) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        self.response.close()


def open_stream(stack, job_id: str, query: str = "", **headers: str) -> requests.Response:
    return requests.get(f"{stack.base}/jobs/{job_id}/events{query}", headers=headers, stream=True, timeout=(5, 40))


def check_sequence(events: list[Event], first_id: int = 1) -> None:
    """Ids count up from ``first_id``; only the first event says ``retry``; ``status`` comes first;
    the job resources are whole (links included) and of one job."""
    assert [event.id for event in events] == list(range(first_id, first_id + len(events)))
    assert events[0].event == "status" and events[0].retry == 1000
    assert all(event.retry is None for event in events[1:])
    job_id = events[0].data["id"]
    for event in events:
        if event.event == "progress":
            assert set(event.data) == {"done", "total"} and 0 <= event.data["done"] <= event.data["total"]
        else:
            assert event.data["id"] == job_id
            action = {"finished": None, "failed": "retry", "stopped": "retry", "canceled": "retry"}.get(event.data["status"], "cancel")
            assert event.data["links"] == {"self": f"/jobs/{job_id}"} | ({action: f"/jobs/{job_id}/{action}"} if action else {})


# --- on real processes -----------------------------------------------------------------------


@pytest.mark.integration
def test_count_words_streams_started_progress_and_end_with_the_result(stack_factory):
    # Words of a million characters: count_words walks to a word's end one character at a time
    # at each chunk boundary, so this text takes long enough (~2.5 s here) to report progress.
    stack = stack_factory(MAX_TEXT_BYTES=str(16 * 1024 * 1024))
    text = ("x" * 1_000_000 + " ") * 16
    job_id = stack.post({"type": "count_words", "text": text}).json()["id"]
    stream = Stream(open_stream(stack, job_id))
    events = stream.until_closed()

    check_sequence(events)
    statuses = [event.data["status"] for event in events if event.event == "status"]
    assert statuses in (["queued", "started", "finished"], ["started", "finished"]), statuses
    progress = [event.data for event in events if event.event == "progress"]
    assert progress, [event.event for event in events]
    assert all(item["total"] == len(text) and item["done"] < len(text) for item in progress[:-1])
    assert [item["done"] for item in progress] == sorted({item["done"] for item in progress})  # strictly rising
    assert [event.event for event in events[-2:]] == ["status", "end"]
    end = events[-1].data
    assert end == events[-2].data
    assert end["result"] == {"words": 16, "characters": len(text), "lines": 1}
    assert end["progress"] == {"done": len(text), "total": len(text)}
    assert end == stack.get(f"/jobs/{job_id}").json()  # rendered as GET /jobs/{id} renders it


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_a_running_job_streams_its_progress_live(stack_factory):
    """The diagnostic sleep reports progress every 0.1 s (saved at most 4 times a second): the
    stream passes it on while the job runs, whichever worker runs it and on a Redis Cluster."""
    stack = stack_factory(workers=0)
    job_id = stack.post({"type": "sleep", "seconds": 1.5}).json()["id"]
    stream = Stream(open_stream(stack, job_id))
    first = stream.next()
    assert first.event == "status" and first.data["status"] == "queued" and first.data["progress"] is None
    stack.start_worker()
    events = [first, *stream.until_closed()]

    check_sequence(events)
    kinds = [(event.event, event.data.get("status")) for event in events if event.event != "progress"]
    assert kinds == [("status", "queued"), ("status", "started"), ("status", "finished"), ("end", "finished")]
    started = next(index for index, event in enumerate(events) if event.data.get("status") == "started")
    during = [event.data for event in events[started:-2] if event.event == "progress"]
    assert len(during) >= 2, [event.event for event in events]
    assert all(0 < item["done"] < item["total"] == 1500 for item in during[:-1])
    assert events[-1].data["result"] == {"slept": 1.5}


@pytest.mark.integration
def test_a_queued_job_streams_its_status_and_closes_at_the_timeout_without_end(stack_factory):
    stack = stack_factory(workers=0)
    job_id = stack.post({"type": "noop"}).json()["id"]
    # A reconnecting EventSource sends the last id it saw: the ids go on from it.
    stream = Stream(open_stream(stack, job_id, "?timeout=1", **{"Last-Event-ID": "41"}))
    events = stream.until_closed()
    check_sequence(events, first_id=42)
    assert [(event.event, event.data["status"]) for event in events] == [("status", "queued")]
    # An id that is not ours is only a hint: ignored.
    events = Stream(open_stream(stack, job_id, "?timeout=0", **{"Last-Event-ID": "not-a-number"})).until_closed()
    check_sequence(events)
    assert len(events) == 1

    # Canceled while a stream is open: its status, then end, then the server closes the stream.
    stream = Stream(open_stream(stack, job_id))
    assert stream.next().data["status"] == "queued"
    assert stack.session_post(f"/jobs/{job_id}/cancel").status_code == 202
    rest = stream.until_closed()
    assert [(event.event, event.data["status"]) for event in rest] == [("status", "canceled"), ("end", "canceled")]
    # A terminal job: its status and end at once.
    events = Stream(open_stream(stack, job_id)).until_closed()
    check_sequence(events)
    assert [event.event for event in events] == ["status", "end"]


@pytest.mark.integration
def test_keepalive_comment_after_15_s_of_silence(stack_factory):
    stack = stack_factory(workers=0)
    job_id = stack.post({"type": "noop"}).json()["id"]
    stream = Stream(open_stream(stack, job_id, "?timeout=18"))
    assert stream.next().data["status"] == "queued"
    assert stream.next() is None  # closed at the timeout, with keepalives before
    assert stream.keepalives == 1


@pytest.mark.integration
def test_bad_requests_are_problems(stack_factory):
    stack = stack_factory(workers=0)
    for job_id in ("0f9a8b7c-0000-4000-8000-000000000000", "no such job", "x" * 300):
        response = open_stream(stack, requests.utils.quote(job_id))
        assert response.status_code == 404 and response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == 404
    job_id = stack.post({"type": "noop"}).json()["id"]
    for timeout in ("-1", "abc", "nan", "601", ""):
        response = open_stream(stack, job_id, f"?timeout={timeout}")
        assert response.status_code == 422 and response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["errors"] == [{"field": "timeout", "message": "must be from 0 to 600"}]


@pytest.mark.integration
def test_with_api_keys_a_stream_needs_the_key_of_the_jobs_owner(stack_factory):
    stack = stack_factory(workers=0, API_KEYS=KEYS)
    job_id = stack.post({"type": "noop"}, headers=SHOP).json()["id"]
    anonymous = open_stream(stack, job_id)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.headers["Content-Type"] == "application/problem+json"
    assert open_stream(stack, job_id, Authorization="Bearer wrong").status_code == 401
    other = open_stream(stack, job_id, **BLOG)
    assert other.status_code == 404 and other.json()["status"] == 404  # another client's job does not exist
    for headers in (SHOP, ADMIN):
        events = Stream(open_stream(stack, job_id, "?timeout=0", **headers)).until_closed()
        assert [event.data["status"] for event in events] == ["queued"]


@pytest.mark.integration
def test_the_python_client_follows_a_job_through_the_real_stream(stack_factory):
    """offload.Client.events (built against the shared format and a stub server) on this server:
    the events in order, ?timeout= honoured with the last state seen."""
    from offload import Client
    from offload.errors import WaitTimeout

    stack = stack_factory(workers=0)
    with Client(stack.base) as client:
        waiting = stack.post({"type": "noop"}).json()["id"]
        with pytest.raises(WaitTimeout) as raised:
            list(client.events(waiting, timeout=1))
        assert raised.value.job.status == "queued"

        job_id = stack.post({"type": "sleep", "seconds": 1}).json()["id"]
        stack.start_worker()
        seen = [(event.event, getattr(event.data, "status", None)) for event in client.events(job_id)]
    assert seen[-2:] == [("status", "finished"), ("end", "finished")]
    assert ("status", "started") in seen and ("progress", None) in seen


def start_web_from_config(stack, **env: str) -> None:
    """gunicorn as production starts it, from gunicorn.conf.py and the environment (the stack's
    own web process gets its workers and threads on the command line)."""
    stack.env.update(HOST="127.0.0.1", PORT=str(stack.port), **env)
    log = stack._log("web")
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py"]
    stack.web = subprocess.Popen(command, cwd=ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT)
    wait_until(stack._healthy, what="gunicorn to answer")


@pytest.mark.integration
def test_streams_per_process_are_bounded_and_the_api_keeps_answering(stack_factory):
    # One process of 4 threads: half of them, 2, may hold streams (SSE_MAX_STREAMS unset).
    stack = stack_factory(workers=0, web=False)
    start_web_from_config(stack, WEB_CONCURRENCY="1", WEB_THREADS="4")
    job_id = stack.post({"type": "noop"}).json()["id"]
    streams = [Stream(open_stream(stack, job_id)) for _ in range(2)]
    assert [stream.next().data["status"] for stream in streams] == ["queued", "queued"]

    full = open_stream(stack, job_id)
    assert full.status_code == 503 and full.headers["Content-Type"] == "application/problem+json"
    assert full.headers["Retry-After"] == "5"
    assert "all of its 2 live-event streams" in full.json()["detail"]
    # The other threads still serve the API, ?wait= included.
    assert stack.get(f"/jobs/{job_id}").status_code == 200
    assert stack.get(f"/jobs/{job_id}?wait=1").json()["status"] == "queued"

    # A client that goes away frees its slot within a couple of seconds (its connection is
    # looked at on each wake), without waiting for the next keepalive.
    streams.pop().close()

    def reopened() -> Stream | None:
        response = open_stream(stack, job_id)
        return Stream(response) if response.status_code == 200 else None

    streams.append(wait_until(reopened, timeout=10, interval=0.2, what="a freed slot"))
    assert streams[-1].next().data["status"] == "queued"

    # A job that ends ends its streams, and frees their slots.
    assert stack.session_post(f"/jobs/{job_id}/cancel").status_code == 202
    for stream in streams:
        assert [event.event for event in stream.until_closed()] == ["status", "end"]
    wait_until(lambda: open_stream(stack, job_id).status_code == 200, what="the slots freed by the ended streams")


@pytest.mark.integration
def test_stopping_gunicorn_ends_open_streams_instead_of_waiting_for_them(stack_factory):
    stack = stack_factory(workers=0, web=False)
    start_web_from_config(stack, WEB_CONCURRENCY="1", WEB_THREADS="4")  # graceful_timeout: 35 s
    job_id = stack.post({"type": "noop"}).json()["id"]
    stream = Stream(open_stream(stack, job_id))
    assert stream.next().data["status"] == "queued"
    stack.web.terminate()
    assert stream.next() is None  # closed by the server, without end: a client reconnects elsewhere
    stack.web.wait(timeout=15)  # well before the graceful timeout


# --- fast: the arithmetic, and the document --------------------------------------------------


@pytest.mark.parametrize(
    ("env", "gunicorn_threads", "limit"),
    [
        ({}, None, 8),  # WEB_THREADS 16 by default: half
        ({"WEB_THREADS": "5"}, None, 2),
        ({}, 8, 4),  # gunicorn's own --threads win over WEB_THREADS
        ({"WEB_THREADS": "1"}, None, 0),  # one thread: no stream may take it
        ({"SSE_MAX_STREAMS": "12"}, None, 12),
        ({"SSE_MAX_STREAMS": "12"}, 4, 3),  # never every thread
    ],
)
def test_the_bound_derives_from_the_threads(monkeypatch, fake_redis, env, gunicorn_threads, limit):
    from app import create_app
    from app.jobs import JobQueue
    from app.web import events

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = get_settings()
    app = create_app(settings, job_queue=JobQueue(fake_redis, settings))
    if gunicorn_threads:
        app.extensions["offload.web_threads"] = gunicorn_threads
    with app.app_context():
        assert events.stream_limit() == limit


def test_sse_max_streams_must_leave_a_thread_to_the_api(monkeypatch):
    monkeypatch.setenv("WEB_THREADS", "4")
    monkeypatch.setenv("SSE_MAX_STREAMS", "4")
    with pytest.raises(ValidationError, match="SSE_MAX_STREAMS must be less than WEB_THREADS"):
        Settings()


def test_a_full_process_answers_503_and_a_closed_stream_frees_its_slot(monkeypatch, client, job_queue, settings):
    from app.web.events import StreamSlots

    job = submit(job_queue, settings, type="noop")
    client.application.extensions["offload.sse_slots"] = StreamSlots(1)
    held = client.get(f"/jobs/{job['id']}/events?timeout=5", buffered=False)
    assert held.status_code == 200
    assert_problem(client.get(f"/jobs/{job['id']}/events?timeout=0"), 503)
    held.close()  # the WSGI server closes the response when the client goes away
    assert client.get(f"/jobs/{job['id']}/events?timeout=0").status_code == 200


def test_streams_conform_to_the_document(monkeypatch, app, client, job_queue, settings):
    """The fuzzer's jobs never run: these streams carry progress, results and errors."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=_config())
    watch = schema["/jobs/{job_id}/events"]["GET"]
    finished = submit(job_queue, settings, type="count_words", text="one two three " * 30_000)["id"]
    failed = submit(job_queue, settings, type="fail", message="it broke")["id"]
    queued_ = submit(job_queue, settings, type="noop", delay_seconds=600)["id"]
    run_jobs(job_queue)
    for job_id, status, query in [(finished, "finished", {}), (failed, "failed", {}), (queued_, "scheduled", {"timeout": 0})]:
        response = watch.Case(path_parameters={"job_id": job_id}, query=query).call_and_validate(checks=CHECKS)
        assert response.status_code == 200
        assert f'"status": "{status}"' in response.text
    assert '"error": {"type": "RuntimeError", "message": "it broke"}' in watch.Case(
        path_parameters={"job_id": failed}
    ).call().text
    missing = watch.Case(path_parameters={"job_id": "nope"}).call_and_validate(checks=CHECKS)
    assert missing.status_code == 404
