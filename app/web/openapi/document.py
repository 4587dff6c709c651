"""Building the whole document for one server's settings (see the package docstring)."""

from __future__ import annotations

import copy
from importlib import metadata
from typing import Any

from offload.tasks import LONG_TEXT_KEY, Task

from ...jobs import catalog, schemas
from ...settings import Settings
from .components import (
    _DESCRIPTION,
    _HEADERS,
    REF_TEMPLATE,
    OPENAPI_VERSION,
    PROBLEM_JSON,
    Health,
    JobList,
    Ready,
    _Components,
    _constrain,
    _describe,
    _without_null,
    ref,
)
from .. import parsing
from .paths import PathsMixin
from .paths_batches import BatchPathsMixin
from .paths_events import EventsPathsMixin
from .paths_queues import add_queues
from .paths_bulk import add_bulk
from .paths_schedules import add_schedules
from .paths_tasks import add_tasks


#: What ``callback_url`` must look like; where its host points is checked at submission.
CALLBACK_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]+([/?#]\S*)?$"
_NOT_NULL = {"not": {"type": "null"}}
#: What makes an option present, beyond not being null.
_PRESENT = {"depends_on": {"type": "array", "minItems": 1}}


def document_for(app_settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of an offload app with these settings."""
    return _Builder(app_settings).build()


class _Builder(PathsMixin, EventsPathsMixin, BatchPathsMixin):
    def __init__(self, app_settings: Settings) -> None:
        self.settings = app_settings
        self.components = _Components()
        self.auth = app_settings.auth_enabled

    def build(self) -> dict[str, Any]:
        components = self.components
        request_ref = components.add(
            "JobRequest",
            catalog.request_adapter(self.settings).json_schema(
                ref_template=REF_TEMPLATE, mode="validation"
            ),
        )
        self._apply_limits()
        served = catalog.served(self.settings)
        forms = [components.add(_form_name(task), self._form(task)) for task in served if task.upload_fields]
        form_ref = forms[0] if len(forms) == 1 else {"oneOf": forms}
        job_ref = components.model(schemas.JobResource, "serialization")
        components.model(schemas.Problem, "serialization")
        list_ref = components.model(JobList, "serialization")
        health_ref = components.model(Health, "serialization")
        ready_ref = components.model(Ready, "serialization")
        for task in served:
            if task.result is not None:
                components.model(task.result, "serialization")
        batch_paths = self._batch_paths(request_ref)

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
                    "post": self._submit(request_ref, form_ref, job_ref, _upload_encoding(served)),
                    "get": self._list(list_ref),
                },
                "/jobs/{job_id}": {"parameters": [ref("JobId", "parameters")], "get": self._get(job_ref)},
                "/jobs/{job_id}/cancel": {"parameters": [ref("JobId", "parameters")], "post": self._cancel(job_ref)},
                "/jobs/{job_id}/retry": {"parameters": [ref("JobId", "parameters")], "post": self._retry(job_ref)},
                "/jobs/{job_id}/events": {"parameters": [ref("JobId", "parameters")], "get": self._job_events(job_ref)},
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
        document["paths"].update(batch_paths)
        self._add_batch_components(document)
        if self.auth:
            document["components"]["securitySchemes"] = {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from the server's API_KEYS. A client key sees only its own jobs; "
                    "an admin key sees all.",
                }
            }
        add_schedules(self, document)
        add_queues(self, document)
        add_bulk(self, document)
        add_tasks(self, document)
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
            if "concurrency_limit" in properties and name != "JobResource":
                _constrain(properties["concurrency_limit"], maximum=settings.max_concurrency_limit)
            if "delay_seconds" in properties and "run_at" in properties:
                # The model's "give delay_seconds or run_at, not both" (nor either with depends_on),
                # as JSON Schema (null is absent, and so is an empty depends_on).
                model_schema["not"] = {
                    "anyOf": [
                        {"required": [a, b], "properties": {a: _PRESENT.get(a, _NOT_NULL), b: _NOT_NULL}}
                        for a, b in (("delay_seconds", "run_at"), ("depends_on", "delay_seconds"), ("depends_on", "run_at"))
                        if a in properties
                    ]
                }
                # A concurrency_limit needs its concurrency_key (null is absent).
                model_schema["not"]["anyOf"].append(
                    {
                        "required": ["concurrency_limit"],
                        "properties": {"concurrency_limit": _NOT_NULL},
                        "not": {"required": ["concurrency_key"], "properties": {"concurrency_key": _NOT_NULL}},
                    }
                )
            if "callback_url" in properties:
                self._callback_url(properties)
            for field_schema in properties.values():  # every task's long texts (catalog.request_model)
                if field_schema.get(LONG_TEXT_KEY) and name.endswith("Request"):
                    _constrain(field_schema, maxLength=text_limit)
                    _describe(field_schema, f"Here: at most {text_limit} bytes of UTF-8 (413 beyond it).")

    def _callback_url(self, properties: dict[str, Any]) -> None:
        if self.settings.webhook_secret is None:
            # This server refuses every callback (no WEBHOOK_SECRET to sign them with): the
            # document offers none, so no valid request carries one.
            del properties["callback_url"]
            return
        _constrain(properties["callback_url"], pattern=CALLBACK_URL_PATTERN)
        _describe(
            properties["callback_url"],
            "An http:// or https:// URL with a host and no credentials; refused (422) when its host does not "
            "resolve, or resolves to a loopback, private, link-local, multicast or reserved address"
            + (" (allowed on this server)." if self.settings.allow_private_callbacks else "."),
        )

    def _form(self, task: Task) -> dict[str, Any]:
        """A task with upload fields as ``multipart/form-data``: the request model's fields, each
        upload field also a file part (and, for a task with one, the part ``file``)."""
        source = self.components.schemas[_request_name(task)]
        properties: dict[str, Any] = {}
        for field_name, field_schema in source["properties"].items():
            field_schema = _without_null(copy.deepcopy(field_schema))
            field_schema.pop("default", None)
            if field_name == "depends_on":
                field_schema = {**field_schema, "description": "A job id per part (the field repeated); no `$N` here."}
            if field_name == "metadata":
                # An object part, sent as JSON (the operation's `encoding` says so): a JSON-text
                # string schema would let any text through, though only an object is accepted.
                field_schema = {**field_schema, "description": "The metadata object, as a JSON part."}
            if field_name in task.upload_fields:
                # No `format: binary`: the file must be UTF-8 text (anything else is 422), which a
                # string with a media type says; Swagger UI still shows a file picker for it (OAS 3.1).
                field_schema = {**field_schema, "contentMediaType": "text/plain", "description": (
                    f"{field_schema.get('description', '')} A text field, or a UTF-8 file part (of any content "
                    f"type) of at most {self.settings.max_text_bytes} bytes.").strip()}  # fmt: skip
            properties[field_name] = field_schema
        required = [name for name in source.get("required", []) if name not in task.upload_fields]
        alternatives = None
        if parsing.FORM_DEFAULT_TYPE == task.type:
            properties["type"]["description"] = "Optional here: a form without a type is a " + task.type + " job."
            required.remove("type")
        if len(task.upload_fields) == 1:
            (field,) = task.upload_fields
            properties = {"file": {
                "type": "string", "minLength": 1, "contentMediaType": "text/plain",
                "description": f"The {field}, as a UTF-8 file (of any content type: text/plain, "
                f"application/octet-stream as curl -F sends) of at most {self.settings.max_text_bytes} bytes. "
                f"Takes precedence over `{field}`.",
            }, **properties}  # fmt: skip
            if field in source.get("required", []):
                alternatives = [{"required": ["file"]}, {"required": [field]}]
        form: dict[str, Any] = {
            "title": _form_name(task),
            "description": f"A {task.type} job sent as a form, with its text uploaded as a file.",
            "type": "object",
            "properties": properties,
            "not": {
                "anyOf": [
                    *({"required": pair} for pair in (["delay_seconds", "run_at"], ["depends_on", "delay_seconds"], ["depends_on", "run_at"])),
                    {"required": ["concurrency_limit"], "not": {"required": ["concurrency_key"]}},
                ]
            },
            "additionalProperties": False,
        }
        if required:
            form["required"] = required
        if alternatives:
            form["anyOf"] = alternatives
        return form

    # -- operations --

    def _parameters(self) -> dict[str, Any]:
        return {
            "JobId": {
                "name": "job_id",
                "in": "path",
                "required": True,
                "description": "The job's id. An unknown, expired or malformed id (or another client's) is 404. "
                "`batch` is none: `/jobs/batch` is `POST /jobs/batch`'s (`GET` there is 405).",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "not": {"const": "batch"}},
            },
            "IdempotencyKey": {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Make the submission safe to repeat: the same key with the same body returns the "
                "first answer again (the same job); with a different body it is 422; while the first request "
                "is still being handled it is 409. Keys are kept at least 24 hours. 1 to 255 printable ASCII "
                "characters, spaces only inside (the IETF Idempotency-Key draft's string); anything else is 400.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": schemas.IDEMPOTENCY_KEY_PATTERN},
            },
            "RequestId": {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "description": "Your id for this request, echoed back and written in the server's logs: 1 to 128 "
                "of `A-Z a-z 0-9 . _ : -`. Any other value is not refused: the server replaces it with one it "
                "makes (the answer's `X-Request-ID` says which).",
                # No pattern: a pattern declares other values invalid, i.e. refused with a 4xx, and the
                # contract replaces them instead. The answer's header (components.headers) has it.
                "schema": {"type": "string"},
            },
            # No pattern either: W3C Trace Context says to ignore an invalid traceparent, not refuse it.
            "TraceParent": {
                "name": "traceparent",
                "in": "header",
                "required": False,
                "description": "W3C Trace Context: the caller's span, `00-<32 hex trace id>-<16 hex span id>-<2 hex "
                "flags>`. The job joins that trace (its `trace_id`), under a span of the server's (the answer's "
                "`traceparent`). A missing or invalid header (not this format, all-zero ids, version `ff`, "
                "or more than one header) is ignored and a new trace is started: it is never a 4xx.",
                "schema": {"type": "string"},
            },
            "TraceState": {
                "name": "tracestate",
                "in": "header",
                "required": False,
                "description": "W3C Trace Context vendor data, kept with the job and sent on with its callback; "
                "ignored without a valid `traceparent` or when malformed.",
                "schema": {"type": "string"},
            },
        }

    def _problem_responses(self) -> dict[str, Any]:
        answers = {
            "BadRequest": ("Malformed: the body is not JSON, not UTF-8, or not an object.", {}),
            "NotFound": ("No such job: unknown, expired, malformed, or another client's.", {}),
            "NotAJob": ("`batch` is no job id: `/jobs/batch` takes POST (and OPTIONS) only.", {}),
            "StateConflict": ("The job is in a state where this makes no sense (see `detail`).", {}),
            "IdempotencyInFlight": (
                "A request with the same `Idempotency-Key` is still being handled; retry shortly.",
                {"Retry-After": ref("RetryAfter", "headers")},
            ),
            "ContentTooLarge": ("The body, or the text in it, is larger than this server accepts.", {}),
            "UnsupportedMediaType": (
                "Send `application/json` (or `multipart/form-data` for a task with upload fields).",
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


def _version() -> str:
    try:
        return metadata.version("offload")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def _request_name(task: Task) -> str:
    return catalog.request_model(task).__name__


def _form_name(task: Task) -> str:
    return _request_name(task).removesuffix("Request") + "Form"


def _upload_encoding(served: list[Task]) -> dict[str, Any]:  # noqa: ARG001 - the parts no longer differ by task
    """Metadata as JSON. The file parts get no ``contentType`` of their own: the server reads any
    part as UTF-8 text, whatever its type (curl -F sends application/octet-stream), and a part
    with a declared type is a typed value to a fuzzer, which then calls the text "123" of a
    mutated integer an invalid file accepted (schemathesis ST201, issue 25 item 2)."""
    return {"metadata": {"contentType": "application/json"}}
