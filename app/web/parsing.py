"""Reading a submission: JSON, or ``multipart/form-data`` with the text as a file.

Everything malformed becomes a 4xx :class:`~app.web.problems.ApiProblem` here, before any
validation of the job itself, so a bad body can never reach the job layer.
"""

from __future__ import annotations

import json
import math

from flask import request
from pydantic import ValidationError
from werkzeug.exceptions import BadRequest

from ..jobs import schemas
from .context import settings
from .problems import ApiProblem, field_errors

_NUMERIC_FORM_FIELDS = {"delay_seconds": float, "timeout_seconds": int, "max_retries": int, "concurrency_limit": int}


def read_submission() -> dict:
    """The submission as a dict, from JSON or (for ``count_words``) multipart form data."""
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
        "send application/json (or multipart/form-data with a 'file' for count_words)",
        headers={"Accept-Post": "application/json, multipart/form-data"},
    )


def _read_form() -> dict:
    try:
        form, files = request.form, request.files
    except BadRequest:
        raise ApiProblem(400, "the multipart body could not be parsed") from None
    payload: dict = {key: value for key, value in form.items() if key != "file"}
    if "depends_on" in form:  # a list: the field repeated, one job id a part
        payload["depends_on"] = form.getlist("depends_on")
    payload.setdefault("type", "count_words")
    if payload["type"] != "count_words":
        raise ApiProblem(
            422,
            "only count_words accepts multipart/form-data",
            title="Validation Failed",
            errors=[{"field": "type", "message": "multipart/form-data is for count_words only"}],
        )
    upload = files.get("file")
    if upload is not None or "file" in form:
        _check_text_beside_file(payload)
    if upload is None and "file" in form:
        # A `file` part sent without a filename (curl -F 'file=<notes.txt') is a plain text field.
        text = form["file"]
        limit = settings().max_text_bytes
        if len(text.encode("utf-8", "surrogatepass")) > limit:
            raise ApiProblem(413, f"text must be at most {limit} bytes of UTF-8")
        payload["text"] = text
    elif upload is None:
        if "text" not in payload:
            raise ApiProblem(
                422,
                "send the text as a file field named 'file'",
                title="Validation Failed",
                errors=[{"field": "file", "message": "required"}],
            )
    else:
        limit = settings().max_text_bytes
        data = upload.stream.read(limit + 1)
        if len(data) > limit:
            raise ApiProblem(413, f"text must be at most {limit} bytes of UTF-8")
        try:
            payload["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiProblem(
                422,
                "the file is not UTF-8 text",
                title="Validation Failed",
                errors=[{"field": "file", "message": "must be UTF-8 text"}],
            ) from None
    errors = []
    for name, kind in _NUMERIC_FORM_FIELDS.items():
        if name in payload:
            try:
                payload[name] = kind(payload[name])
            except ValueError:
                errors.append({"field": name, "message": f"must be a {'number' if kind is float else 'whole number'}"})
    if "metadata" in payload:
        try:
            payload["metadata"] = json.loads(payload["metadata"])
        except (ValueError, RecursionError):
            errors.append({"field": "metadata", "message": "must be a JSON object"})
    if errors:
        raise ApiProblem(422, "the form is not valid", title="Validation Failed", errors=errors)
    return payload


def _check_text_beside_file(payload: dict) -> None:
    """The file takes precedence, but a ``text`` sent beside it must still be a valid text: the
    OpenAPI document declares both fields with their limits."""
    if "text" not in payload:
        return
    try:
        schemas.CountWordsArgs.model_validate({"text": payload["text"]}, context={"settings": settings()})
    except ValidationError as exc:
        too_large = any(error["type"] == schemas.TOO_LARGE for error in exc.errors())
        raise ApiProblem(
            413 if too_large else 422,
            "the text beside the file is not valid",
            title=None if too_large else "Validation Failed",
            errors=field_errors(exc),
        ) from None


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
