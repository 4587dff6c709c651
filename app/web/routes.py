"""Each route declared once: :func:`route` adds the Flask rule and records the operation the OpenAPI
document says of it (:mod:`app.web.openapi.document` walks :data:`OPERATIONS`).

So a view and its operation are written in one place, and a route cannot be served without
being documented, nor documented without being served. What an operation says is data: its
parameters, request body and answers per status (:class:`Answer`: a model, headers, links; or the
name of a shared problem answer), whether it needs a key. What depends on the server's settings
(a limit in a description, ``?wait``'s maximum, the served tasks' examples) is a function of the
:class:`Build` the document is made with, called when the document is built, once per app.

Why not flask-openapi3, APIFlask or spectree: see ``docs/architecture.md`` ("Routes and the
document"). In short: the document describes the server as configured (its job types, limits,
keys, webhooks), which a library's import-time declarations do not; the contract's validation
answers (413 for a long text, 422 naming fields, forms with file parts) would bypass the library's
own; and per request neither costs anything that tells them apart (the figures are there).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint

from ..jobs import catalog, schemas
from ..settings import Settings

#: A value the document takes as it is, or computes from the build (the settings) when it is made.
Dynamic = Any

#: Where an operation's path parameter ``{name}`` is described (``components/parameters``).
PATH_PARAMETERS = {
    "job_id": "JobId",
    "batch_id": "BatchId",
    "schedule_id": "ScheduleId",
    "name": "QueueName",
    "type": "TaskType",
}


@dataclass(frozen=True)
class Build:
    """What a declaration's functions are called with when the document is made: the settings."""

    settings: Settings

    @property
    def auth(self) -> bool:
        return self.settings.auth_enabled


@dataclass(frozen=True)
class Answer:
    """One status's answer: its description, body and headers (``X-Request-ID`` is always there).

    ``body``: a pydantic model (its serialization schema, added to the components), the name of a
    component schema, a JSON Schema, or a function of the build giving one. ``headers``: names
    of ``components/headers`` (:data:`app.web.openapi.components.HEADERS` says which HTTP header each is).
    """

    description: Dynamic
    body: Dynamic = None
    headers: tuple[str, ...] = ()
    media_type: str = "application/json"
    links: dict[str, Any] | None = None


@dataclass(frozen=True)
class Operation:
    """An operation as the document says it. ``responses`` map a status to an :class:`Answer` or to
    the name of a shared answer (``components/responses``: the problems). ``keyed``: needs an API
    key when the server has keys (``security`` and 401); ``store``: needs Redis (503); ``admin``:
    needs an admin key (403)."""

    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    description: Dynamic
    responses: dict[int, Answer | str]
    parameters: tuple[Dynamic, ...] = ()
    body: Callable[[Build], dict[str, Any]] | None = None
    keyed: bool = True
    store: bool = True
    admin: bool = False
    view: str = field(default="", compare=False)


#: Every declared operation, in the order the modules declared them.
OPERATIONS: list[Operation] = []


def route(
    bp: Blueprint, method: str, path: str, *, rule_options: dict[str, Any] | None = None, **declared: Any
) -> Callable[[Callable], Callable]:
    """Serve the view decorated at ``method path`` (OpenAPI's ``{name}`` for a path parameter) on
    ``bp``, and declare its :class:`Operation` (``declared`` are its fields; ``rule_options`` go
    to Flask's ``add_url_rule``)."""

    def register(view: Callable) -> Callable:
        OPERATIONS.append(Operation(method.upper(), path, view=f"{bp.name}.{view.__name__}", **declared))
        rule = re.sub(r"{(\w+)}", r"<\1>", path)
        bp.add_url_rule(rule, view_func=view, methods=[method.upper()], **(rule_options or {}))
        return view

    return register


# --- parts that several declarations share ------------------------------------------------------


def ref(name: str, kind: str = "schemas") -> dict[str, str]:
    """A ``$ref`` to ``components/<kind>/<name>``."""
    return {"$ref": f"#/components/{kind}/{name}"}


def page_parameters(cursor_description: str) -> tuple[dict[str, Any], ...]:
    """The ``limit`` and ``cursor`` query parameters of a listing (``GET /jobs``, ``GET /schedules``)."""
    return (
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
    )


def example_jobs(app_settings: Settings) -> list[dict[str, Any]]:
    """A submission of each served task that has an example (``@task(example=...)``), built-ins first."""
    served = catalog.served(app_settings)
    ordered = sorted(served, key=lambda task: not task.func_name.startswith("app."))
    return [{"type": task.type, **task.example} for task in ordered if task.example is not None]
