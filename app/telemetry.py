"""OpenTelemetry export of offload's spans, over OTLP/HTTP (protobuf), when an endpoint is set.

Off by default: with no endpoint (``OFFLOAD_OTEL_ENDPOINT``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), :func:`configure` returns at once, the SDK is never
imported and :func:`export` is one ``is None`` test. Trace propagation (:mod:`app.tracing`)
works either way.

offload makes its own span ids (they are in the job's meta, the log lines and the callbacks'
``traceparent`` before anything is exported), so spans are not started through an SDK tracer:
each is handed, finished, to a ``BatchSpanProcessor`` as a ``ReadableSpan`` with those ids. The
processor exports from a thread of its own; a forked process (a work horse) gets a fresh one from
the SDK's at-fork hook, and the queue is flushed before a horse exits (:func:`flush`, at most two
seconds) and when a process ends (:func:`shutdown`, also at exit; bounded by the exporter's own
timeout, ``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by default). A span the caller marked not sampled (flags 00)
is not exported. The export headers (``OTEL_EXPORTER_OTLP_HEADERS``, often an API key) are never
logged; the endpoint is logged without its user info and query.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .settings import Settings
    from .tracing import SpanContext

log = logging.getLogger("offload.telemetry")

_processor: Any = None  # the BatchSpanProcessor while exporting, else None
_resource: Any = None
_scope: Any = None
_lock = threading.Lock()

#: Span kinds by name, so callers need not import the OpenTelemetry API.
KINDS = ("internal", "server", "client", "producer", "consumer")


def configure(settings: Settings, service: str) -> bool:
    """Start exporting if ``settings`` name an endpoint (once per process); True if exporting.
    ``service`` is the service name unless ``OTEL_SERVICE_NAME`` says otherwise."""
    global _processor, _resource, _scope
    url = settings.otel_traces_url
    if url is None:
        return False
    with _lock:
        if _processor is not None:
            return True
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        _resource = Resource.create({"service.name": settings.otel_service_name or service})
        _scope = InstrumentationScope("offload")
        _processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=url, headers=settings.otel_headers))
    atexit.register(shutdown)
    log.info("exporting traces over OTLP/HTTP to %s", redacted(url), extra={"service": settings.otel_service_name or service})
    return True


def enabled() -> bool:
    return _processor is not None


def export(  # noqa: PLR0913 - a span's fields
    name: str,
    span: SpanContext,
    parent: SpanContext | None,
    *,
    start_ns: int,
    end_ns: int | None = None,
    kind: str = "internal",
    attributes: dict[str, Any] | None = None,
    error: str | None = None,
    remote_parent: bool = False,
) -> None:
    """Hand one finished span to the exporter (nothing when export is off). ``error`` sets the
    span's status to ERROR with that description. Never raises: tracing must not fail a job."""
    processor = _processor
    if processor is None:
        return
    try:
        from opentelemetry import trace as api
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace.status import Status, StatusCode

        flags = api.TraceFlags(api.TraceFlags.SAMPLED if span.sampled else api.TraceFlags.DEFAULT)
        state = _trace_state(span.tracestate)
        context = api.SpanContext(int(span.trace_id, 16), int(span.span_id, 16), False, flags, state)
        parent_context = None
        if parent is not None:
            parent_context = api.SpanContext(
                int(parent.trace_id, 16), int(parent.span_id, 16), remote_parent, flags, _trace_state(parent.tracestate)
            )
        readable = ReadableSpan(
            name,
            context=context,
            parent=parent_context,
            resource=_resource,
            attributes={key: value for key, value in (attributes or {}).items() if value is not None},
            kind=api.SpanKind[kind.upper()],
            status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET),
            start_time=start_ns,
            end_time=end_ns or time.time_ns(),
            instrumentation_scope=_scope,
        )
        processor.on_end(readable)
    except Exception:  # noqa: BLE001
        log.warning("could not export span %s", name, exc_info=True)


def flush(timeout_seconds: float = 2.0) -> None:
    """Export what is queued now, waiting at most ``timeout_seconds`` (a work horse calls this
    before it exits). The SDK's force_flush ignores its timeout and blocks for as long as the
    exporter retries an unreachable collector (10 s by default): run here in a thread that the
    horse's exit abandons, a collector outage costs a horse two seconds, not ten."""
    processor = _processor
    if processor is None:
        return
    thread = threading.Thread(target=_flush_quietly, args=(processor,), name="offload-span-flush", daemon=True)
    thread.start()
    thread.join(timeout_seconds)


def _flush_quietly(processor: Any) -> None:
    try:
        processor.force_flush()
    except Exception:  # noqa: BLE001
        log.warning("could not flush spans", exc_info=True)


def shutdown() -> None:
    """Flush and stop exporting (at worker shutdown, and at exit)."""
    global _processor
    with _lock:
        processor, _processor = _processor, None
    if processor is not None:
        try:
            processor.shutdown()
        except Exception:  # noqa: BLE001
            log.warning("could not flush spans at shutdown", exc_info=True)


def redacted(url: str) -> str:
    """``url`` without user info or query: fit for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


def _trace_state(value: str | None) -> Any:
    if not value:
        return None
    from opentelemetry.trace.span import TraceState

    return TraceState.from_header([value])
