"""The JSON lines (app/logs.py): orjson encodes them (issue 26, item 3), with the same fields,
values and escaping the stdlib encoder gave; nothing it cannot encode is lost."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from pythonjsonlogger.json import JsonFormatter

from app import logs


def _line(handler: logging.Handler, stream: io.StringIO, message: str, *args, **extra) -> str:  # noqa: ANN002, ANN003
    logger = logging.getLogger("offload.test_logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    stream.seek(0)
    stream.truncate()
    logger.info(message, *args, extra=extra)
    return stream.getvalue()


def _stdlib_handler(stream: io.StringIO) -> logging.Handler:
    """The handler as it was before issue 26: python-json-logger's JsonFormatter on ``json``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"process": "web"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    )
    handler.addFilter(logs.ContextFilter())
    return handler


LINES = [
    ("%s %s %s", ("POST", "/jobs", 202), {"http_method": "POST", "path": "/jobs", "status": 202, "duration_ms": 3.14, "job_id": "j-1"}),
    ("%s %s %s", ("GET", "/healthz", 200), {"http_method": "GET", "path": "/healthz", "status": 200, "duration_ms": None, "job_id": None}),
    ("Successfully completed job %s in %s", ("j-2", "0:00:00.001"), {}),
    ("odd values: %s", ("x",), {"big": 2**70, "nested": {"a": [1, 2.5, None, True]}, "é": "café ☃", "lone": "\ud800"}),
]


@pytest.mark.parametrize(("message", "args", "extra"), LINES, ids=["access", "healthz", "worker", "odd"])
def test_a_line_has_the_fields_and_values_the_stdlib_encoder_gave(message, args, extra):
    logs.request_id_var.set("req-1")
    ours, theirs = io.StringIO(), io.StringIO()
    new = _line(logs.json_handler("web", ours), ours, message, *args, **extra)
    old = _line(_stdlib_handler(theirs), theirs, message, *args, **extra)
    assert new.endswith("\n") and new.count("\n") == 1
    new_fields, old_fields = json.loads(new), json.loads(old)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", new_fields.pop("time"))
    old_fields.pop("time")  # the same format; the two lines may fall in different seconds
    assert new_fields == old_fields
    assert new.isascii(), new  # as json.dumps made it: \u escapes, whatever the stream's encoding
    assert list(json.loads(new))[:5] == ["time", "level", "logger", "message", "process"]
    assert list(json.loads(new)) == list(json.loads(old))  # and in the same order


def test_lines_are_encoded_by_orjson():
    """Fails on the stdlib encoder, whose separators have spaces (``{"time": ...``)."""
    stream = io.StringIO()
    line = _line(logs.json_handler("worker", stream), stream, "done %s", "j-3", job_id="j-3")
    assert line.startswith('{"time":"') and '"process":"worker"' in line and '"job_id":"j-3"' in line
    assert logs.ENCODER.startswith("orjson ")


def test_an_exception_is_logged_with_its_traceback():
    stream = io.StringIO()
    logger = logging.getLogger("offload.test_logs.exc")
    logger.handlers[:] = [logs.json_handler("worker", stream)]
    logger.propagate = False
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    line = json.loads(stream.getvalue())
    assert line["level"] == "ERROR" and "ValueError: boom" in line["exc_info"]


def test_the_access_line_of_a_request_in_process(client):
    """app.web.access_line (one line a request): its fields, the request id of the log context,
    and the job a request made; nothing at all when INFO is off."""
    stream = io.StringIO()
    handler = logs.json_handler("web", stream)
    http = logging.getLogger("offload.http")
    http.handlers[:] = [handler]
    http.propagate = False
    http.setLevel(logging.INFO)
    try:
        made = client.post("/jobs", json={"type": "noop"}, headers={"X-Request-ID": "req-42"}).get_json()
        client.get("/healthz")
        http.setLevel(logging.WARNING)
        client.get("/healthz")
    finally:
        http.handlers[:] = []
        http.propagate = True
        http.setLevel(logging.NOTSET)
    post, health = (json.loads(line) for line in stream.getvalue().splitlines())
    assert {k: post[k] for k in ("level", "logger", "message", "process", "http_method", "path", "status", "request_id", "job_id")} == {
        "level": "INFO", "logger": "offload.http", "message": "POST /jobs 202", "process": "web", "http_method": "POST",
        "path": "/jobs", "status": 202, "request_id": "req-42", "job_id": made["id"],
    }  # fmt: skip
    assert isinstance(post["duration_ms"], float) and post["duration_ms"] >= 0
    assert (health["message"], health["job_id"], len(health["request_id"])) == ("GET /healthz 200", None, 32)
