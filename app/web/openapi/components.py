"""What the operations share (``components``): schemas collected from the models, the headers, the
header and path parameters, and the problem answers, each named once here and referred to by name
in the declarations (:mod:`app.web.routes`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from ...jobs import schemas
from ..headers import REQUEST_ID_PATTERN
from ..routes import ref

REF_TEMPLATE = "#/components/schemas/{model}"
OPENAPI_VERSION = "3.1.0"
from ..problems import PROBLEM_JSON as PROBLEM_JSON


class Components:
    """Collects JSON Schemas and their ``$defs`` into ``components/schemas``."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def add(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        """Put ``schema`` (and its ``$defs``) into the components; return a ``$ref`` to it."""
        schema = dict(schema)
        for def_name, definition in schema.pop("$defs", {}).items():
            self._put(def_name, definition)
        self._put(name, schema)
        return ref(name)

    def model(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, str]:
        return self.add(model.__name__, model.model_json_schema(ref_template=REF_TEMPLATE, mode=mode))

    def _put(self, name: str, schema: dict[str, Any]) -> None:
        known = self.schemas.get(name)
        if known is not None and known != schema:
            raise ValueError(f"two different schemas are both called {name!r}")
        self.schemas[name] = schema


def constrain(schema: dict[str, Any], **keywords: Any) -> None:
    """Add keywords to a field's schema (to its non-null branch when it is nullable)."""
    branches = [branch for branch in schema.get("anyOf", [schema]) if branch.get("type") != "null"]
    for branch in branches:
        branch.update(keywords)


def describe(schema: dict[str, Any], sentence: str) -> None:
    schema["description"] = f"{schema['description']} {sentence}" if schema.get("description") else sentence


def without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A nullable field's schema without ``null`` (a form cannot send null)."""
    branches = schema.get("anyOf")
    if branches:
        kept = [branch for branch in branches if branch.get("type") != "null"]
        if len(kept) == 1:
            rest = {key: value for key, value in schema.items() if key != "anyOf"}
            return {**kept[0], **rest}
    return schema


DESCRIPTION = """\
offload runs slow work (counting words in large texts, sending email) off your web app's request path.
Submit a job with `POST /jobs`, then follow its `Location`: `GET /jobs/{id}?wait=N` answers as soon as the job
ends, or after N seconds.

Every error is an RFC 9457 `application/problem+json` document; validation errors list the fields in `errors`.
Timestamps are RFC 3339 UTC. Every answer carries `X-Request-ID` (yours, echoed, or one the server made).

This document describes this server as it is configured: its limits, the job types it accepts and whether it
needs an API key.
"""

TAGS = [
    {"name": "jobs", "description": "Submit, watch, cancel, retry and list jobs."},
    {"name": "health", "description": "Liveness and readiness probes."},
    {"name": "batches", "description": "Many jobs in one request and one transaction, counted together."},
    {
        "name": "schedules",
        "description": "Periodic jobs: a job submission run on a cron expression (UTC) or every N seconds, "
        "once per tick however many workers run.",
    },
    {
        "name": "queues",
        "description": "Each queue's depths, paused state and workers; pause and resume a queue (admin keys).",
    },
    {"name": "tasks", "description": "The job types this server takes, each described from its registration."},
]


# --- headers: each component, and the HTTP header it is ------------------------------------------


def _header(http_name: str, description: str, *, required: bool = True, **schema: Any) -> tuple[str, dict[str, Any]]:
    """A header component: a string, with the JSON Schema keywords in ``schema`` (pattern, enum)."""
    return http_name, {"description": description, "required": required, "schema": {"type": "string", **schema}}


def _url(prefix: str, id_pattern: str = schemas.JOB_ID_FORM) -> str:
    return f"^/{prefix}/{id_pattern}$"


_SECONDS = "^[0-9]+$"

#: ``components/headers``: name -> (the HTTP header it is, its component).
HEADERS: dict[str, tuple[str, dict[str, Any]]] = {
    "RequestId": _header(
        "X-Request-ID",
        "This request's id: the one you sent in `X-Request-ID`, or one the server made.",
        pattern=REQUEST_ID_PATTERN,
    ),
    "Location": _header("Location", "The job's URL.", pattern=_url("jobs")),
    "OperationLocation": _header(
        "Operation-Location",
        "The job's URL again, as Azure's long-running-operation convention names it: poll it "
        "until the job is terminal.",
        pattern=_url("jobs"),
    ),
    "RetryAfter": _header("Retry-After", "Seconds to wait before asking again.", pattern=_SECONDS),
    "RetryAfterWhilePending": _header(
        "Retry-After",
        "Seconds to wait before asking again; there while the job is not terminal.",
        required=False,
        pattern=_SECONDS,
    ),
    "IdempotentReplayed": _header(
        "Idempotent-Replayed",
        "`true` when this is the stored first answer to an earlier request with the same `Idempotency-Key`.",
        required=False,
        enum=["true"],
    ),
    "TraceParent": _header(
        "traceparent",
        "W3C Trace Context: the server's span for this submission, in the trace of the `traceparent` you sent "
        "(or a new one). Its trace id is the job's `trace_id`.",
        pattern="^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$",
    ),
    "AcceptPost": _header("Accept-Post", "The media types `POST /jobs` accepts."),
    "AcceptPatch": _header("Accept-Patch", "The media types `PATCH` accepts (RFC 5789)."),
    "WwwAuthenticate": _header("WWW-Authenticate", "The Bearer challenge (RFC 6750)."),
    "BatchLocation": _header("Location", "The batch's URL.", pattern=_url("batches")),
    "BatchOperationLocation": _header(
        "Operation-Location",
        "The batch's URL again, as Azure's long-running-operation convention names it: poll it until `done`.",
        pattern=_url("batches"),
    ),
    "ScheduleLocation": _header("Location", "The schedule's URL.", pattern="^/schedules/[0-9a-f]{32}$"),
}


# --- parameters: path ids and the headers a request may carry ------------------------------------


def _path(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _request_header(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description, "schema": {"type": "string", **schema}}


#: ``components/parameters``. Ids have the contract's form (:data:`app.jobs.contract.schemas.JOB_ID_PATTERN`):
#: a malformed one is a 404 as an unknown one is, so the document may say which form exists.
PARAMETERS: dict[str, dict[str, Any]] = {
    "JobId": _path(
        "job_id",
        "The job's id. An unknown, expired or malformed id (or another client's) is 404. "
        "`batch` is none: `/jobs/batch` is `POST /jobs/batch`'s (`GET` there is 405).",
        {"type": "string", "pattern": schemas.JOB_ID_PATTERN, "not": {"const": "batch"}},
    ),
    "BatchId": _path(
        "batch_id",
        "The batch's id. An unknown, expired or malformed id (or another client's) is 404.",
        {"type": "string", "pattern": schemas.JOB_ID_PATTERN},
    ),
    "ScheduleId": _path(
        "schedule_id",
        "The schedule's id. An unknown, deleted or malformed id (or another client's) is 404.",
        {"type": "string", "pattern": schemas.JOB_ID_PATTERN},
    ),
    "QueueName": _path("name", "The queue's name. Any other name is 404.", {"type": "string"}),
    "TaskType": _path("type", "A task's `type`.", {"type": "string"}),
    "IdempotencyKey": _request_header(
        "Idempotency-Key",
        "Make the submission safe to repeat: the same key with the same body returns the "
        "first answer again (the same job); with a different body it is 422; while the first request "
        "is still being handled it is 409. Keys are kept at least 24 hours. 1 to 255 printable ASCII "
        "characters, spaces only inside (the IETF Idempotency-Key draft's string); anything else is 400.",
        minLength=1,
        maxLength=255,
        pattern=schemas.IDEMPOTENCY_KEY_PATTERN,
    ),
    # No pattern: a pattern declares other values invalid, i.e. refused with a 4xx, and the
    # contract replaces them instead. The answer's header (HEADERS) has it.
    "RequestId": _request_header(
        "X-Request-ID",
        "Your id for this request, echoed back and written in the server's logs: 1 to 128 "
        "of `A-Z a-z 0-9 . _ : -`. Any other value is not refused: the server replaces it with one it "
        "makes (the answer's `X-Request-ID` says which).",
    ),
    # No pattern either: W3C Trace Context says to ignore an invalid traceparent, not refuse it.
    "TraceParent": _request_header(
        "traceparent",
        "W3C Trace Context: the caller's span, `00-<32 hex trace id>-<16 hex span id>-<2 hex "
        "flags>`. The job joins that trace (its `trace_id`), under a span of the server's (the answer's "
        "`traceparent`). A missing or invalid header (not this format, all-zero ids, version `ff`, "
        "or more than one header) is ignored and a new trace is started: it is never a 4xx.",
    ),
    "TraceState": _request_header(
        "tracestate",
        "W3C Trace Context vendor data, kept with the job and sent on with its callback; "
        "ignored without a valid `traceparent` or when malformed.",
    ),
}


# --- problem answers (``components/responses``) ---------------------------------------------------

#: name -> (description, its headers beside ``X-Request-ID``). Each is an RFC 9457 problem.
PROBLEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "BadRequest": ("Malformed: the body is not JSON, not UTF-8, or not an object.", ()),
    "NotFound": ("No such job: unknown, expired, malformed, or another client's.", ()),
    "NotAJob": ("`batch` is no job id: `/jobs/batch` takes POST (and OPTIONS) only.", ()),
    "StateConflict": ("The job is in a state where this makes no sense (see `detail`).", ()),
    "IdempotencyInFlight": (
        "A request with the same `Idempotency-Key` is still being handled; retry shortly.",
        ("RetryAfter",),
    ),
    "ContentTooLarge": ("The body, or the text in it, is larger than this server accepts.", ()),
    "UnsupportedMediaType": (
        "Send `application/json` (or `multipart/form-data` for a task with upload fields).",
        ("AcceptPost",),
    ),
    "ValidationFailed": (
        "The request is well-formed but not valid (unknown type, missing or invalid field, an "
        "`Idempotency-Key` reused with a different body); `errors` says which fields and why.",
        (),
    ),
    "TooManyRequests": ("Rate limited; try again after `Retry-After`.", ("RetryAfter",)),
    "ServiceUnavailable": (
        "Redis is not reachable, or the queue is over its depth limit; try again after `Retry-After`.",
        ("RetryAfter",),
    ),
    "BatchNotFound": ("No such batch: unknown, expired, malformed, or another client's.", ()),
    "BulkUnsupportedMediaType": ("Send `application/json`.", ("AcceptPost",)),
    "QueueNotFound": ("No queue of this name.", ()),
    "ScheduleNotFound": ("No such schedule: unknown, deleted, malformed, or another client's.", ()),
    "ScheduleLimitReached": ("The service holds MAX_SCHEDULES schedules already; delete one first.", ()),
    "ScheduleUnsupportedMediaType": ("Send `application/json`.", ("AcceptPost",)),
    "PatchUnsupportedMediaType": (
        "Send `application/json` (or `application/merge-patch+json`).",
        ("AcceptPatch",),
    ),
    "TaskNotFound": ("No task of this type on this server.", ()),
}
#: Only on a server with API keys.
KEYED_PROBLEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Unauthorized": ("No API key, or not a valid one: send `Authorization: Bearer <key>`.", ("WwwAuthenticate",)),
    "Forbidden": ("The key is valid but not an admin key.", ("WwwAuthenticate",)),
}

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from the server's API_KEYS. A client key sees only its own jobs; "
        "an admin key sees all.",
    }
}


def headers(names: tuple[str, ...]) -> dict[str, Any]:
    """An answer's ``headers``: each named component under its HTTP name, and ``X-Request-ID``."""
    return {HEADERS[name][0]: ref(name, "headers") for name in (*names, "RequestId")}


def problem_answers(auth: bool) -> dict[str, Any]:
    found = {**PROBLEMS, **(KEYED_PROBLEMS if auth else {})}
    return {
        name: {
            "description": description,
            "headers": headers(names),
            "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
        }
        for name, (description, names) in found.items()
    }
