"""Tracing across real processes: gunicorn, a worker (fast, and RQ's forking one) and Valkey.

A job posted with a ``traceparent`` is run by a real worker whose JSON log lines for it carry the
trace id; its callback reaches a real HTTP receiver with a ``traceparent`` of the same trace; and
with OTLP export on, a real HTTP collector receives the spans (decoded with opentelemetry-proto):
the submission under the caller's span, the attempt under the submission, the delivery's attempt
under the job's, and the delivery's POST under that, all in one trace.
"""

from __future__ import annotations

import json

import pytest

from app import tracing
from app.tasks import webhook

from ..conftest import wait_until
from ..receiver import Receiver
from ..test_telemetry import spans_of

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CALLER_SPAN}-01"
SECRET = "whsec-tracing"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def collector():
    server = Receiver(path="/v1/traces")
    yield server
    server.close()


def _lower(headers: dict) -> dict:
    return {name.lower(): value for name, value in headers.items()}


def _log_lines(stack, process: str) -> list[dict]:
    lines = []
    for line in stack.logs().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("process") == process:
            lines.append(record)
    return lines


@pytest.mark.deployments("default", "forking")
def test_the_workers_log_lines_and_the_callback_carry_the_callers_trace(stack_factory, receiver):
    stack = stack_factory(WEBHOOK_SECRET=SECRET, ALLOW_PRIVATE_CALLBACKS="1", LOG_LEVEL="DEBUG")
    response = stack.post(
        {"type": "count_words", "text": "trace me", "callback_url": receiver.url},
        headers={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"},
    )
    assert response.status_code == 202
    submission = tracing.parse_traceparent(response.headers["traceparent"])
    assert submission.trace_id == TRACE and submission.span_id != CALLER_SPAN
    job_id = response.json()["id"]
    assert stack.wait_for(job_id)["trace_id"] == TRACE
    wait_until(lambda: receiver.deliveries, timeout=30, what="the callback")

    headers, body = receiver.deliveries[0]
    assert webhook.verify(SECRET, body, headers["Offload-Signature"])
    sent = tracing.parse_traceparent(_lower(headers)["traceparent"])
    assert sent.trace_id == TRACE and sent.span_id not in (CALLER_SPAN, submission.span_id)
    assert _lower(headers)["tracestate"] == "congo=t61rcWkgMzE"
    assert json.loads(body)["trace_id"] == TRACE

    # Every worker line about the job from its start to its end (the work horse's included)
    # carries the trace and one attempt span; the delivery's lines carry the same trace.
    def job_lines() -> list[dict]:
        return [line for line in _log_lines(stack, "worker") if line.get("job_id") == job_id and "trace_id" in line]

    wait_until(lambda: any(line["message"].startswith("Successfully completed") for line in job_lines()), what="the log")
    lines = job_lines()
    assert {line["trace_id"] for line in lines} == {TRACE}
    attempt_spans = {line["span_id"] for line in lines}
    assert len(attempt_spans) == 1 and submission.span_id not in attempt_spans
    untraced = [
        line["message"] for line in _log_lines(stack, "worker")
        if line.get("job_id") == job_id and "trace_id" not in line and not line["message"].startswith("Worker")
    ]  # fmt: skip
    assert untraced == []  # only the line that takes the job, before its attempt starts
    delivery_id = headers["Offload-Delivery"]

    def delivery_lines() -> list[dict]:
        return [line for line in _log_lines(stack, "worker") if line.get("job_id") == delivery_id and "trace_id" in line]

    wait_until(delivery_lines, what="the delivery's log lines")
    assert {line["trace_id"] for line in delivery_lines()} == {TRACE}
    # The web side's lines of the submission carry its span too.
    web = [line for line in _log_lines(stack, "web") if line.get("message") == "job submitted" and line.get("job_id") == job_id]
    assert [(line["trace_id"], line["span_id"]) for line in web] == [(TRACE, submission.span_id)]


@pytest.mark.deployments("default", "forking")
def test_with_otlp_export_the_collector_gets_one_trace_of_parent_and_child_spans(stack_factory, receiver, collector):
    stack = stack_factory(
        WEBHOOK_SECRET=SECRET,
        ALLOW_PRIVATE_CALLBACKS="1",
        OFFLOAD_OTEL_ENDPOINT=collector.url.removesuffix("/v1/traces"),
        OTEL_EXPORTER_OTLP_HEADERS="x-api-key=t0ps3cret",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    response = stack.post({"type": "count_words", "text": "a b", "callback_url": receiver.url}, headers={"traceparent": TRACEPARENT})
    job_id = response.json()["id"]
    failing = stack.post({"type": "fail", "message": "broken on purpose"}).json()
    assert stack.wait_for(job_id)["status"] == "finished"
    assert stack.wait_for(failing["id"])["status"] == "failed"
    wait_until(lambda: receiver.deliveries, timeout=30, what="the callback")
    sent = tracing.parse_traceparent(_lower(receiver.deliveries[0][0])["traceparent"])

    def spans() -> dict[str, list]:
        found: dict[str, list] = {}
        for service, span in spans_of(collector):
            found.setdefault(span.name, []).append((service, span))
        return found

    names = ("POST /jobs", "run count_words", "run webhook", "POST", "run fail")
    wait_until(lambda: all(name in spans() for name in names), timeout=30, what=f"the spans {names}")
    found = spans()
    assert all(_lower(headers)["x-api-key"] == "t0ps3cret" for headers, _ in collector.deliveries)

    def one(name: str, trace: str = TRACE):
        [(service, span)] = [item for item in found[name] if item[1].trace_id.hex() == trace]
        return service, span

    web_service, submit = one("POST /jobs")
    run_service, run = one("run count_words")
    _, delivery_run = one("run webhook")
    _, post = one("POST")
    assert (web_service, run_service) == ("offload-web", "offload-worker")
    # The chain, parent to child: caller -> submission -> attempt -> delivery attempt -> its POST.
    assert submit.parent_span_id.hex() == CALLER_SPAN and submit.kind == submit.SPAN_KIND_SERVER
    assert submit.span_id.hex() == response.headers["traceparent"].split("-")[2]
    assert run.parent_span_id == submit.span_id and run.kind == run.SPAN_KIND_CONSUMER
    assert delivery_run.parent_span_id == run.span_id
    assert post.parent_span_id == delivery_run.span_id and post.kind == post.SPAN_KIND_CLIENT
    assert post.span_id.hex() == sent.span_id  # the receiver saw the POST's own span
    attributes = {a.key: a.value for a in run.attributes}
    assert attributes["offload.job.id"].string_value == job_id
    assert attributes["offload.job.type"].string_value == "count_words"
    assert attributes["offload.job.queue"].string_value == "default"
    assert attributes["offload.job.attempt"].int_value == 1
    assert attributes["offload.job.outcome"].string_value == "finished"
    assert run.status.code != run.status.STATUS_CODE_ERROR
    assert {a.key: a.value for a in post.attributes}["http.response.status_code"].int_value == 204
    # The failing job (posted without a traceparent) is a trace of its own, its attempt an error.
    _, failed = one("run fail", failing["trace_id"])
    assert failed.status.code == failed.status.STATUS_CODE_ERROR and "broken on purpose" in failed.status.message
    assert {a.key: a.value for a in failed.attributes}["offload.job.outcome"].string_value == "failed"
    assert "t0ps3cret" not in stack.logs()
