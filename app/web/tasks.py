"""``/tasks``: the job types this server takes, each described from its registration.

Everything a client needs to submit a task it has never seen: its description, the JSON
Schema of its fields (with offload's ``x-offload-long-text`` and ``x-offload-upload`` marks),
the defaults a submission gets, and an example. The page at ``/`` builds its forms from this,
and ``offload submit TYPE`` its options. Public, as ``/openapi.json`` is (which describes
the same tasks): the page shows its forms before a key is entered.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import Blueprint, Response
from pydantic import BaseModel, Field

from offload.tasks import Task

from ..jobs import catalog, schemas
from . import answers
from .context import settings
from .problems import problem
from .ratelimit import limiter, read_limit
from .routes import Answer, route

bp = Blueprint("tasks", __name__)


class TaskDefaults(BaseModel):
    """What a submission of the task gets when it does not set these options."""

    queue: schemas.QueueName
    timeout_seconds: int
    max_retries: int
    result_ttl_seconds: int
    concurrency_key: str | None = Field(description="A template over the task's fields (`import:{customer}`), or null.")
    concurrency_limit: int | None


class TaskInfo(BaseModel):
    """A job type this server takes: how to submit it, from its registration (`@task`)."""

    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str
    args_schema: dict[str, Any] = Field(
        description="JSON Schema of the task's own fields; `x-offload-long-text` marks a text that may be long, "
        "`x-offload-upload` one that may be sent as a file part of `multipart/form-data`."
    )
    result_schema: dict[str, Any] | None = Field(description="JSON Schema of the result, when the task declares one.")
    defaults: TaskDefaults
    example: dict[str, Any] | None = Field(description="A submission's fields, without `type`.")
    long_text_fields: list[str]
    upload_fields: list[str]
    links: dict[str, str] = Field(description="`self`: this description.")


class TaskList(BaseModel):
    tasks: list[TaskInfo]


_TEXT = (
    "Each task's type, description, the JSON Schema of its fields, the defaults a submission "
    "gets and an example: what the page's forms and `offload submit TYPE` are built from."
)


# Public, as /openapi.json: no key needed, and no Redis.
@route(
    bp, "GET", "/tasks", operation_id="listTasks", tag="tasks", summary="List the job types", description=_TEXT,
    parameters=("RequestId",), responses={200: Answer("OK.", TaskList), 429: "TooManyRequests"},
    keyed=False, store=False,
)  # fmt: skip
@limiter.limit(read_limit)
def list_tasks() -> Response:
    body = {"tasks": [describe(task) for task in catalog.served(settings())]}
    return Response(answers.as_json(TaskList, body), mimetype="application/json")


@route(
    bp, "GET", "/tasks/{type}", operation_id="getTask", tag="tasks", summary="Get a job type", description=_TEXT,
    parameters=("RequestId",), responses={200: Answer("OK.", TaskInfo), 404: "TaskNotFound", 429: "TooManyRequests"},
    keyed=False, store=False,
)  # fmt: skip
@limiter.limit(read_limit)
def get_task(type: str) -> Response:  # noqa: A002 - the path parameter the document names
    task = catalog.get(type)
    if task is None or task not in catalog.served(settings()):
        return problem(404, f"no task {type!r} on this server; GET /tasks lists them")
    return Response(answers.as_json(TaskInfo, describe(task)), mimetype="application/json")


def describe(task: Task) -> dict:
    """A task as ``GET /tasks`` shows it (:class:`TaskInfo`): its defaults
    with this server's settings where the task leaves them open."""
    app_settings = settings()
    defaults = dataclasses.asdict(task.defaults())
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
