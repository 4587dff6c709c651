"""``make run``'s log (issue 25, item 7): one JSON format for every process of the stack, a quiet
SMTP sink, and a program that cannot start stops the stack with a line nobody can miss.

A third of the lines came from the SMTP sink (six a connection); supervisord's plain-text lines
(with a CRIT about running as root), gunicorn's and Valkey's sat between the JSON lines; and a
Valkey that could not bind was retried forever, buried in that log, while the rest ran on.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
import requests

from .devstack import DevStack

pytestmark = pytest.mark.integration


def _lines(output: str) -> tuple[list[dict], list[str]]:
    """The JSON lines of the stack's output, and every other line after the launcher's banner."""
    banner, _, rest = output.partition("Ctrl-C stops everything.\n")
    assert banner.startswith("offload dev stack"), output[:500]
    parsed, other = [], []
    for line in rest.splitlines():
        if not line.strip():
            continue
        try:
            parsed.append(json.loads(line))
        except ValueError:
            other.append(line)
    return parsed, other


def test_every_process_of_the_stack_writes_json_lines_and_the_sink_one_a_message(tmp_path):
    stack = DevStack(tmp_path, "logs", extra={"WORKER_COUNT": "2"}).start().wait_ready(workers=2)
    mails = 5
    ids = [
        requests.post(
            f"{stack.base}/jobs", json={"type": "send_email", "to": "dev@example.com", "subject": f"s{n}", "body": "b"},
            timeout=10,
        ).json()["id"]
        for n in range(mails)
    ]  # fmt: skip
    for job_id in ids:
        assert stack.job(job_id, wait=20).json()["status"] == "finished"
    stack.stop()
    parsed, other = _lines(stack.output())
    assert not other, "lines that are not JSON:\n" + "\n".join(other[:20])
    processes = {line.get("process") for line in parsed}
    assert {"supervisor", "valkey", "smtp", "worker", "web"} <= processes, processes
    for line in parsed:
        assert {"time", "level", "logger", "message", "process"} <= set(line), line
    assert any(line["logger"] == "gunicorn.error" for line in parsed), "gunicorn's own lines, as JSON"
    assert any(line["message"].startswith("running: valkey") for line in parsed), "supervisord's, as JSON"
    assert not any(line["level"] == "CRITICAL" for line in parsed)
    sink = [line for line in parsed if line["process"] == "smtp"]
    assert len(sink) <= mails + 2, [line["message"] for line in sink]  # a start line and one a message


@pytest.mark.timeout(120)
def test_a_program_that_cannot_start_stops_the_stack_with_an_error_line(tmp_path):
    """The launcher checks ports before it starts anything; what it cannot foresee (here Valkey
    refusing its settings at start) ends the same way: the stack stops and says which program."""
    stack = DevStack(tmp_path, "broken", extra={"REDIS_MAXMEMORY": "lots"})  # Valkey refuses to start
    started = time.monotonic()
    stack.start()
    assert stack.process is not None
    try:
        code = stack.process.wait(60)
    finally:
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGTERM)
    took = time.monotonic() - started
    parsed, _ = _lines(stack.output())
    errors = [line for line in parsed if line["level"] == "ERROR" and line["process"] == "supervisor"]
    assert errors and "valkey" in errors[0]["message"] and "stopping" in errors[0]["message"], parsed[-10:]
    assert code == 0 and took < 45, (code, took)
