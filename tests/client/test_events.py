"""The client's side of live events (``GET /jobs/{id}/events``): the event-stream parser, and
``Client.events`` / the CLI's follower against a local stub server, for what the real server
cannot be made to do on demand (a stream that breaks before ``end``, no events endpoint)."""

from __future__ import annotations

import json

import pytest

from offload import Client, ConnectionFailed, Job, NotFound, Progress, ServiceUnavailable, WaitTimeout
from offload.errors import EventsUnavailable
from offload.sse import EventStreamParser
from offload.watch import follow

from .conftest import job_json


def sse(event: str, data: dict | str, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    text = data if isinstance(data, str) else json.dumps(data)
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


def test_parser_reads_fields_comments_and_multiline_data():
    parser = EventStreamParser()
    lines = (
        ": keepalive\r\n"
        "retry: 250\n"
        "event: status\nid: 1\ndata: {\"a\":\ndata:1}\n\n"
        "event: ignored-without-data\n\n"
        "data:no space after the colon\n\n"
        "id: 7\n"
        "event: end\ndata: {}\n\n"
    ).splitlines()
    events = list(parser.feed(lines))
    assert [(event.event, event.data, event.id) for event in events] == [
        ("status", '{"a":\n1}', "1"),
        ("message", "no space after the colon", "1"),
        ("end", "{}", "7"),
    ]
    assert parser.retry_ms == 250 and parser.last_event_id == "7"


def test_events_are_typed_and_end_closes_the_iteration(stub):
    stream = (
        sse("status", job_json(status="queued"), 1)
        + ": keepalive\n\n"
        + sse("progress", {"done": 5, "total": 10}, 2)
        + sse("status", job_json(status="started", attempts=1), 3)
        + sse("end", job_json(status="finished", result={"words": 2}), 4)
        + sse("never", {"read": "after end"}, 5)
    )
    stub.routes["/jobs/j1/events"] = lambda handler: handler.send_stream(stream)
    with Client(stub.base) as client:
        events = list(client.events("j1"))
    assert [event for event, _ in events] == ["status", "progress", "status", "end"]
    assert events[1].data == Progress(done=5, total=10) and events[1].data.fraction == 0.5
    assert isinstance(events[3].data, Job) and events[3].data.result == {"words": 2}
    assert stub.seen[0]["headers"]["Accept"] == "text/event-stream"


def test_a_stream_closed_before_end_goes_on_where_it_was(stub):
    started = job_json(status="started", attempts=1)
    streams = [
        # The server closes a stream after SSE_MAX_SECONDS without end; each new one starts
        # with the job's status again, which the client passes on only as news.
        "retry: 250\n" + sse("status", job_json(status="queued"), 40) + sse("status", started, 41),
        sse("status", started, 42),  # nothing moved: not passed on
        sse("status", {**started, "progress": {"done": 3, "total": 4}}, 43),  # only progress moved
        sse("status", job_json(status="finished"), 44) + sse("end", job_json(status="finished"), 45),
    ]
    stub.routes["/jobs/j1/events"] = lambda handler: handler.send_stream(streams.pop(0))
    slept: list[float] = []
    with Client(stub.base, sleep=slept.append) as client:
        events = list(client.events("j1"))
    assert [(event, getattr(data, "status", data)) for event, data in events] == [
        ("status", "queued"), ("status", "started"), ("progress", Progress(3, 4)), ("status", "finished"),
        ("end", "finished"),
    ]  # fmt: skip
    assert "Last-Event-ID" not in stub.seen[0]["headers"]
    assert [seen["headers"]["Last-Event-ID"] for seen in stub.seen[1:]] == ["41", "42", "43"]
    assert slept == [0.25] * 3  # the server's retry: advice


def test_a_stream_that_keeps_breaking_gives_up(stub):
    stub.routes["/jobs/j1/events"] = lambda handler: handler.send_stream(": nothing but a comment\n\n")
    client = Client(stub.base, max_tries=2, sleep=lambda seconds: None)
    with client, pytest.raises(ConnectionFailed, match="closed before its end event"):
        list(client.events("j1"))
    assert len(stub.seen) == 2


def test_a_server_without_events_is_told_apart_from_a_missing_job(stub):
    stub.routes["/jobs/j1"] = lambda handler: handler.send_json(200, job_json())
    with Client(stub.base) as client:
        with pytest.raises(EventsUnavailable):
            list(client.events("j1"))
        with pytest.raises(NotFound):
            list(client.events("gone"))


def test_an_answer_that_is_not_an_event_stream_is_refused(stub):
    stub.routes["/jobs/j1/events"] = lambda handler: handler.send_json(200, job_json())
    with Client(stub.base) as client, pytest.raises(EventsUnavailable, match="not text/event-stream"):
        list(client.events("j1"))


def test_events_timeout_raises_with_the_last_status(stub):
    def hold(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()
        handler.wfile.write(sse("status", job_json(status="queued"), 1).encode())
        handler.wfile.flush()
        handler.rfile.read(1)  # holds the stream open until the client goes away

    stub.routes["/jobs/j1/events"] = hold
    with Client(stub.base) as client, pytest.raises(WaitTimeout) as caught:
        list(client.events("j1", timeout=0.3))
    assert caught.value.job.status == "queued"


def test_follow_polls_when_the_server_has_no_events(stub):
    states = [job_json(status="queued"), job_json(status="started", progress={"done": 1, "total": 2})]
    final = job_json(status="finished", progress={"done": 2, "total": 2}, result={"words": 1})
    stub.routes["/jobs/j1"] = lambda handler: handler.send_json(200, states.pop(0) if states else final)
    with Client(stub.base) as client:
        job = follow(client, "j1", bar=True)
    assert job.status == "finished"
    # The events endpoint is missing (404), the job is not (the probe), then a poll a second.
    assert [seen["path"] for seen in stub.seen] == ["/jobs/j1/events", "/jobs/j1", "/jobs/j1?wait=1", "/jobs/j1?wait=1"]


def test_follow_uses_events_when_there_are_some(stub):
    stream = sse("status", job_json(status="started"), 1) + sse("end", job_json(status="failed"), 2)
    stub.routes["/jobs/j1/events"] = lambda handler: handler.send_stream(stream)
    with Client(stub.base) as client:
        assert follow(client, "j1").status == "failed"
    assert [seen["path"] for seen in stub.seen] == ["/jobs/j1/events"]


def test_a_timeout_is_asked_of_the_server_within_its_limit(stub):
    def events(handler) -> None:
        if "timeout=0.5" in handler.path:  # over this server's limit of 0.2
            body = {"title": "Validation Failed", "status": 422, "detail": "timeout must be a number of seconds from 0 to 0.2",
                    "errors": [{"field": "timeout", "message": "must be from 0 to 0.2"}]}  # fmt: skip
            handler.send_json(422, body, "application/problem+json")
        else:
            handler.send_stream(sse("status", job_json(status="queued"), 1))  # then closed, as at ?timeout

    stub.routes["/jobs/j1/events"] = events
    with Client(stub.base, sleep=lambda seconds: None) as client, pytest.raises(WaitTimeout) as caught:
        list(client.events("j1", timeout=0.5))
    assert caught.value.job.status == "queued"
    assert stub.seen[0]["path"] == "/jobs/j1/events?timeout=0.5"
    asked = [float(seen["path"].rpartition("timeout=")[2]) for seen in stub.seen[1:]]
    assert asked and all(seconds <= 0.2 for seconds in asked)


def test_follow_polls_when_every_stream_is_in_use(stub):
    busy = {"title": "Service Unavailable", "status": 503, "detail": "all streams open"}
    stub.routes["/jobs/j1/events"] = lambda handler: handler.send_json(503, busy, "application/problem+json")
    stub.routes["/jobs/j1"] = lambda handler: handler.send_json(200, job_json(status="finished"))
    slept: list[float] = []
    with Client(stub.base, sleep=slept.append) as client:
        assert follow(client, "j1").status == "finished"
        assert slept == []  # not retried: polled at once
        with pytest.raises(ServiceUnavailable):
            list(client.events("j1"))  # a plain caller retries (after Retry-After), then raises
        assert len(slept) == 2
