"""The job types, as the server sees them: the task registry (:mod:`offload.tasks`) made into
the submission's validators, and a job's task found again by the worker.

Every type, offload's own (:mod:`app.tasks`) and a team's (loaded from ``OFFLOAD_TASKS`` and the
``offload.tasks`` entry points by :func:`load_tasks`), is a :class:`~offload.tasks.Task`. From
each, :func:`request_model` makes the model of its submission: the job options every type takes
(:class:`~app.jobs.contract.schemas.JobOptions`) and the task's own fields, with the task's defaults as
the options' defaults. :func:`request_adapter` validates any submission against them,
discriminated on ``type``: ``POST /jobs``, batches, schedules and the OpenAPI document all use
it, so nothing is written per task. The worker finds a job's task by the type it stores
(:func:`task_of`), in its own registry: nothing is imported by a stored name.
"""

from __future__ import annotations

import copy
import functools
import re
import sys
from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter, ValidationInfo, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError

from offload.tasks import Task, TaskDefinitionError, TaskLoadError, load, registry

from .. import tasks as builtins
from ..settings import Settings
from ..tasks.fields import check_text
from .contract import schemas
from .running import context

__all__ = ["Task", "TaskLoadError", "builtins", "get", "is_offload_job", "load_or_exit", "load_tasks", "request_adapter", "request_model", "served", "task_of"]

#: Names stored by earlier versions (a job's type is in its meta: these are for jobs without it).
_LEGACY_NAMES = {"app.webhooks.deliver": "webhook"}
_KEY = re.compile(r"^[!-~]{1,200}$")


def load_tasks(modules: str | None = None) -> list[str]:
    """Load the team's tasks (``OFFLOAD_TASKS``, entry points) beside the built-ins; every
    process calls it at start. Raises TaskLoadError naming the module that failed."""
    return load(modules)


def load_or_exit(*, worker: bool) -> list[str]:
    """:func:`load_tasks` at a process's start (web, worker, ``make run``); a worker also reads
    every task's declared ``env`` and ``secrets`` now. A failure stops the process with one line
    naming the module, type or variable (a supervisor then gives up on it: no crash loop of
    tracebacks)."""
    try:
        loaded = load_tasks()
        if worker:
            context.read_config(list(registry))
    except (TaskLoadError, TaskDefinitionError) as exc:
        sys.stderr.write(f"offload: cannot start: {exc}\n")
        sys.stderr.flush()
        # 3: what gunicorn's master takes for a worker that cannot boot (it stops, not respawns).
        raise SystemExit(3) from None
    return loaded


def get(type_: str | None) -> Task | None:
    """The registered task of this type, or None."""
    return registry.get(type_)


def served(settings: Settings | bool) -> list[Task]:
    """The tasks a client may submit to a server with these settings: never the internal ones,
    the diagnostic ones when enabled, and those whose ``requires`` settings are set. A bool
    (tests, the bench) says whether diagnostics are served and takes every requirement as met."""
    if isinstance(settings, bool):
        return registry.served(settings)
    return [
        task for task in registry.served(settings.enable_diagnostic_tasks)
        if all(getattr(settings, name, None) for name in task.requires)
    ]  # fmt: skip


def task_of(func_name: str | None, meta: dict) -> Task | None:
    """The task a stored job runs: by the type in its meta, in this process's registry."""
    type_ = meta.get("type") or _LEGACY_NAMES.get(func_name or "")
    return registry.get(type_)


def is_offload_job(meta: dict) -> bool:
    """A job offload made, of any type (registered in this process or not): the API shows
    those, and never another program's RQ jobs that share the Redis."""
    return isinstance(meta.get("type"), str)


def request_model(task: Task) -> type[schemas.JobOptions]:
    """The model of a submission of ``task``: ``type``, the job options with the task's
    defaults, and the task's own fields; unknown fields are refused."""
    return _request_model(task, registry.version)


@functools.cache
def _request_model(task: Task, version: int) -> type[schemas.JobOptions]:
    options = schemas.JobOptions.model_fields
    overrides = {}
    for name in ("queue", "timeout_seconds", "max_retries"):
        value = getattr(task, name)
        if value is not None and value != options[name].default:
            field = copy.copy(options[name])
            field.default = value
            overrides[name] = (options[name].annotation, field)
    validators = {}
    if task.long_text_fields:  # every long text of every task: at most MAX_TEXT_BYTES (413)
        validators["_long_text_limit"] = field_validator(*task.long_text_fields)(_within_text_limit)
    if task.concurrency_key is not None:
        validators["_default_concurrency_key"] = model_validator(mode="after")(_concurrency_key_of(task))
    return create_model(
        "".join(part.capitalize() for part in task.type.split("_")) + "Request",
        __base__=(schemas.JobOptions, task.args),
        __module__=__name__,
        __doc__=task.description,
        __validators__=validators,
        __cls_kwargs__={"extra": "forbid"},
        type=(Literal[task.type], ...),  # type: ignore[valid-type]
        **overrides,
    )


def _within_text_limit(value: object, info: ValidationInfo) -> object:
    return check_text(value, info) if isinstance(value, str) else value


def _concurrency_key_of(task: Task):  # noqa: ANN202 - a pydantic validator
    def apply(request: schemas.JobOptions) -> schemas.JobOptions:
        if request.concurrency_key is None:
            key = task.concurrency_key_for(request.task_arguments())
            if not _KEY.fullmatch(key):
                raise PydanticCustomError(
                    "concurrency_key", "the task's concurrency key made from these fields ({key!r}) must be 1 to 200 "
                    "printable ASCII characters without spaces", {"key": key, "field": "concurrency_key"},
                )  # fmt: skip
            request.concurrency_key = key
            request.concurrency_limit = request.concurrency_limit or task.concurrency_limit
        return request

    return apply


def request_adapter(settings: Settings | bool) -> TypeAdapter:
    """A validator for any submission a client may make (:func:`served`), discriminated on ``type``."""
    return _adapter(tuple(served(settings)), registry.version)


@functools.cache
def _adapter(tasks: tuple[Task, ...], version: int) -> TypeAdapter:
    models = tuple(request_model(task) for task in tasks)
    return TypeAdapter(Annotated[Union[models], Field(discriminator="type")])  # noqa: UP007 - built from a tuple


def type_names(settings: Settings | bool) -> list[str]:
    return [task.type for task in served(settings)]


def unknown_task(func_name: str | None, meta: dict) -> str:
    """Why a stored job's task is not run: the words of its UnknownTask error."""
    type_ = meta.get("type")
    if type_ is None:
        return f"{func_name!r} is not an offload task; it was not run"
    return (
        f"this worker has no task {type_!r} (registered: {', '.join(t.type for t in registry)}); "
        "load its module with OFFLOAD_TASKS or install its package on every worker"
    )
