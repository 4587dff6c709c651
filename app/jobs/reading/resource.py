"""The job resource: what a client sees of a job, from what RQ stores.

:func:`describe` maps RQ's job to the contract's resource (statuses, timestamps, the error
of the last attempt); its links are the contract's (:func:`app.jobs.contract.schemas.links`).
"""

from __future__ import annotations

import re

from rq.job import Job, JobStatus
from rq.results import Result

from ..contract.schemas import TERMINAL_STATUSES, rfc3339

_EXCEPTION_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")


def describe(job: Job) -> dict:
    """The job resource (``JobResource`` in :mod:`app.jobs.contract.schemas`), without ``links``:
    each answer adds those (:func:`app.jobs.contract.schemas.with_links`)."""
    status = public_status(job.get_status(refresh=False))
    meta = job.meta
    attempts = getattr(job, "attempts", 0)
    result = error = None
    if status == "finished":
        result = job.return_value()
    elif status in ("failed", "stopped") or (status in ("queued", "scheduled") and attempts):
        error = error_of(job)
    return {
        "id": job.id,
        "type": meta.get("type"),
        "status": status,
        "queue": job.origin,
        "created_at": rfc3339(job.created_at),
        "enqueued_at": rfc3339(job.enqueued_at),
        "started_at": rfc3339(job.started_at) if attempts else None,
        "ended_at": rfc3339(job.ended_at) if status in TERMINAL_STATUSES else None,
        "attempts": attempts,
        "max_retries": meta.get("max_retries", 0),
        "progress": meta.get("progress"),
        "result": result,
        "error": error,
        "metadata": meta.get("metadata"),
        "schedule_id": meta.get("schedule_id"),
        "depends_on": meta.get("depends_on"),
        "batch_id": meta.get("batch_id"),
        "concurrency_key": meta.get("concurrency_key"),
        "concurrency_limit": job.rate_limit_concurrency if meta.get("concurrency_key") else None,
        "trace_id": (meta.get("trace") or {}).get("trace_id"),
    }


def public_status(status: JobStatus | None) -> str:
    if status is None:
        return "queued"
    value = status.value if isinstance(status, JobStatus) else str(status)
    if value in ("created", "ready_to_enqueue", "rate_limited"):
        return "queued"
    return value


def error_of(job: Job) -> dict | None:
    """The last failure as ``{"type", "message"}``, from the traceback RQ keeps."""
    result = job.latest_result()
    if result is None or result.type == Result.Type.SUCCESSFUL or not result.exc_string:
        if job.get_status(refresh=False) == JobStatus.STOPPED:
            return {"type": "Stopped", "message": "the job was stopped while it ran"}
        return job.meta.get("last_error")
    return describe_exception(result.exc_string, timeout=job.timeout)


def describe_exception(exc_string: str, timeout: int | None = None) -> dict:
    lines = [line for line in exc_string.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "unknown error"
    match = _EXCEPTION_LINE.match(last)
    if "AbandonedJobError" in last or last.startswith("Work-horse terminated"):
        return {"type": "WorkerDied", "message": f"the worker running the job died ({last.rstrip('; ')})"}
    if not match or " " in (match.group("type") or ""):
        return {"type": "Error", "message": last}
    exc_type = match.group("type").rpartition(".")[2]
    message = match.group("message") or exc_type
    if exc_type == "WorkerShutdown":
        return {"type": "WorkerDied", "message": message}
    if exc_type == "JobTimeoutException":
        return {"type": "JobTimeout", "message": f"timed out: the attempt ran longer than {timeout} seconds"}
    return {"type": exc_type, "message": message}
