"""Checks the built-in tasks' argument models share (and the job options in app/jobs/schemas).

Limits that come from settings (a text's size) are read from the settings passed in the
validation context (``context={"settings": ...}``), so the models stay importable without them.
"""

from __future__ import annotations

from pydantic import ValidationInfo
from pydantic_core import PydanticCustomError

#: The error type that the HTTP layer answers with 413 instead of 422.
TOO_LARGE = "too_large"

_FORBIDDEN_HEADER_CHARS = ("\r", "\n", "\x00")

#: What the validators below refuse, said in the OpenAPI document as JSON Schema.
NO_HEADER_BREAKS_PATTERN = "^[^\r\n\x00]*$"
NO_NUL_PATTERN = "^[^\x00]*$"


def settings_of(info: ValidationInfo):  # noqa: ANN201 - app.settings.Settings, or None
    return (info.context or {}).get("settings")


def utf8_size(value: str) -> int:
    # surrogatepass: a lone surrogate from JSON ("\ud800") is counted, not a crash here;
    # the field validators reject it separately.
    return len(value.encode("utf-8", "surrogatepass"))


def reject_lone_surrogates(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_unicode", "must be valid Unicode (no unpaired surrogates)") from None
    return value


def check_text(value: str, info: ValidationInfo) -> str:
    """A text of at most ``MAX_TEXT_BYTES`` of UTF-8 (a ``too_large`` error: 413), valid Unicode."""
    settings = settings_of(info)
    limit = settings.max_text_bytes if settings else None
    if limit is not None and utf8_size(value) > limit:
        raise PydanticCustomError(TOO_LARGE, "must be at most {limit} bytes of UTF-8", {"limit": limit})
    return reject_lone_surrogates(value)


def no_header_breaks(value: str) -> str:
    if any(char in value for char in _FORBIDDEN_HEADER_CHARS):
        raise PydanticCustomError("header_injection", "must not contain CR, LF or NUL characters")
    return value
