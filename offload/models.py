"""Typed results of the client: the job resource of the HTTP contract, as dataclasses.

The server renders the resource from ``app.jobs.schemas.JobResource``; these classes mirror it
for a client that has only this package and httpx (no pydantic, no Flask). Fields the server
adds later (``batch_id``, ``depends_on``) are read when present, and every key the client does
not know yet is kept in ``Job.extra``, so a newer server never breaks an older client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, NamedTuple, TypedDict

JobStatus = Literal["queued", "scheduled", "deferred", "started", "finished", "failed", "canceled", "stopped"]
TERMINAL_STATUSES = frozenset({"finished", "failed", "canceled", "stopped"})

_KNOWN = {
    "id", "type", "status", "queue", "created_at", "enqueued_at", "started_at", "ended_at", "attempts",
    "max_retries", "progress", "result", "error", "metadata", "links", "batch_id", "depends_on", "trace_id",
}  # fmt: skip


class JobOptions(TypedDict, total=False):
    """Options every job type accepts (CONTRACT.md); None means the server's default."""

    queue: str | None
    delay_seconds: float | None
    run_at: datetime | str | None
    timeout_seconds: int | None
    max_retries: int | None
    callback_url: str | None
    metadata: dict[str, Any] | None
    #: At most ``concurrency_limit`` of your jobs with this key queued or running at once.
    concurrency_key: str | None
    concurrency_limit: int | None


@dataclass(frozen=True)
class Progress:
    """How far a running job is: ``done`` of ``total`` units (``count_words``: characters)."""

    done: int
    total: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(done=int(data["done"]), total=int(data["total"]))

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass(frozen=True)
class JobError:
    """The last failure of a job: ``type`` is the kind (``SmtpError``, ``JobTimeout``, ...)."""

    type: str
    message: str


@dataclass(frozen=True)
class Job:
    """One job resource, as ``GET /jobs/{id}`` answers it."""

    id: str
    type: str
    status: JobStatus
    queue: str
    created_at: datetime | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempts: int = 0
    max_retries: int = 0
    progress: Progress | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None
    metadata: dict[str, Any] | None = None
    links: dict[str, str] = field(default_factory=dict)
    batch_id: str | None = None
    depends_on: list[str] | None = None
    #: The W3C trace the job belongs to (32 hex digits); None from a server without tracing.
    trace_id: str | None = None
    #: Keys of the resource this client does not know (from a newer server).
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        error = data.get("error")
        progress = data.get("progress")
        return cls(
            id=data["id"],
            type=data.get("type") or "",
            status=data["status"],
            queue=data.get("queue") or "",
            created_at=_timestamp(data.get("created_at")),
            enqueued_at=_timestamp(data.get("enqueued_at")),
            started_at=_timestamp(data.get("started_at")),
            ended_at=_timestamp(data.get("ended_at")),
            attempts=data.get("attempts") or 0,
            max_retries=data.get("max_retries") or 0,
            progress=Progress.from_dict(progress) if progress else None,
            result=data.get("result"),
            error=JobError(type=error.get("type", "Error"), message=error.get("message", "")) if error else None,
            metadata=data.get("metadata"),
            links=dict(data.get("links") or {}),
            batch_id=data.get("batch_id"),
            depends_on=data.get("depends_on"),
            trace_id=data.get("trace_id"),
            extra={key: value for key, value in data.items() if key not in _KNOWN},
        )

    @property
    def terminal(self) -> bool:
        """True once the job will not change by itself (finished, failed, canceled, stopped)."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "finished"

    def to_dict(self) -> dict[str, Any]:
        """The resource as JSON-ready data again (timestamps as RFC 3339 strings)."""
        data: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "status": self.status,
            "queue": self.queue,
            "created_at": _rfc3339(self.created_at),
            "enqueued_at": _rfc3339(self.enqueued_at),
            "started_at": _rfc3339(self.started_at),
            "ended_at": _rfc3339(self.ended_at),
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "progress": {"done": self.progress.done, "total": self.progress.total} if self.progress else None,
            "result": self.result,
            "error": {"type": self.error.type, "message": self.error.message} if self.error else None,
            "metadata": self.metadata,
            "links": self.links,
        }
        if self.batch_id is not None:
            data["batch_id"] = self.batch_id
        if self.depends_on is not None:
            data["depends_on"] = self.depends_on
        if self.trace_id is not None:
            data["trace_id"] = self.trace_id
        return {**data, **self.extra}


@dataclass(frozen=True)
class Page:
    """One page of ``GET /jobs``: its jobs, and the path of the next page (None on the last)."""

    jobs: list[Job]
    next: str | None


class Event(NamedTuple):
    """One server-sent event of ``GET /jobs/{id}/events``; unpacks as ``(event, data)``.

    ``data`` is a :class:`Job` for ``status`` and ``end``, a :class:`Progress` for
    ``progress``, and the decoded JSON (or the raw text) for any other event name.
    """

    event: str
    data: Any


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value)  # Python 3.11 reads RFC 3339's "Z"


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # RFC 3339, as the server writes it
