"""Typed results of the client: the job resource and the task description of the HTTP
contract, as dataclasses.

The server renders the resource from ``app.jobs.contract.schemas.JobResource``; these classes mirror it
for a client that has only this package and httpx (no pydantic, no Flask). Fields the server
adds later (``batch_id``, ``depends_on``) are read when present, and every key the client does
not know yet is kept in ``Job.extra`` (``TaskInfo.extra``), so a newer server never breaks an
older client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from typing import Any, Literal, NamedTuple, TypedDict

from .fields import TaskField, task_fields

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
    #: Ids of jobs that must finish before this one runs.
    depends_on: list[str] | None


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


@dataclass(frozen=True)
class TaskDefaults:
    """The options a job of a task gets when its submission does not set them (None: the
    server's own setting applies)."""

    queue: str = "default"
    timeout_seconds: int | None = None
    max_retries: int | None = None
    result_ttl_seconds: int | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskDefaults:
        return cls(
            queue=data.get("queue") or "default",
            timeout_seconds=data.get("timeout_seconds"),
            max_retries=data.get("max_retries"),
            result_ttl_seconds=data.get("result_ttl_seconds"),
            concurrency_key=data.get("concurrency_key"),
            concurrency_limit=data.get("concurrency_limit"),
        )


@dataclass(frozen=True)
class TaskInfo:
    """One job type the server takes, as ``GET /tasks/{type}`` describes it: ``args_schema`` is
    the JSON Schema of its own fields (its pydantic model's), :attr:`fields` the same read."""

    type: str
    description: str = ""
    args_schema: dict[str, Any] = field(default_factory=dict)
    defaults: TaskDefaults = field(default_factory=TaskDefaults)
    #: A submission's fields (without ``type``), or None.
    example: dict[str, Any] | None = None
    long_text_fields: tuple[str, ...] = ()
    upload_fields: tuple[str, ...] = ()
    links: dict[str, str] = field(default_factory=dict)
    #: The server's answer as it came, for ``--json`` and for keys this client does not know.
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInfo:
        return cls(
            type=data["type"],
            description=data.get("description") or "",
            args_schema=dict(data.get("args_schema") or {}),
            defaults=TaskDefaults.from_dict(data.get("defaults") or {}),
            example=data.get("example"),
            long_text_fields=tuple(data.get("long_text_fields") or ()),
            upload_fields=tuple(data.get("upload_fields") or ()),
            links=dict(data.get("links") or {}),
            raw=dict(data),
        )

    @cached_property
    def fields(self) -> list[TaskField]:
        """The task's own fields, from :attr:`args_schema` (name, type, required, default, ...)."""
        return task_fields(self.args_schema, long_text=self.long_text_fields, upload=self.upload_fields)

    def field_named(self, name: str) -> TaskField | None:
        return next((item for item in self.fields if item.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The description as the server sent it."""
        return dict(self.raw) if self.raw else {
            "type": self.type, "description": self.description, "args_schema": self.args_schema,
            "defaults": self.defaults.__dict__, "example": self.example,
            "long_text_fields": list(self.long_text_fields), "upload_fields": list(self.upload_fields),
            "links": self.links,
        }  # fmt: skip


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value)  # Python 3.11 reads RFC 3339's "Z"


def _rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # RFC 3339, as the server writes it
