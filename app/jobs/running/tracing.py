"""A job's place in its trace: the span of each attempt, and the trace its callback carries.

A job's meta ``trace`` (written at submission: :func:`app.tracing.to_meta`) names its trace and
the span its attempts are children of. The worker makes one span per attempt
(:func:`start_attempt`), current while the attempt runs (so its log lines carry it), and exports
it when it ends (:func:`end_attempt`, only when OpenTelemetry export is on). A callback delivery
is a job of its own whose trace is the ended job's, with that attempt as its parent
(:func:`delivery_meta`).
"""

from __future__ import annotations

import logging

from rq.job import Job

from ... import telemetry, tracing
from ..reading.resource import error_of, public_status

log = logging.getLogger(__name__)

#: A job's public status after an attempt, as the attempt's ``offload.job.outcome``.
_OUTCOMES = {"queued": "retried", "scheduled": "retried"}


def start_attempt(job: Job) -> tuple[tracing.SpanContext | None, tracing.SpanContext]:
    """The job's parent span (None for a root) and a new span for this attempt; a job stored
    without a trace (before tracing existed) gets a trace of its own."""
    found = tracing.from_meta(job.meta.get("trace"))
    return found if found is not None else (None, tracing.new_root())


def end_attempt(job: Job, parent: tracing.SpanContext | None, span: tracing.SpanContext, start_ns: int) -> None:
    """Export the attempt's span (a no-op unless export is on), with the job's id, type, queue,
    attempt number and outcome, and an ERROR status when the attempt failed.

    The job is read again first: under the forking worker the work horse, not this process,
    recorded the outcome."""
    if not telemetry.enabled():
        return
    outcome, error = "unknown", None
    try:
        job.refresh()
        outcome = public_status(job.get_status(refresh=False))
        outcome = _OUTCOMES.get(outcome, outcome)
        if outcome != "finished":
            found = error_of(job)
            error = f"{found['type']}: {found['message']}" if found else outcome
    except Exception:  # noqa: BLE001 - expired or deleted meanwhile: export what is known
        log.debug("could not read job %s after its attempt", job.id, exc_info=True)
    job_type = job.meta.get("type")
    telemetry.export(
        f"run {job_type}",
        span,
        parent,
        start_ns=start_ns,
        kind="consumer",
        attributes={
            "offload.job.id": job.id,
            "offload.job.type": job_type,
            "offload.job.queue": job.origin,
            "offload.job.attempt": getattr(job, "attempts", None),
            "offload.job.outcome": outcome,
            "messaging.system": "offload",
            "messaging.operation.type": "process",
            "messaging.destination.name": job.origin,
            "messaging.message.id": job.id,
        },
        error=error,
    )


def delivery_meta(job: Job) -> dict | None:
    """The meta ``trace`` of ``job``'s callback delivery: under the attempt that ended the job
    when that is the current span, else under the job's own parent (maintenance failing an
    abandoned job runs outside any attempt)."""
    own = job.meta.get("trace")
    span = tracing.current.get()
    if span is not None and isinstance(own, dict) and span.trace_id == own.get("trace_id"):
        return tracing.to_meta(span)
    return own if isinstance(own, dict) else None
