"""Reading a submission: JSON, or ``multipart/form-data`` with a task's texts as files.

Everything malformed becomes a 4xx :class:`~app.web.problems.ApiProblem` here, before any
validation of the job itself, so a bad body can never reach the job layer.
"""

from __future__ import annotations

import functools
import json
import math

from typing import Annotated

from flask import request
from pydantic import TypeAdapter, ValidationError
from werkzeug.exceptions import BadRequest

from offload.tasks import Task

from ..jobs import catalog
from .context import settings
from .problems import ApiProblem

def read_submission() -> dict:
    """The submission as a dict, from JSON or (for a task with upload fields) multipart form data."""
    mimetype = request.mimetype
    if mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raw = request.get_data(cache=False)
        if request.content_length is not None and len(raw) != request.content_length:
            # The server hands over what arrived; a body shorter than announced was cut off.
            raise ApiProblem(400, f"the body has {len(raw)} bytes, not the {request.content_length} Content-Length announced")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiProblem(400, "the body is not valid UTF-8") from None
        try:
            payload = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise ApiProblem(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise ApiProblem(400, "the body must be a JSON object")
        return payload
    if mimetype == "multipart/form-data":
        return _read_form()
    raise ApiProblem(
        415,
        "send application/json (or multipart/form-data for a task with upload fields)",
        headers={"Accept-Post": "application/json, multipart/form-data"},
    )


def _read_form() -> dict:
    """A form: text parts, converted to the types the task's model declares, and a file part
    for each of the task's upload fields (named after the field; ``file`` too, for a task with
    one). A task without upload fields takes JSON only."""
    try:
        form, files = request.form, request.files
    except BadRequest:
        raise ApiProblem(400, "the multipart body could not be parsed") from None
    type_ = form.get("type", FORM_DEFAULT_TYPE)
    task = catalog.get(type_)
    if task is None or task.internal or not task.upload_fields:
        takers = sorted(t.type for t in catalog.served(settings()) if t.upload_fields)
        raise ApiProblem(
            422,
            f"multipart/form-data is for the tasks with an upload field ({', '.join(takers)}); send JSON",
            title="Validation Failed",
            errors=[{"field": "type", "message": "this task takes application/json only"}],
        )
    parts = {name: name for name in task.upload_fields}
    if len(parts) == 1:
        parts["file"] = task.upload_fields[0]  # the contract's `file` part (curl -F file=@notes.txt)
    payload: dict = {"type": type_}
    errors: list[dict] = []
    types = _field_types(task)
    for key in form:
        if key in parts or key == "type":
            continue
        values = form.getlist(key)
        payload[key] = _convert(key, values if types.get(key) == "array" else values[-1], types.get(key), errors)
    for field in task.upload_fields:  # sent as a text part of its own name
        if field in form:
            payload[field] = form[field]
    for part, field in parts.items():  # a file takes precedence over the text beside it
        upload = files.get(part)
        if upload is None and part in form and part != field:
            # A `file` part sent without a filename (curl -F 'file=<notes.txt') is a plain text field.
            _check_text_beside_file(task, field, payload)
            payload[field] = _within_limit(form[part])
        elif upload is not None:
            _check_text_beside_file(task, field, payload)
            payload[field] = _read_upload(upload, part)
    missing = [f for f in task.upload_fields if f not in payload and task.args.model_fields[f].is_required()]
    if missing and "file" in parts and not errors:
        errors.append({"field": "file", "message": "required"})
    if errors:
        raise ApiProblem(422, "the form is not valid", title="Validation Failed", errors=errors)
    return payload


#: A form without a ``type`` is a count_words job: the contract's ``curl -F file=@notes.txt``.
FORM_DEFAULT_TYPE = "count_words"


def form_name(task: Task) -> str:
    """The name of the task's form in the document (``CountWordsForm``): its request model's, as a form."""
    return catalog.request_model(task).__name__.removesuffix("Request") + "Form"


def _field_types(task: Task) -> dict[str, str]:
    """Each field's JSON type, from the submission's model (the options' and the task's)."""
    return _types_of(catalog.request_model(task))


@functools.cache
def _types_of(model: type) -> dict[str, str]:
    """Once a model (the catalog makes one a task while the registry is unchanged): its JSON
    Schema costs milliseconds, which every form submission paid before."""
    schema = model.model_json_schema()
    found = {}
    for name, field in schema.get("properties", {}).items():
        kinds = [option.get("type") for option in field.get("anyOf", [field]) if option.get("type") != "null"]
        if kinds and isinstance(kinds[0], str):
            found[name] = kinds[0]
    return found


def _convert(name: str, value: str | list[str], kind: str | None, errors: list[dict]) -> object:
    """A form's text as the JSON value its field takes; an error for ``name`` if it cannot be."""
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            lowered = str(value).lower()
            if lowered not in ("true", "false", "on", "off", "1", "0"):
                raise ValueError
            return lowered in ("true", "on", "1")
        if kind == "object":
            parsed = json.loads(value)
            if not isinstance(parsed, dict):
                raise ValueError
            return parsed
    except (ValueError, RecursionError):
        words = {"integer": "a whole number", "number": "a number", "boolean": "true or false", "object": "a JSON object"}
        errors.append({"field": name, "message": f"must be {words[kind]}"})
        return None
    return value


def _within_limit(text: str) -> str:
    limit = settings().max_text_bytes
    if len(text.encode("utf-8", "surrogatepass")) > limit:
        raise ApiProblem(413, f"text must be at most {limit} bytes of UTF-8")
    return text


def _read_upload(upload, part: str) -> str:  # noqa: ANN001 - werkzeug's FileStorage
    limit = settings().max_text_bytes
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiProblem(413, f"text must be at most {limit} bytes of UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiProblem(
            422,
            "the file is not UTF-8 text",
            title="Validation Failed",
            errors=[{"field": part, "message": "must be UTF-8 text"}],
        ) from None


def _check_text_beside_file(task: Task, field: str, payload: dict) -> None:
    """The file takes precedence, but a text sent beside it must still be a valid value of its
    field: the OpenAPI document declares both with their limits."""
    if field not in payload:
        return
    info = task.args.model_fields[field]
    try:
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        TypeAdapter(annotation).validate_python(payload[field])
    except ValidationError as exc:
        raise ApiProblem(
            422,
            f"the {field} beside the file is not valid",
            title="Validation Failed",
            errors=[{"field": field, "message": error["msg"]} for error in exc.errors()],
        ) from None
    _within_limit(payload[field])


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def wait_seconds(value: str) -> float:
    limit = settings().max_wait_seconds
    return seconds_query(value, "wait", limit, f"{limit}")


def seconds_query(value: str, field: str, limit: float, shown: str) -> float:
    """A query parameter that is a number of seconds from 0 to ``limit`` (written ``shown`` in
    the problem); anything else is a 422 naming ``field``."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= limit:
        raise ApiProblem(
            422,
            f"{field} must be a number of seconds from 0 to {shown}",
            title="Validation Failed",
            errors=[{"field": field, "message": f"must be from 0 to {shown}"}],
        )
    return seconds


def page_limit(text: str, errors: list[dict]) -> int:
    """The ``limit`` of a listing (1 to 200); out of range or not a number, an error for the
    ``limit`` field is added to ``errors`` (the caller refuses the query with all of them)."""
    try:
        limit = int(text) if text.isdigit() else 0
    except ValueError:  # "²" is a digit that int() refuses, and so are 4301 digits or more
        limit = 0
    if not 1 <= limit <= 200:
        errors.append({"field": "limit", "message": "must be an integer from 1 to 200"})
    return limit


def refuse_query(errors: list[dict]) -> None:
    """A 422 for a query with ``errors`` (nothing when there are none)."""
    if errors:
        raise ApiProblem(422, "the query is not valid", title="Validation Failed", errors=errors)


def invalid_cursor() -> ApiProblem:
    """The 422 for a ``cursor`` that is not one a listing handed out (raise it)."""
    return ApiProblem(
        422, "the cursor is not valid", title="Validation Failed", errors=[{"field": "cursor", "message": "invalid"}]
    )
