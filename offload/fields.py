"""A task's fields, read from the JSON Schema of its arguments (``GET /tasks/{type}``), and
command-line text turned into their values.

The server describes each task with its pydantic model's ``model_json_schema()``; this module
reads the part of JSON Schema such a model produces (``type``, ``enum``/``const``, ``$ref`` into
``$defs``, ``anyOf`` with ``null`` for an optional field, ``items``, ``default``, ``required``,
offload's ``x-offload-long-text`` and ``x-offload-upload``) into one :class:`TaskField` a
field, so the command line can offer ``--FIELD VALUE`` for every task without knowing any.

Nothing here is authoritative: the server validates every submission against the model itself.
The conversion only turns text into the JSON type the schema asks for (``"3"`` -> ``3`` for an
integer) and refuses what can never be valid (``"x"`` for an integer), so a typo is caught with
a clear message before a request is sent; limits (``maxLength``, ``minimum``, formats) are the
server's to check, and its 422 names the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

#: The JSON Schema keywords of offload's field markers (``offload.tasks.long_text``, ``upload``).
LONG_TEXT_KEY = "x-offload-long-text"
UPLOAD_KEY = "x-offload-upload"

#: What a field's value is: a JSON Schema type, ``enum`` (one of fixed values), or ``any``
#: (a union of types, or no type said: the text is sent as JSON if it parses, else as text).
KINDS = ("string", "integer", "number", "boolean", "array", "object", "enum", "any")

_MISSING: Any = object()


@dataclass(frozen=True)
class TaskField:
    """One field of a task's arguments, as its schema describes it."""

    name: str
    kind: str
    required: bool = False
    #: The schema's default, or None; ``has_default`` tells a default of None from none at all.
    default: Any = None
    has_default: bool = False
    description: str = ""
    #: The allowed values of an ``enum`` field.
    choices: tuple[Any, ...] = ()
    #: The field may be null (an optional field: ``str | None``).
    nullable: bool = False
    #: The items of an ``array`` field, as a field of their own (its name is the array's).
    items: TaskField | None = None
    #: A text that may be long, and a text a person may send as a file (offload's markers).
    long_text: bool = False
    upload: bool = False
    #: The JSON Schema type names of an ``any`` field (``["integer", "string"]``), for its label.
    union: tuple[str, ...] = ()

    @property
    def type_label(self) -> str:
        """The type as a person reads it: ``integer``, ``list of string``, ``red | green``."""
        if self.kind == "enum":
            label = " | ".join(json.dumps(choice) if not isinstance(choice, str) else choice for choice in self.choices)
        elif self.kind == "array":
            label = f"list of {self.items.type_label if self.items else 'any'}"
        elif self.kind == "any":
            label = " | ".join(self.union) if self.union else "any"
        else:
            label = self.kind
        return f"{label} | null" if self.nullable and self.kind != "any" else label

    @property
    def reads_files(self) -> bool:
        """``@path`` (and ``@-``) reads the value from a file (stdin): for text and JSON values."""
        return self.kind in ("string", "object", "any")


def task_fields(
    schema: dict[str, Any], *, long_text: tuple[str, ...] | list[str] = (), upload: tuple[str, ...] | list[str] = ()
) -> list[TaskField]:
    """The fields of an arguments schema, in the schema's order. ``long_text`` and ``upload``
    name fields marked so besides their schema's own keywords (``GET /tasks`` lists both)."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    required = set(schema.get("required") or ())
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        field = _field(name, prop if isinstance(prop, dict) else {}, defs)
        marked = {"long_text": field.long_text or name in long_text, "upload": field.upload or name in upload}
        fields.append(replace(field, required=name in required, **marked))
    return fields


def _field(name: str, prop: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> TaskField:
    """One property: its own keywords (default, description) over those of what it refers to."""
    resolved, nullable, union = _resolve(prop, defs)
    markers = {key for part in (prop, resolved) for key in (LONG_TEXT_KEY, UPLOAD_KEY) if part.get(key)}
    markers |= _branch_markers(prop, defs)
    kind = _kind(resolved) if not union else "any"
    items = None
    if kind == "array" and depth < 8:
        item_schema = resolved.get("items")
        items = _field(name, item_schema if isinstance(item_schema, dict) else {}, defs, depth + 1)
    choices: tuple[Any, ...] = ()
    if kind == "enum":
        choices = tuple(resolved["enum"]) if "enum" in resolved else (resolved["const"],)
    default = prop.get("default", resolved.get("default", _MISSING))
    description = prop.get("description") or resolved.get("description") or ""
    return TaskField(
        name=name, kind=kind, default=None if default is _MISSING else default, has_default=default is not _MISSING,
        description=" ".join(str(description).split()), choices=choices, nullable=nullable, items=items,
        long_text=LONG_TEXT_KEY in markers, upload=UPLOAD_KEY in markers, union=union,
    )  # fmt: skip


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool, tuple[str, ...]]:
    """The schema with ``$ref``, a lone ``allOf`` and ``null`` branches taken away: (schema,
    nullable, the type names of a union of several types, else ())."""
    nullable = False
    for _ in range(16):  # a bound, for a schema that refers to itself
        if "$ref" in schema:
            schema = {**_deref(schema["$ref"], defs), **{k: v for k, v in schema.items() if k != "$ref"}}
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            schema = {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
        elif isinstance(schema.get("anyOf") or schema.get("oneOf"), list):
            branches = [b for b in (schema.get("anyOf") or schema.get("oneOf")) if isinstance(b, dict)]
            others = [b for b in branches if b.get("type") != "null"]
            nullable = nullable or len(others) < len(branches)
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            if len(others) != 1:
                return rest, nullable, tuple(_label(b, defs) for b in others)
            schema = {**others[0], **rest}
        elif isinstance(schema.get("type"), list):
            types = [t for t in schema["type"] if t != "null"]
            nullable = nullable or len(types) < len(schema["type"])
            if len(types) != 1:
                return {k: v for k, v in schema.items() if k != "type"}, nullable, tuple(types)
            schema = {**schema, "type": types[0]}
        else:
            break
    return schema, nullable, ()


def _deref(ref: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(ref, str):
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix) and isinstance(defs.get(ref[len(prefix) :]), dict):
                return defs[ref[len(prefix) :]]
    return {}


def _label(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    resolved, _, union = _resolve(schema, defs)
    return " | ".join(union) if union else _kind(resolved)


def _kind(schema: dict[str, Any]) -> str:
    if "enum" in schema or "const" in schema:
        return "enum"
    kind = schema.get("type")
    return kind if kind in KINDS and kind != "enum" else "any"


def _branch_markers(prop: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """Markers inside the branches of an optional field (``Annotated[str, upload] | None``)."""
    found = set()
    for branch in prop.get("anyOf") or prop.get("oneOf") or ():
        if isinstance(branch, dict):
            resolved, _, _ = _resolve(branch, defs)
            found |= {key for key in (LONG_TEXT_KEY, UPLOAD_KEY) if branch.get(key) or resolved.get(key)}
    return found


# --- text to values ---------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


def convert(field: TaskField, text: str) -> Any:
    """The value of ``field`` given as ``text`` on a command line; ValueError says why not.

    integer ``"3"`` -> 3; number ``"2.5"`` -> 2.5 (``"2"`` -> 2); boolean ``true``/``false``
    (also yes/no, 1/0, on/off); enum: one of its choices; object: a JSON object; array: one item
    (an option given once per item), converted as the items' field; any: JSON if it parses, else
    the text; string: the text as given. ``null`` is taken for a nullable non-string field."""
    if field.nullable and field.kind != "string" and text.strip() == "null":
        return None
    kind = field.kind
    if kind == "array":
        return convert(field.items or TaskField(field.name, "any"), text)
    if kind == "string":
        return text
    if kind == "integer":
        return _integer(text)
    if kind == "number":
        return _number(text)
    if kind == "boolean":
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError(f"{text!r} is not true or false")
    if kind == "enum":
        return _choice(field, text)
    if kind == "object":
        value = _json(text)
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object, like {"key": "value"}')
        return value
    try:
        return json.loads(text)
    except ValueError:
        return text


def _integer(text: str) -> int:
    cleaned = text.strip()
    if cleaned.lstrip("+-").isdigit():
        return int(cleaned)
    raise ValueError(f"{text!r} is not a whole number")


def _number(text: str) -> int | float:
    cleaned = text.strip()
    try:
        return _integer(cleaned)
    except ValueError:
        pass
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _choice(field: TaskField, text: str) -> Any:
    if text in field.choices:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        value = _MISSING
    if value is not _MISSING and value in field.choices and not isinstance(value, str):
        return value
    shown = ", ".join(str(choice) for choice in field.choices)
    raise ValueError(f"{text!r} is not one of: {shown}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
