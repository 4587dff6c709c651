"""Building the whole document for one server's settings (see the package docstring): the request
schemas as this server takes them (its job types, limits and webhooks), then each declared
operation (:data:`app.web.routes.OPERATIONS`) as a path item."""

from __future__ import annotations

import copy
import re
from importlib import metadata
from typing import Any

from pydantic import BaseModel

from offload.tasks import LONG_TEXT_KEY, Task

from ...jobs import batch_schemas, bulk_schemas, catalog, schedule_schemas, schemas
from ...settings import Settings
from .. import parsing
from ..routes import OPERATIONS, PATH_PARAMETERS, Answer, Build, Operation, ref
from .components import (
    DESCRIPTION,
    HEADERS,
    OPENAPI_VERSION,
    PARAMETERS,
    REF_TEMPLATE,
    SECURITY_SCHEMES,
    TAGS,
    Components,
    constrain,
    describe,
    headers,
    problem_answers,
    without_null,
)

#: What ``callback_url`` must look like; where its host points is checked at submission.
CALLBACK_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]+([/?#]\S*)?$"
_NOT_NULL = {"not": {"type": "null"}}
#: What makes an option present, beyond not being null.
_PRESENT = {"depends_on": {"type": "array", "minItems": 1}}


def document_for(app_settings: Settings) -> dict[str, Any]:
    """The OpenAPI document of an offload app with these settings."""
    build = Build(app_settings)
    components = Components()
    _request_schemas(components, app_settings)
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        item = paths.setdefault(operation.path, {})
        names = re.findall(r"{(\w+)}", operation.path)
        if names:
            item["parameters"] = [ref(PATH_PARAMETERS[name], "parameters") for name in names]
        item[operation.method.lower()] = _operation(operation, build, components)
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "offload",
            "version": _version(),
            "summary": "Take slow work off your web app's request path.",
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": copy.deepcopy(TAGS),
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "parameters": copy.deepcopy(PARAMETERS),
            "headers": {name: copy.deepcopy(header) for name, (_http_name, header) in HEADERS.items()},
            "responses": problem_answers(build.auth),
        },
    }
    if build.auth:
        document["components"]["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    return document


# --- one operation ---------------------------------------------------------------------------------


def _operation(declared: Operation, build: Build, components: Components) -> dict[str, Any]:
    responses = {status: _answer(answer, build, components) for status, answer in declared.responses.items()}
    operation: dict[str, Any] = {
        "tags": [declared.tag],
        "operationId": declared.operation_id,
        "summary": declared.summary,
        "description": _value(declared.description, build),
    }
    parameters = [_parameter(parameter, build) for parameter in declared.parameters]
    if parameters:
        operation["parameters"] = parameters
    if declared.body is not None:
        operation["requestBody"] = declared.body(build)
    if build.auth and declared.keyed:
        operation["security"] = [{"bearerAuth": []}]
        responses.setdefault(401, ref("Unauthorized", "responses"))
    if build.auth and declared.admin:
        responses.setdefault(403, ref("Forbidden", "responses"))
    if declared.store:
        responses.setdefault(503, ref("ServiceUnavailable", "responses"))
    operation["responses"] = {str(status): responses[status] for status in sorted(responses)}
    return operation


def _answer(answer: Answer | str, build: Build, components: Components) -> dict[str, Any]:
    if isinstance(answer, str):
        return ref(answer, "responses")
    found: dict[str, Any] = {"description": _value(answer.description, build), "headers": headers(answer.headers)}
    if answer.body is not None:
        found["content"] = {answer.media_type: {"schema": _schema(answer.body, build, components)}}
    if answer.links:
        found["links"] = answer.links
    return found


def _schema(body: Any, build: Build, components: Components) -> dict[str, Any]:
    if isinstance(body, type) and issubclass(body, BaseModel):
        return components.model(body, "serialization")
    if isinstance(body, str):
        return ref(body)
    return _value(body, build)


def _parameter(parameter: Any, build: Build) -> dict[str, Any]:
    if isinstance(parameter, str):
        return ref(parameter, "parameters")
    return _value(parameter, build)


def _value(value: Any, build: Build) -> Any:
    """A declared value, or what its function of the build gives."""
    return value(build) if callable(value) and not isinstance(value, type) else copy.deepcopy(value)


# --- the request schemas, as this server takes them --------------------------------------------------


def _request_schemas(components: Components, app_settings: Settings) -> None:
    """``JobRequest`` (and each task's), the forms, and the other requests that contain a job,
    with the limits and the webhooks of this server; then each served task's result."""
    components.add(
        "JobRequest",
        catalog.request_adapter(app_settings).json_schema(ref_template=REF_TEMPLATE, mode="validation"),
    )
    _apply_limits(components.schemas, app_settings)
    served = catalog.served(app_settings)
    for task in served:
        if task.upload_fields:
            components.add(parsing.form_name(task), _form(components.schemas, task, app_settings))
    components.model(schemas.Problem, "serialization")
    for task in served:
        if task.result is not None:
            components.model(task.result, "serialization")
    batch = batch_schemas.BatchRequest.model_json_schema(mode="validation")
    batch["properties"]["jobs"]["items"] = ref("JobRequest")
    batch["properties"]["jobs"]["maxItems"] = app_settings.max_batch_jobs
    _callback_url(batch["properties"], app_settings)  # as a job's: none at all without WEBHOOK_SECRET
    components.add("BatchRequest", batch)
    components.model(schedule_schemas.ScheduleRequest, "validation")
    components.model(schedule_schemas.SchedulePatch, "validation")
    _tune_schedules(components.schemas, app_settings)
    components.add("BulkRequest", bulk_schemas.BulkRequest.json_schema(ref_template=REF_TEMPLATE, mode="validation"))


def _apply_limits(found: dict[str, Any], settings: Settings) -> None:
    """The settings-dependent limits the models check in their validators, as JSON Schema."""
    text_limit = settings.max_text_bytes
    for name, model_schema in found.items():
        properties = model_schema.get("properties", {})
        if "timeout_seconds" in properties:
            constrain(properties["timeout_seconds"], maximum=settings.max_timeout_seconds)
            describe(
                properties["timeout_seconds"],
                f"Here: {settings.default_timeout_seconds} by default, at most {settings.max_timeout_seconds}.",
            )
        if "max_retries" in properties:
            constrain(properties["max_retries"], maximum=settings.max_retries_limit)
            describe(
                properties["max_retries"],
                f"Here: {settings.default_max_retries} by default, at most {settings.max_retries_limit}.",
            )
        if "metadata" in properties:
            describe(properties["metadata"], f"Here: at most {settings.max_metadata_bytes} bytes.")
        if "concurrency_limit" in properties and name != "JobResource":
            constrain(properties["concurrency_limit"], maximum=settings.max_concurrency_limit)
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
            _callback_url(properties, settings)
        for field_schema in properties.values():  # every task's long texts (catalog.request_model)
            if field_schema.get(LONG_TEXT_KEY) and name.endswith("Request"):
                constrain(field_schema, maxLength=text_limit)
                describe(field_schema, f"Here: at most {text_limit} bytes of UTF-8 (413 beyond it).")


def _callback_url(properties: dict[str, Any], settings: Settings) -> None:
    if settings.webhook_secret is None:
        # This server refuses every callback (no WEBHOOK_SECRET to sign them with): the
        # document offers none, so no valid request carries one.
        del properties["callback_url"]
        return
    constrain(properties["callback_url"], pattern=CALLBACK_URL_PATTERN)
    describe(
        properties["callback_url"],
        "An http:// or https:// URL with a host and no credentials; refused (422) when its host does not "
        "resolve, or resolves to a loopback, private, link-local, multicast or reserved address"
        + (" (allowed on this server)." if settings.allow_private_callbacks else "."),
    )


def _form(found: dict[str, Any], task: Task, settings: Settings) -> dict[str, Any]:
    """A task with upload fields as ``multipart/form-data``: the request model's fields, each
    upload field also a file part (and, for a task with one, the part ``file``)."""
    source = found[_request_name(task)]
    properties: dict[str, Any] = {}
    for field_name, field_schema in source["properties"].items():
        field_schema = without_null(copy.deepcopy(field_schema))
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
                f"type) of at most {settings.max_text_bytes} bytes.").strip()}  # fmt: skip
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
            f"application/octet-stream as curl -F sends) of at most {settings.max_text_bytes} bytes. "
            f"Takes precedence over `{field}`.",
        }, **properties}  # fmt: skip
        if field in source.get("required", []):
            alternatives = [{"required": ["file"]}, {"required": [field]}]
    form: dict[str, Any] = {
        "title": parsing.form_name(task),
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


def _tune_schedules(found: dict[str, Any], settings: Settings) -> None:
    """The schedule's ``job`` is a job request; ``every_seconds`` has this server's minimum."""
    request = found["ScheduleRequest"]["properties"]
    request["job"] = {
        **ref("JobRequest"),
        "description": request["job"]["description"],
        # The server refuses these keys in a schedule's job (the schedule says when it runs).
        "not": {"anyOf": [{"required": [name]} for name in schedule_schemas.TIMING_FIELDS]},
    }
    for name in ("ScheduleRequest", "SchedulePatch"):
        # The form check_cron takes (in the document only, so the server's 422 says what is wrong).
        cron = found[name]["properties"]["cron"]
        for branch in cron.get("anyOf", [cron]):
            if branch.get("type") == "string":
                branch["pattern"] = schedule_schemas.CRON_PATTERN
        every = found[name]["properties"]["every_seconds"]
        for branch in every.get("anyOf", [every]):
            if branch.get("type") == "integer":
                branch.update(minimum=settings.min_schedule_seconds, maximum=schedule_schemas.MAX_EVERY_SECONDS)


def _version() -> str:
    try:
        return metadata.version("offload")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def _request_name(task: Task) -> str:
    return catalog.request_model(task).__name__
