"""The OpenAPI 3.1 document of offload at ``/openapi.json``, and a browsable view of it at ``/docs``.

The schemas in the document are generated from the pydantic models that validate requests
and describe responses (:mod:`app.schemas`), never copied by hand: change a model and the
document follows. Limits that the models check against settings (text size, timeouts,
retries, ``?wait``) are written in as this server is configured, and so are the job types
it accepts and whether it needs an API key: the document describes the running server.

``/docs`` is Swagger UI, served from offload itself (the ``swagger-ui-bundle-v2`` package
ships its files), so the page loads nothing from a CDN or any other origin.
"""

from __future__ import annotations

import copy
import json
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from flask import Blueprint, Response, abort, current_app, render_template, send_from_directory
from pydantic import BaseModel, Field, TypeAdapter

from . import schemas
from .settings import Settings

bp = Blueprint("openapi", __name__)

REF_TEMPLATE = "#/components/schemas/{model}"
OPENAPI_VERSION = "3.1.0"
PROBLEM_JSON = "application/problem+json"

#: The Swagger UI files /docs needs; nothing else of the package is served.
SWAGGER_UI_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-16x16.png", "favicon-32x32.png"})

#: Only this origin's scripts, styles, images and API: /docs loads nothing from anywhere else.
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # Swagger UI sets a few inline styles (e.g. on collapsing sections).
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


# --- response bodies that have no model of their own in app.schemas -----------------------------


class JobList(BaseModel):
    """What ``GET /jobs`` answers: a page of jobs, newest first."""

    jobs: list[schemas.JobResource]
    next: str | None = Field(description="The URL of the next page (same filters), or null on the last page.")


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


def document_for(app_settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of an offload app with these settings."""
    return _Builder(app_settings).build()


class _Builder:
    def __init__(self, app_settings: Settings) -> None:
        self.settings = app_settings
        self.components = _Components()
        self.auth = app_settings.auth_enabled

    def build(self) -> dict[str, Any]:
        components = self.components
        request_ref = components.add(
            "JobRequest",
            schemas.request_adapter(self.settings.enable_diagnostic_tasks).json_schema(
                ref_template=REF_TEMPLATE, mode="validation"
            ),
        )
        self._apply_limits()
        form_ref = components.add("CountWordsForm", self._count_words_form())
        job_ref = components.model(schemas.JobResource, "serialization")
        components.model(schemas.Problem, "serialization")
        list_ref = components.model(JobList, "serialization")
        health_ref = components.model(Health, "serialization")
        ready_ref = components.model(Ready, "serialization")
        for result in (schemas.CountWordsResult, schemas.SendEmailResult):
            components.model(result, "serialization")

        document: dict[str, Any] = {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": "offload",
                "version": _version(),
                "summary": "Take slow work off your web app's request path.",
                "description": _DESCRIPTION,
                "license": {"name": "MIT", "identifier": "MIT"},
            },
            "tags": [
                {"name": "jobs", "description": "Submit, watch, cancel, retry and list jobs."},
                {"name": "health", "description": "Liveness and readiness probes."},
            ],
            "paths": {
                "/jobs": {
                    "post": self._submit(request_ref, form_ref, job_ref),
                    "get": self._list(list_ref),
                },
                "/jobs/{job_id}": {"parameters": [ref("JobId", "parameters")], "get": self._get(job_ref)},
                "/jobs/{job_id}/cancel": {"parameters": [ref("JobId", "parameters")], "post": self._cancel(job_ref)},
                "/jobs/{job_id}/retry": {"parameters": [ref("JobId", "parameters")], "post": self._retry(job_ref)},
                "/healthz": {"get": self._healthz(health_ref)},
                "/readyz": {"get": self._readyz(ready_ref)},
            },
            "components": {
                "schemas": dict(sorted(components.schemas.items())),
                "parameters": self._parameters(),
                "headers": copy.deepcopy(_HEADERS),
                "responses": self._problem_responses(),
            },
        }
        if self.auth:
            document["components"]["securitySchemes"] = {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from the server's API_KEYS. A client key sees only its own jobs; "
                    "an admin key sees all.",
                }
            }
        return document

    # -- settings-dependent limits the models check in their validators --

    def _apply_limits(self) -> None:
        settings = self.settings
        text_limit = settings.max_text_bytes
        for name, model_schema in self.components.schemas.items():
            properties = model_schema.get("properties", {})
            if "timeout_seconds" in properties:
                _constrain(properties["timeout_seconds"], maximum=settings.max_timeout_seconds)
                _describe(
                    properties["timeout_seconds"],
                    f"Here: {settings.default_timeout_seconds} by default, at most {settings.max_timeout_seconds}.",
                )
            if "max_retries" in properties:
                _constrain(properties["max_retries"], maximum=settings.max_retries_limit)
                _describe(
                    properties["max_retries"],
                    f"Here: {settings.default_max_retries} by default, at most {settings.max_retries_limit}.",
                )
            if "metadata" in properties:
                _describe(properties["metadata"], f"Here: at most {settings.max_metadata_bytes} bytes.")
            if name == "CountWordsRequest":
                _constrain(properties["text"], maxLength=text_limit)
                _describe(properties["text"], f"Here: at most {text_limit} bytes (413 beyond it).")
            if name == "SendEmailRequest":
                _constrain(properties["body"], maxLength=text_limit)
                _describe(properties["body"], f"At most {text_limit} bytes of UTF-8 (413 beyond it).")

    def _count_words_form(self) -> dict[str, Any]:
        """``count_words`` as ``multipart/form-data``: the model's fields, with the text as a file."""
        source = self.components.schemas["CountWordsRequest"]
        properties: dict[str, Any] = {}
        for field_name, field_schema in source["properties"].items():
            field_schema = _without_null(copy.deepcopy(field_schema))
            field_schema.pop("default", None)
            if field_name == "metadata":
                field_schema = {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": field_schema,
                    "description": "The metadata object as JSON text.",
                }
            properties[field_name] = field_schema
        properties["type"]["description"] = "Optional here: a form is always a count_words job."
        properties["text"] = {**properties["text"], "description": "The text, if not sent as `file`."}
        properties = {
            "file": {
                "type": "string",
                "format": "binary",
                "contentMediaType": "text/plain",
                "description": f"The text to count, as a UTF-8 file of at most {self.settings.max_text_bytes} bytes. "
                "Takes precedence over `text`.",
            },
            **properties,
        }
        return {
            "title": "CountWordsForm",
            "description": "A count_words job sent as a form, with the text uploaded as a file.",
            "type": "object",
            "properties": properties,
            "anyOf": [{"required": ["file"]}, {"required": ["text"]}],
            "additionalProperties": False,
        }

    # -- operations --

    def _operation(self, operation: dict[str, Any]) -> dict[str, Any]:
        """Add what every /jobs operation has: auth, 503 when Redis is away."""
        responses = operation["responses"]
        if self.auth:
            operation["security"] = [{"bearerAuth": []}]
            responses["401"] = ref("Unauthorized", "responses")
        responses["503"] = ref("ServiceUnavailable", "responses")
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _submit(self, request_ref: dict, form_ref: dict, job_ref: dict) -> dict[str, Any]:
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "submitJob",
                "summary": "Submit a job",
                "description": "Queue a job (or schedule it, with `delay_seconds` or `run_at`). The answer is the job "
                "resource; poll its `Location` (or `GET` it with `?wait=`) until it is terminal.",
                "parameters": [ref("IdempotencyKey", "parameters"), ref("RequestId", "parameters")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": request_ref, "examples": _REQUEST_EXAMPLES},
                        "multipart/form-data": {
                            "schema": form_ref,
                            "encoding": {"file": {"contentType": "text/plain, application/octet-stream"}},
                        },
                    },
                },
                "responses": {
                    "202": {
                        "description": "Accepted: the job is queued or scheduled. With an `Idempotency-Key` that "
                        "was seen before with the same body, this is the first answer again (same job).",
                        "headers": {
                            "Location": ref("Location", "headers"),
                            "Retry-After": ref("RetryAfter", "headers"),
                            "Idempotent-Replayed": ref("IdempotentReplayed", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": job_ref}},
                        "links": _JOB_LINKS,
                    },
                    "400": ref("BadRequest", "responses"),
                    "409": ref("IdempotencyInFlight", "responses"),
                    "413": ref("ContentTooLarge", "responses"),
                    "415": ref("UnsupportedMediaType", "responses"),
                    "422": ref("ValidationFailed", "responses"),
                    "429": ref("TooManyRequests", "responses"),
                },
            }
        )

    def _list(self, list_ref: dict) -> dict[str, Any]:
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "listJobs",
                "summary": "List jobs",
                "description": "Jobs newest first (a client key sees its own). Follow `next` to page on.",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "description": "Only jobs in this status.",
                        "schema": TypeAdapter(schemas.JobStatusName).json_schema(),
                    },
                    {
                        "name": "type",
                        "in": "query",
                        "description": "Only jobs of this type.",
                        "schema": {"type": "string"},
                        "examples": {name: {"value": name} for name in _type_names(self.settings)},
                    },
                    {
                        "name": "queue",
                        "in": "query",
                        "description": "Only jobs on this queue.",
                        "schema": TypeAdapter(schemas.QueueName).json_schema(),
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "Page size.",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "Opaque: where the previous page ended (it is in that page's `next`).",
                        "schema": {"type": "string"},
                    },
                    ref("RequestId", "parameters"),
                ],
                "responses": {
                    "200": {
                        "description": "A page of jobs.",
                        "headers": {"X-Request-ID": ref("RequestId", "headers")},
                        "content": {"application/json": {"schema": list_ref}},
                    },
                    "422": ref("ValidationFailed", "responses"),
                },
            }
        )

    def _get(self, job_ref: dict) -> dict[str, Any]:
        limit = self.settings.max_wait_seconds
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "getJob",
                "summary": "Get a job",
                "description": "The job resource. With `?wait=N` the answer is held until the job is terminal or "
                "N seconds have passed, whichever comes first.",
                "parameters": [
                    {
                        "name": "wait",
                        "in": "query",
                        "description": f"Seconds to wait for the job to end (at most {limit}).",
                        "schema": {"type": "number", "minimum": 0, "maximum": limit},
                    },
                    ref("RequestId", "parameters"),
                ],
                "responses": {
                    "200": {
                        "description": "The job. `Retry-After` is there while the job is not terminal.",
                        "headers": {
                            "Retry-After": ref("RetryAfterWhilePending", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": job_ref}},
                    },
                    "404": ref("NotFound", "responses"),
                    "422": ref("ValidationFailed", "responses"),
                },
            }
        )

    def _cancel(self, job_ref: dict) -> dict[str, Any]:
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "cancelJob",
                "summary": "Cancel a job",
                "description": "A queued or scheduled job is canceled before it runs; a running job is stopped "
                "(status `stopped` once the worker has stopped it).",
                "parameters": [ref("RequestId", "parameters")],
                "responses": {
                    "202": {
                        "description": "Canceled, or asked to stop.",
                        "headers": {
                            "Location": ref("Location", "headers"),
                            "Retry-After": ref("RetryAfterWhilePending", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": job_ref}},
                    },
                    "404": ref("NotFound", "responses"),
                    "409": ref("StateConflict", "responses"),
                },
            }
        )

    def _retry(self, job_ref: dict) -> dict[str, Any]:
        return self._operation(
            {
                "tags": ["jobs"],
                "operationId": "retryJob",
                "summary": "Retry a job",
                "description": "Put a failed, stopped or canceled job back on its queue.",
                "parameters": [ref("RequestId", "parameters")],
                "responses": {
                    "202": {
                        "description": "Queued again.",
                        "headers": {
                            "Location": ref("Location", "headers"),
                            "Retry-After": ref("RetryAfter", "headers"),
                            "X-Request-ID": ref("RequestId", "headers"),
                        },
                        "content": {"application/json": {"schema": job_ref}},
                    },
                    "404": ref("NotFound", "responses"),
                    "409": ref("StateConflict", "responses"),
                },
            }
        )

    def _healthz(self, health_ref: dict) -> dict[str, Any]:
        return {
            "tags": ["health"],
            "operationId": "healthz",
            "summary": "Liveness",
            "description": "The process is alive. Says nothing about Redis (that is `/readyz`). Needs no key.",
            "responses": {
                "200": {
                    "description": "Alive.",
                    "headers": {"X-Request-ID": ref("RequestId", "headers")},
                    "content": {"application/json": {"schema": health_ref}},
                }
            },
        }

    def _readyz(self, ready_ref: dict) -> dict[str, Any]:
        return {
            "tags": ["health"],
            "operationId": "readyz",
            "summary": "Readiness",
            "description": "Redis answers. Needs no key.",
            "responses": {
                "200": {
                    "description": "Ready.",
                    "headers": {"X-Request-ID": ref("RequestId", "headers")},
                    "content": {"application/json": {"schema": ready_ref}},
                },
                "503": ref("ServiceUnavailable", "responses"),
            },
        }

    # -- reusable parts --

    def _parameters(self) -> dict[str, Any]:
        return {
            "JobId": {
                "name": "job_id",
                "in": "path",
                "required": True,
                "description": "The job's id. An unknown, expired or malformed id (or another client's) is 404.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"},
            },
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Make the submission safe to repeat: the same key with the same body returns the "
                "first answer again (the same job); with a different body it is 422; while the first request "
                "is still being handled it is 409. Keys are kept at least 24 hours.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            },
            "RequestId": {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "description": "Your id for this request, echoed back and written in the server's logs. A value "
                "that does not match the pattern is replaced by one the server makes.",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
            },
        }

    def _problem_responses(self) -> dict[str, Any]:
        answers = {
            "BadRequest": ("Malformed: the body is not JSON, not UTF-8, or not an object.", {}),
            "NotFound": ("No such job: unknown, expired, malformed, or another client's.", {}),
            "StateConflict": ("The job is in a state where this makes no sense (see `detail`).", {}),
            "IdempotencyInFlight": (
                "A request with the same `Idempotency-Key` is still being handled; retry shortly.",
                {"Retry-After": ref("RetryAfter", "headers")},
            ),
            "ContentTooLarge": ("The body, or the text in it, is larger than this server accepts.", {}),
            "UnsupportedMediaType": (
                "Send `application/json` (or `multipart/form-data` for count_words).",
                {"Accept-Post": ref("AcceptPost", "headers")},
            ),
            "ValidationFailed": (
                "The request is well-formed but not valid (unknown type, missing or invalid field, an "
                "`Idempotency-Key` reused with a different body); `errors` says which fields and why.",
                {},
            ),
            "TooManyRequests": (
                "Rate limited; try again after `Retry-After`.",
                {"Retry-After": ref("RetryAfter", "headers")},
            ),
            "ServiceUnavailable": (
                "Redis is not reachable, or the queue is over its depth limit; try again after `Retry-After`.",
                {"Retry-After": ref("RetryAfter", "headers")},
            ),
        }
        if self.auth:
            answers["Unauthorized"] = (
                "No API key, or not a valid one: send `Authorization: Bearer <key>`.",
                {"WWW-Authenticate": ref("WwwAuthenticate", "headers")},
            )
        return {
            name: {
                "description": description,
                "headers": {**headers, "X-Request-ID": ref("RequestId", "headers")},
                "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
            }
            for name, (description, headers) in answers.items()
        }


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


def _type_names(app_settings: Settings) -> list[str]:
    return schemas.type_names(app_settings.enable_diagnostic_tasks)


def _version() -> str:
    try:
        return metadata.version("offload")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


_DESCRIPTION = """\
offload runs slow work (counting words in large texts, sending email) off your web app's request path.
Submit a job with `POST /jobs`, then follow its `Location`: `GET /jobs/{id}?wait=N` answers as soon as the job
ends, or after N seconds.

Every error is an RFC 9457 `application/problem+json` document; validation errors list the fields in `errors`.
Timestamps are RFC 3339 UTC. Every answer carries `X-Request-ID` (yours, echoed, or one the server made).

This document describes this server as it is configured: its limits, the job types it accepts and whether it
needs an API key.
"""

_REQUEST_EXAMPLES = {
    "count_words": {
        "summary": "Count the words of a text",
        "value": {"type": "count_words", "text": "the quick brown fox\njumps over the lazy dog"},
    },
    "send_email": {
        "summary": "Send an email, on the high queue, with your own metadata",
        "value": {
            "type": "send_email",
            "to": "someone@example.com",
            "subject": "Your report is ready",
            "body": "Hello,\n\nyour report is ready.\n",
            "queue": "high",
            "metadata": {"order": 1234},
        },
    },
    "scheduled": {
        "summary": "Count words in ten minutes, retrying twice on failure",
        "value": {"type": "count_words", "text": "later", "delay_seconds": 600, "max_retries": 2},
    },
}

_JOB_LINKS = {
    "GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"}},
    "CancelJob": {"operationId": "cancelJob", "parameters": {"job_id": "$response.body#/id"}},
    "RetryJob": {"operationId": "retryJob", "parameters": {"job_id": "$response.body#/id"}},
}

_HEADERS = {
    "RequestId": {
        "description": "This request's id: the one you sent in `X-Request-ID`, or one the server made.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    },
    "Location": {
        "description": "The job's URL.",
        "required": True,
        "schema": {"type": "string", "pattern": "^/jobs/[A-Za-z0-9_-]+$"},
    },
    "RetryAfter": {
        "description": "Seconds to wait before asking again.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "RetryAfterWhilePending": {
        "description": "Seconds to wait before asking again; there while the job is not terminal.",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "IdempotentReplayed": {
        "description": "`true` when this is the stored first answer to an earlier request with the same "
        "`Idempotency-Key`.",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    },
    "AcceptPost": {
        "description": "The media types `POST /jobs` accepts.",
        "required": True,
        "schema": {"type": "string"},
    },
    "WwwAuthenticate": {
        "description": "The Bearer challenge (RFC 6750).",
        "required": True,
        "schema": {"type": "string"},
    },
}


# --- the views ---------------------------------------------------------------------------------


def current_document() -> dict[str, Any]:
    """This app's document, built once: settings do not change while the app runs."""
    cached = current_app.extensions.get("offload.openapi")
    if cached is None:
        cached = document_for(current_app.extensions["offload.settings"])
        current_app.extensions["offload.openapi"] = cached
    return cached


@bp.get("/openapi.json")
def document() -> Response:
    return Response(json.dumps(current_document()), mimetype="application/json")


@bp.get("/docs")
def docs() -> Response:
    response = Response(render_template("docs.html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.get("/docs/assets/<filename>")
def swagger_ui_asset(filename: str) -> Response:
    if filename not in SWAGGER_UI_FILES:
        abort(404)
    response = send_from_directory(_swagger_ui_dir(), filename, max_age=3600)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def _swagger_ui_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))
