"""The pieces the OpenAPI document is made of: component schemas, shared texts and examples."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ...jobs import catalog, schemas
from ...settings import Settings
from ..answers import JobList as JobList  # the answer's model, in the document

REF_TEMPLATE = "#/components/schemas/{model}"
OPENAPI_VERSION = "3.1.0"
PROBLEM_JSON = "application/problem+json"


# --- response bodies that have no model of their own in app.jobs.schemas----------------------------


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


# --- the document ------------------------------------------------------------------------------


class _Components:
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


def ref(name: str, kind: str = "schemas") -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _constrain(schema: dict[str, Any], **keywords: Any) -> None:
    """Add keywords to a field's schema (to its non-null branch when it is nullable)."""
    branches = [branch for branch in schema.get("anyOf", [schema]) if branch.get("type") != "null"]
    for branch in branches:
        branch.update(keywords)


def _describe(schema: dict[str, Any], sentence: str) -> None:
    schema["description"] = f"{schema['description']} {sentence}" if schema.get("description") else sentence


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A nullable field's schema without ``null`` (a form cannot send null)."""
    branches = schema.get("anyOf")
    if branches:
        kept = [branch for branch in branches if branch.get("type") != "null"]
        if len(kept) == 1:
            rest = {key: value for key, value in schema.items() if key != "anyOf"}
            return {**kept[0], **rest}
    return schema


_DESCRIPTION = """\
offload runs slow work (counting words in large texts, sending email) off your web app's request path.
Submit a job with `POST /jobs`, then follow its `Location`: `GET /jobs/{id}?wait=N` answers as soon as the job
ends, or after N seconds.

Every error is an RFC 9457 `application/problem+json` document; validation errors list the fields in `errors`.
Timestamps are RFC 3339 UTC. Every answer carries `X-Request-ID` (yours, echoed, or one the server made).

This document describes this server as it is configured: its limits, the job types it accepts and whether it
needs an API key.
"""

_JOB_LINKS = {
    "GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"}},
    "CancelJob": {"operationId": "cancelJob", "parameters": {"job_id": "$response.body#/id"}},
    "RetryJob": {"operationId": "retryJob", "parameters": {"job_id": "$response.body#/id"}},
}

def header(description: str, *, required: bool = True, **schema: Any) -> dict[str, Any]:
    """A header component: a string, with the JSON Schema keywords in ``schema`` (pattern, enum)."""
    return {"description": description, "required": required, "schema": {"type": "string", **schema}}


def page_parameters(cursor_description: str) -> list[dict[str, Any]]:
    """The ``limit`` and ``cursor`` query parameters of a listing (``GET /jobs``, ``GET /schedules``)."""
    return [
        {
            "name": "limit",
            "in": "query",
            "description": "Page size.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
        },
        {
            "name": "cursor",
            "in": "query",
            "description": cursor_description,
            "schema": {"type": "string", "pattern": schemas.CURSOR_PATTERN},
        },
    ]


_JOB_URL = "^/jobs/[A-Za-z0-9_-]+$"
_SECONDS = "^[0-9]+$"

_HEADERS = {
    "RequestId": header(
        "This request's id: the one you sent in `X-Request-ID`, or one the server made.",
        pattern="^[A-Za-z0-9._:-]{1,128}$",
    ),
    "Location": header("The job's URL.", pattern=_JOB_URL),
    "OperationLocation": header(
        "The job's URL again, as Azure's long-running-operation convention names it: poll it "
        "until the job is terminal.",
        pattern=_JOB_URL,
    ),
    "RetryAfter": header("Seconds to wait before asking again.", pattern=_SECONDS),
    "RetryAfterWhilePending": header(
        "Seconds to wait before asking again; there while the job is not terminal.", required=False, pattern=_SECONDS
    ),
    "IdempotentReplayed": header(
        "`true` when this is the stored first answer to an earlier request with the same `Idempotency-Key`.",
        required=False,
        enum=["true"],
    ),
    "TraceParent": header(
        "W3C Trace Context: the server's span for this submission, in the trace of the `traceparent` you sent "
        "(or a new one). Its trace id is the job's `trace_id`.",
        pattern="^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$",
    ),
    "AcceptPost": header("The media types `POST /jobs` accepts."),
    "WwwAuthenticate": header("The Bearer challenge (RFC 6750)."),
}


def example_jobs(app_settings: Settings) -> list[dict[str, Any]]:
    """A submission of each served task that has an example (``@task(example=...)``), built-ins first."""
    served = catalog.served(app_settings)
    ordered = sorted(served, key=lambda task: not task.func_name.startswith("app."))
    return [{"type": task.type, **task.example} for task in ordered if task.example is not None]


def request_examples(app_settings: Settings) -> dict[str, Any]:
    """``POST /jobs`` examples: each served task's own (``@task(example=...)``), and one with options."""
    examples = {
        task.type: {"summary": task.description or task.type, "value": {"type": task.type, **task.example}}
        for task in catalog.served(app_settings)
        if task.example is not None
    }
    if examples:
        first = next(iter(examples.values()))["value"]
        examples["with_options"] = {
            "summary": "Run in ten minutes on the high queue, retrying twice on failure, with your own metadata",
            "value": {**first, "queue": "high", "delay_seconds": 600, "max_retries": 2, "metadata": {"order": 1234}},
        }
    return examples


def type_names(app_settings: Settings) -> list[str]:
    return catalog.type_names(app_settings)
