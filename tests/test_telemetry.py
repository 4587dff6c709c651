"""OTLP export (app/telemetry.py) and its settings: off unless an endpoint is set (the SDK is then
never imported), and when on, spans with offload's own ids reach a real HTTP collector."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError

from app import telemetry, tracing
from app.settings import Settings

from .conftest import ROOT, wait_until
from .receiver import Receiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _settings(**env: str) -> Settings:
    return Settings(**{name.lower(): value for name, value in env.items()})


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, None),
        ({"OFFLOAD_OTEL_ENDPOINT": "http://collector:4318"}, "http://collector:4318/v1/traces"),
        ({"OFFLOAD_OTEL_ENDPOINT": "http://collector:4318/"}, "http://collector:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com"}, "https://otlp.example.com/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"}, "http://c:4318/custom"),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b"},
            "http://c:4318/custom",
        ),
        ({"OFFLOAD_OTEL_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/x"}, "http://a:1/v1/traces"),
        ({"OFFLOAD_OTEL_ENDPOINT": ""}, None),
    ],
)
def test_the_traces_url_comes_from_offloads_variable_then_the_standard_ones(env, url):
    assert _settings(**env).otel_traces_url == url


@pytest.mark.parametrize("value", ["collector:4318", "grpc://collector:4317", "http://", "ftp://x"])
def test_an_endpoint_that_is_not_an_http_url_stops_start_up(value):
    with pytest.raises(ValidationError, match="OTLP endpoints must be http"):
        _settings(OFFLOAD_OTEL_ENDPOINT=value)


def test_otlp_headers_are_parsed_url_decoded_and_kept_secret():
    settings = _settings(OTEL_EXPORTER_OTLP_HEADERS="x-api-key=s3cr%3Dt,  team = core ")
    assert "s3cr" not in repr(settings) and "s3cr" not in str(settings.model_dump())
    assert settings.otel_headers == {
        "x-api-key": "s3cr=t",
        "team": "core",
    }


@pytest.mark.parametrize("value", ["novalue", "=s3cret", "bad name=s3cret", "a=1,oops"])
def test_malformed_otlp_headers_stop_start_up_without_showing_them(value):
    with pytest.raises(ValidationError) as raised:
        _settings(OTEL_EXPORTER_OTLP_HEADERS=value)
    assert "must look like name=value" in str(raised.value)
    assert "s3cret" not in str(raised.value) and "oops" not in str(raised.value)


def test_redacted_drops_user_info_and_query():
    assert telemetry.redacted("https://user:pw@otlp.example.com:4318/v1/traces?token=t") == (
        "https://otlp.example.com:4318/v1/traces"
    )


def test_without_an_endpoint_nothing_is_imported_or_exported():
    """POST /jobs with a traceparent, through the whole app, never loads the SDK's tracing, the
    exporter or protobuf, and starts no export thread. (redis-py 8 itself imports the SDK's
    metrics package when it is installed, for its own opt-in metrics: not offload's doing.)"""
    code = """
import sys, fakeredis
from app import create_app, telemetry
from app.jobs.store import JobQueue
from app.settings import get_settings
settings = get_settings()
app = create_app(settings, job_queue=JobQueue(fakeredis.FakeRedis(), settings))
answer = app.test_client().post("/jobs", json={"type": "count_words", "text": "a"},
                                headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
assert answer.status_code == 202 and answer.json["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
assert not telemetry.enabled()
import threading
ours = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.proto", "google.protobuf")
loaded = sorted(name for name in sys.modules if name.startswith(ours))
assert not loaded, loaded
assert not [t.name for t in threading.enumerate() if t.name.startswith("OtelBatch")]
print("ok")
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.fixture
def collector():
    server = Receiver(path="/v1/traces")
    yield server
    server.close()


@pytest.fixture
def exporting(collector, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    settings = _settings(
        OFFLOAD_OTEL_ENDPOINT=collector.url.removesuffix("/v1/traces"), OTEL_EXPORTER_OTLP_HEADERS="x-api-key=k3y"
    )
    assert telemetry.configure(settings, "offload-test")
    yield collector
    telemetry.shutdown()
    assert not telemetry.enabled()


def spans_of(collector: Receiver) -> list[tuple[str, object]]:
    """(service name, span) of every span the collector has received."""
    found = []
    for _headers, body in list(collector.deliveries):
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            service = next(a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name")
            found += [(service, span) for scope in resource_spans.scope_spans for span in scope.spans]
    return found


def test_a_span_is_exported_with_offloads_ids_parent_attributes_and_status(exporting):
    parent = tracing.SpanContext(TRACE, "00f067aa0ba902b7")
    span = parent.child()
    start = time.time_ns()
    telemetry.export(
        "run count_words", span, parent, start_ns=start, kind="consumer",
        attributes={"offload.job.id": "j1", "offload.job.attempt": 2, "dropped": None}, error="RuntimeError: no",
    )  # fmt: skip
    telemetry.flush()
    wait_until(lambda: spans_of(exporting), what="the export")
    headers = {name.lower(): value for name, value in exporting.deliveries[0][0].items()}
    assert headers["content-type"] == "application/x-protobuf" and headers["x-api-key"] == "k3y"
    [(service, exported)] = spans_of(exporting)
    assert service == "offload-test" and exported.name == "run count_words"
    assert exported.trace_id.hex() == TRACE and exported.span_id.hex() == span.span_id
    assert exported.parent_span_id.hex() == parent.span_id
    assert exported.start_time_unix_nano == start <= exported.end_time_unix_nano
    assert exported.kind == exported.SPAN_KIND_CONSUMER
    assert exported.status.code == exported.status.STATUS_CODE_ERROR and exported.status.message == "RuntimeError: no"
    attributes = {a.key: a.value for a in exported.attributes}
    assert attributes["offload.job.id"].string_value == "j1" and attributes["offload.job.attempt"].int_value == 2
    assert "dropped" not in attributes


def test_an_unsampled_span_is_not_exported(exporting):
    unsampled = tracing.SpanContext(TRACE, "00f067aa0ba902b7", sampled=False)
    telemetry.export("skipped", unsampled.child(), unsampled, start_ns=time.time_ns())
    sampled = tracing.new_root()
    telemetry.export("kept", sampled, None, start_ns=time.time_ns())
    telemetry.flush()
    wait_until(lambda: spans_of(exporting), what="the export")
    assert [span.name for _, span in spans_of(exporting)] == ["kept"]
    assert spans_of(exporting)[0][1].parent_span_id == b""  # a root


def test_a_flush_waits_two_seconds_at_most_when_the_collector_is_unreachable(monkeypatch):
    """A forking worker's horse flushes before it exits: a collector outage must not hold every
    horse for the exporter's whole retry budget."""
    from .conftest import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "4")
    assert telemetry.configure(_settings(OFFLOAD_OTEL_ENDPOINT=f"http://127.0.0.1:{free_port()}"), "offload-test")
    try:
        telemetry.export("lost", tracing.new_root(), None, start_ns=time.time_ns())
        started = time.monotonic()
        telemetry.flush()
        assert time.monotonic() - started < 3  # the exporter alone retries for 4 s here
    finally:
        telemetry.shutdown()
