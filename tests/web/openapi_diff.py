"""Compare two OpenAPI documents by meaning: ``python -m tests.web.openapi_diff save DIR`` writes this
checkout's documents (one per configuration in :data:`VARIANTS`), ``... compare DIR`` compares this
checkout's against them and prints each difference.

Written for issue 24 item 5, when the document stopped being hand-built dicts and became generated
from the routes' declarations: the two must mean the same. "The same" is: the same paths, methods,
parameters (by ``in`` and ``name``), statuses, headers, media types, examples and schemas, with every
``$ref`` (to a schema, a parameter, a header or a response) replaced by what it names, and the order
of object keys and of ``required``/``enum``/``tags`` lists ignored. So a component renamed, or a
response moved inline from ``components/responses``, is no difference; a status, a header or a
schema keyword lost is one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

#: The configurations compared: the document describes the server as configured (keys, webhooks).
VARIANTS: dict[str, dict[str, str]] = {
    "plain": {"ALLOW_ANONYMOUS": "1"},
    "webhook": {"ALLOW_ANONYMOUS": "1", "WEBHOOK_SECRET": "s" * 32},
    "auth": {"API_KEYS": "shop:client:" + "c" * 32 + ",ops:admin:" + "a" * 32, "WEBHOOK_SECRET": "s" * 32},
}
#: Lists whose order carries no meaning.
_UNORDERED = {"required", "enum", "tags", "type"}


def document(variant: str) -> dict[str, Any]:
    """This checkout's ``/openapi.json`` under one of :data:`VARIANTS` (on fakeredis)."""
    import fakeredis

    from app import create_app
    from app.jobs import JobQueue
    from app.settings import get_settings

    saved = dict(os.environ)
    try:
        os.environ.update({"ENABLE_DIAGNOSTIC_TASKS": "1", **VARIANTS[variant]})
        get_settings.cache_clear()
        settings = get_settings()
        queue = JobQueue(fakeredis.FakeRedis(server=fakeredis.FakeServer()), settings)
        return create_app(settings, job_queue=queue).test_client().get("/openapi.json").get_json()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def resolved(doc: dict[str, Any]) -> dict[str, Any]:
    """The document's paths, info and security schemes with every ``$ref`` replaced by its target."""

    def follow(node: Any, seen: tuple[str, ...] = ()) -> Any:
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str) and target.startswith("#/"):
                if target in seen:  # a recursive schema: name the cycle, not its spelling
                    return {"$recursive": target.rsplit("/", 1)[-1]}
                found: Any = doc
                for part in target[2:].split("/"):
                    found = found[part]
                rest = {key: value for key, value in node.items() if key != "$ref"}
                return follow({**found, **rest}, (*seen, target))
            # a schema's title names it, as a $ref does: not compared (a property called title is)
            found = {key: follow(value, seen) for key, value in node.items() if not (key == "title" and isinstance(value, str))}
            return _nullable(found)
        if isinstance(node, list):
            return [follow(item, seen) for item in node]
        return node

    paths = {}
    for path, item in doc.get("paths", {}).items():
        shared = {(p["in"], p["name"]): p for p in (follow(p) for p in item.get("parameters", []))}
        for method, operation in item.items():
            if method == "parameters":
                continue
            operation = follow(operation)
            params = {**shared, **{(p["in"], p["name"]): p for p in operation.pop("parameters", [])}}
            operation["parameters"] = {f"{where}:{name}": p for (where, name), p in sorted(params.items())}
            paths[f"{method.upper()} {path}"] = operation
    return {
        "openapi": doc.get("openapi"),
        "info": {key: value for key, value in doc.get("info", {}).items() if key != "version"},
        "tags": {tag["name"]: tag for tag in doc.get("tags", [])},
        "security": follow(doc.get("components", {}).get("securitySchemes", {})),
        "operations": paths,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``{"anyOf": [{"type": T, ...}, {"type": "null"}]}`` (pydantic's ``T | None``) as the equal
    ``{"type": [T, "null"], ...}``: the keywords of a type apply to values of that type only."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return schema
    (other,) = [branch for branch in branches if branch != {"type": "null"}]
    if not isinstance(other, dict) or not isinstance(other.get("type"), str):
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**other, **rest, "type": [other["type"], "null"]}


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Each place where ``old`` and ``new`` (resolved documents) differ, as ``where: what``."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            here = f"{where}/{key}"
            if key not in new:
                found.append(f"{here}: gone")
            elif key not in old:
                found.append(f"{here}: added")
            else:
                found += differences(old[key], new[key], here)
        return found
    if isinstance(old, list) and isinstance(new, list):
        if where.rsplit("/", 1)[-1] in _UNORDERED:
            old, new = sorted(old, key=json.dumps), sorted(new, key=json.dumps)
        if len(old) != len(new):
            return [f"{where}: {len(old)} items, now {len(new)}: {_short(old)} -> {_short(new)}"]
        return [line for index, (a, b) in enumerate(zip(old, new, strict=True)) for line in differences(a, b, f"{where}/{index}")]
    if old != new:
        return [f"{where}: {_short(old)} -> {_short(new)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) < 160 else text[:157] + "..."


def main(argv: list[str]) -> int:
    command, folder = argv[0], Path(argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for variant in VARIANTS:
        current = document(variant)
        saved = folder / f"openapi-{variant}.json"
        if command == "save":
            saved.write_text(json.dumps(current, indent=1))
            print(f"wrote {saved}")
            continue
        found = differences(resolved(json.loads(saved.read_text())), resolved(current))
        total += len(found)
        print(f"== {variant}: {len(found)} difference(s)")
        for line in found:
            print("  " + line)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
