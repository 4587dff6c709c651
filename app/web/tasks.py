"""``/tasks``: the job types this server takes, each described from its registration.

Everything a client needs to submit a task it has never seen: its description, the JSON
Schema of its fields (with offload's ``x-offload-long-text`` and ``x-offload-upload`` marks),
the defaults a submission gets, and an example. The page at ``/`` builds its forms from this,
and ``offload submit TYPE`` its options.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response

from ..jobs import catalog
from ..jobs.catalog import Task
from .context import settings
from .problems import problem
from .ratelimit import limiter, read_limit

bp = Blueprint("tasks", __name__)


@bp.get("/tasks")
@limiter.limit(read_limit)
def list_tasks() -> Response:
    body = {"tasks": [describe(task) for task in catalog.served(settings().enable_diagnostic_tasks)]}
    return Response(json.dumps(body), mimetype="application/json")


@bp.get("/tasks/<type_>")
@limiter.limit(read_limit)
def get_task(type_: str) -> Response:
    task = catalog.get(type_)
    if task is None or task not in catalog.served(settings().enable_diagnostic_tasks):
        return problem(404, f"no task {type_!r} on this server; GET /tasks lists them")
    return Response(json.dumps(describe(task)), mimetype="application/json")


def describe(task: Task) -> dict:
    """A task as ``GET /tasks`` shows it (``TaskInfo`` in the OpenAPI document): its defaults
    with this server's settings where the task leaves them open."""
    app_settings = settings()
    defaults = task.defaults()
    for name, setting in (
        ("timeout_seconds", app_settings.default_timeout_seconds),
        ("max_retries", app_settings.default_max_retries),
        ("result_ttl_seconds", app_settings.result_ttl_seconds),
    ):
        if defaults[name] is None:
            defaults[name] = setting
    return {
        "type": task.type,
        "description": task.description,
        "args_schema": task.args.model_json_schema(),
        "result_schema": task.result.model_json_schema(mode="serialization") if task.result is not None else None,
        "defaults": defaults,
        "example": dict(task.example) if task.example is not None else None,
        "long_text_fields": list(task.long_text_fields),
        "upload_fields": list(task.upload_fields),
        "links": {"self": f"/tasks/{task.type}"},
    }
