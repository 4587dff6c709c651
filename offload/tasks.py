"""The task API: your own job types, registered with :func:`task`, run by offload's workers.

::

    from pydantic import BaseModel, Field
    from offload import task

    class ReverseArgs(BaseModel):
        \"\"\"Reverse a text.\"\"\"
        text: str = Field(min_length=1, max_length=1000)

    @task("reverse_text", args=ReverseArgs, queue="low", max_retries=3)
    def reverse_text(args: ReverseArgs, ctx) -> dict:
        return {"reversed": args.text[::-1]}

A task is a plain function of its validated arguments model and a :class:`Context`; what it
returns is the job's JSON result. This module knows nothing of RQ, Redis or Flask: the server
(``app/``) reads the :data:`registry` to validate submissions, describe the tasks over HTTP
(``GET /tasks``, the OpenAPI document, the page's forms, the CLI) and run jobs, so everything
follows the registry and nothing is written per task. offload's own tasks (``count_words``,
``send_email``, ...) are registered the same way, in ``app/tasks``.

Every process (web, worker, scheduler) calls :func:`load` at start: it imports the modules named
in ``OFFLOAD_TASKS`` and those of the ``offload.tasks`` entry-point group of the installed
distributions. A module that cannot be imported, a type registered twice or a task without a
model raises :class:`TaskLoadError` naming it, and the process stops there: never a half-loaded
worker. Nothing is ever imported by a name stored in a job: a job runs only if its type is
registered in the worker's own process.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import string
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, SecretStr

from .models import TaskDefaults

__all__ = [
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "Context",
    "JobState",
    "PermanentFailure",
    "Registry",
    "RetryLater",
    "Task",
    "TaskDefinitionError",
    "TaskLoadError",
    "load",
    "long_text",
    "registry",
    "task",
    "upload",
]

#: The environment variable naming modules of tasks (comma-separated, importable).
ENV_VAR = "OFFLOAD_TASKS"
#: The entry-point group an installed distribution names its task modules in.
ENTRY_POINT_GROUP = "offload.tasks"
#: What a type may look like: it is a URL segment, a CLI word and a metrics label.
TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
QUEUES = ("high", "default", "low")
#: The names every submission has beside a task's own fields (the job options of the HTTP
#: contract): a task's model may not use them. ``tests/test_tasks_api.py`` holds this to the server's.
RESERVED_FIELDS = frozenset({
    "type", "queue", "delay_seconds", "run_at", "timeout_seconds", "max_retries", "callback_url", "metadata",
    "concurrency_key", "concurrency_limit", "depends_on",
})  # fmt: skip

#: JSON Schema keywords the field markers below add (read by the server, the page and the CLI).
LONG_TEXT_KEY = "x-offload-long-text"
UPLOAD_KEY = "x-offload-upload"


# --- errors ------------------------------------------------------------------------------


class TaskDefinitionError(ValueError):
    """A ``@task`` that cannot be registered (no model, a bad type name, a reserved field, a
    type registered twice): raised where the module defines it, so at import."""


class TaskLoadError(RuntimeError):
    """A task module named in ``OFFLOAD_TASKS`` or an entry point could not be loaded; the
    message names it. Processes stop at start with it."""


class PermanentFailure(Exception):
    """Raise it (or a subclass) from a task to fail the job now, with no retry left: for what
    a retry cannot mend (the partner said 404; a message may already have been delivered)."""


class RetryLater(Exception):
    """Raise it from a task to end this attempt and retry after ``after`` seconds (a partner's
    ``Retry-After``) instead of the job's backoff. With no retry left the job fails with it."""

    def __init__(self, message: str = "", *, after: float) -> None:
        super().__init__(message or f"retry in {after:g} s")
        self.after = max(0.0, float(after))


# --- field markers -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Marker:
    """A property of a string field, said in its JSON Schema (``Annotated[str, long_text]``)."""

    key: str

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict:
        schema = handler(core_schema)
        schema[self.key] = True
        return schema


#: A text that may be long: when it is, the server keeps it in a key of its own beside the job
#: instead of inside the job's stored payload (one write, never compressed and decoded again),
#: and the page offers a text area for it.
long_text = _Marker(LONG_TEXT_KEY)
#: A text a person may send as a file: the page offers a file input, ``POST /jobs`` takes it as a
#: part of ``multipart/form-data`` of the field's name, and the CLI takes ``--FIELD @path``. It is
#: UTF-8 text (a binary file does not fit a JSON job: send a URL to it instead).
upload = _Marker(UPLOAD_KEY)


# --- the context a task gets ----------------------------------------------------------------


@runtime_checkable
class JobState(Protocol):
    """A small store of the job's own, kept across its attempts (and worker deaths) for as long
    as the job is kept: what lets a task do a side effect at most once. ``claim`` sets a name
    only if it is unset (True when this call set it)."""

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def claim(self, name: str, value: str = "1") -> bool: ...
    def delete(self, *names: str) -> None: ...


@runtime_checkable
class Context(Protocol):
    """What a running task may know and do besides its arguments; nothing of RQ or Redis.

    ``settings`` is offload's own validated settings (what the built-ins need: where to send
    mail); ``env`` and ``secrets`` hold the variables the task declared with ``@task(env=...,
    secrets=...)``, read once when the worker started (a secret is a pydantic ``SecretStr``: its
    repr and str are masked, ``get_secret_value()`` gives it)."""

    job_id: str
    type: str
    #: 1 on the first attempt, 2 on the first retry, ...
    attempt: int
    #: Lines carry the job's id, type and attempt (and the request id that made it).
    logger: logging.LoggerAdapter
    env: Mapping[str, str]
    secrets: Mapping[str, SecretStr]
    settings: Any
    state: JobState

    def progress(self, done: int, total: int) -> None:
        """Report progress (``GET /jobs/{id}`` shows it); cheap to call often: it is saved at
        most four times a second, and the last report (``done == total``) always."""

    def cancelled(self) -> bool:
        """True once somebody asked to cancel this job: return (or raise) soon. A running job
        is also stopped by force after the cancel's grace period; checking lets it stop cleanly."""


# --- tasks -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Task:
    """A registered job type: its function, its arguments model and its defaults.

    Calling a task calls its function: ``reverse_text(ReverseArgs(text="abc"), ctx)``."""

    type: str
    func: Callable[[Any, Context], Any]
    args: type[BaseModel]
    description: str = ""
    queue: str = "default"
    timeout_seconds: int | None = None
    max_retries: int | None = None
    result_ttl_seconds: int | None = None
    #: A ``str.format`` template over the arguments' fields (``"import:{customer}"``), or fixed.
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    #: Environment variables the task reads (name -> default, None: required) and secrets.
    env: Mapping[str, str | None] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    #: A submission's fields (without ``type``) shown as the example in the docs and the page.
    example: Mapping[str, Any] | None = None
    #: A model of the result, for the docs only (``GET /tasks``, the OpenAPI document).
    result: type[BaseModel] | None = None
    #: Settings of the server (names of ``app.settings.Settings`` fields) that must be set for it
    #: to take the task: ``http_request`` signs with ``webhook_secret``.
    requires: tuple[str, ...] = ()
    #: Queued by offload itself (a callback delivery), never by a client.
    internal: bool = False
    #: Served only with ``ENABLE_DIAGNOSTIC_TASKS=1`` (tests and benchmarks).
    diagnostic: bool = False

    def __call__(self, args: Any, ctx: Context) -> Any:
        return self.func(args, ctx)

    @property
    def func_name(self) -> str:
        """What a job stores as its function (RQ and its dashboard show it). It is never
        imported: workers find a job's task by its type, in their own registry."""
        return f"{self.func.__module__}.{self.func.__qualname__}"

    @property
    def long_text_fields(self) -> tuple[str, ...]:
        return _fields_marked(self.args, LONG_TEXT_KEY)

    @property
    def upload_fields(self) -> tuple[str, ...]:
        return _fields_marked(self.args, UPLOAD_KEY)

    def defaults(self) -> TaskDefaults:
        """The options a submission of this type gets when it does not set them (None: the
        server's setting applies): what ``GET /tasks`` says, and a client reads back."""
        return TaskDefaults(
            queue=self.queue, timeout_seconds=self.timeout_seconds, max_retries=self.max_retries,
            result_ttl_seconds=self.result_ttl_seconds, concurrency_key=self.concurrency_key,
            concurrency_limit=self.concurrency_limit,
        )  # fmt: skip

    def concurrency_key_for(self, args: Mapping[str, Any]) -> str | None:
        """The default ``concurrency_key`` of a job with these arguments."""
        if self.concurrency_key is None:
            return None
        return self.concurrency_key.format_map({name: args.get(name) for name in self.args.model_fields})

    def read_config(self, environ: Mapping[str, str] | None = None) -> tuple[dict[str, str], dict[str, SecretStr]]:
        """The task's ``env`` and ``secrets`` from ``environ``; raises TaskDefinitionError naming
        every required one that is missing (a worker checks at start, not at the first job)."""
        environ = os.environ if environ is None else environ
        missing = [name for name, default in self.env.items() if default is None and name not in environ]
        missing += [name for name in self.secrets if not environ.get(name)]
        if missing:
            raise TaskDefinitionError(f"task {self.type!r} needs {', '.join(missing)} set in the environment")
        env = {name: environ.get(name, default or "") for name, default in self.env.items()}
        return env, {name: SecretStr(environ[name]) for name in self.secrets}


def _fields_marked(model: type[BaseModel], key: str) -> tuple[str, ...]:
    return tuple(
        name for name, info in model.model_fields.items() if any(getattr(m, "key", None) == key for m in info.metadata)
    )


class Registry:
    """Every registered task, by type. One per process (:data:`registry`); a test makes its own."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        #: Bumped on every change, so what the server derives from the registry (validators, the
        #: OpenAPI document) is rebuilt only when it changed.
        self.version = 0

    def add(self, new: Task) -> Task:
        old = self._tasks.get(new.type)
        if old is not None and old.func_name != new.func_name:
            raise TaskDefinitionError(
                f"task type {new.type!r} is registered twice: by {old.func_name} and by {new.func_name}"
            )
        self._tasks[new.type] = new  # the same function again (a module reloaded): the newer one
        self.version += 1
        return new

    def remove(self, type_: str) -> None:
        if self._tasks.pop(type_, None) is not None:
            self.version += 1

    def get(self, type_: str | None) -> Task | None:
        return self._tasks.get(type_ or "")

    def __getitem__(self, type_: str) -> Task:
        return self._tasks[type_]

    def __contains__(self, type_: object) -> bool:
        return type_ in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(sorted(self._tasks.values(), key=lambda t: t.type))

    def __len__(self) -> int:
        return len(self._tasks)

    def served(self, diagnostic: bool) -> list[Task]:
        """The tasks a client may submit: not internal, and diagnostic ones only if enabled."""
        return [t for t in self if not t.internal and (diagnostic or not t.diagnostic)]


#: The process's tasks: ``@task`` adds to it, :func:`load` fills it.
registry = Registry()


def task(  # noqa: PLR0913 - every default a task may set, by name
    type: str,  # noqa: A002 - the contract's word
    *,
    args: type[BaseModel],
    queue: str = "default",
    timeout_seconds: int | None = None,
    max_retries: int | None = None,
    result_ttl_seconds: int | None = None,
    concurrency_key: str | None = None,
    concurrency_limit: int | None = None,
    env: Mapping[str, str | None] | tuple[str, ...] = (),
    secrets: tuple[str, ...] = (),
    example: Mapping[str, Any] | None = None,
    result: type[BaseModel] | None = None,
    description: str | None = None,
    requires: tuple[str, ...] = (),
    internal: bool = False,
    diagnostic: bool = False,
    into: Registry | None = None,
) -> Callable[[Callable[[Any, Context], Any]], Task]:
    """Register the decorated ``func(args, ctx)`` as the job type ``type``.

    ``args`` is the pydantic model a submission's fields are validated with (at ``POST /jobs``,
    and again by the worker before it runs). Its docstring (or ``description``) describes the
    task. The other keywords are the task's defaults, used where a submission does not set them.
    ``env`` names environment variables the task reads (a mapping gives defaults), ``secrets``
    those it must not show; both reach it as ``ctx.env`` and ``ctx.secrets``. ``example`` (a
    submission's fields) and ``result`` (a model of what it returns) feed the docs.
    """

    def register(func: Callable[[Any, Context], Any]) -> Task:
        made = Task(
            type=type, func=func, args=args, description=_describe(description, args, func), queue=queue,
            timeout_seconds=timeout_seconds, max_retries=max_retries, result_ttl_seconds=result_ttl_seconds,
            concurrency_key=concurrency_key, concurrency_limit=concurrency_limit,
            env=dict(env) if isinstance(env, Mapping) else dict.fromkeys(env), secrets=tuple(secrets),
            example=example, result=result, requires=tuple(requires), internal=internal, diagnostic=diagnostic,
        )  # fmt: skip
        _check(made)
        return (registry if into is None else into).add(made)

    return register


def _describe(description: str | None, args: Any, func: Callable) -> str:
    text = description or (args.__doc__ if isinstance(args, type) and args.__doc__ else None) or func.__doc__ or ""
    return " ".join(text.strip().split("\n\n")[0].split())


def _check(made: Task) -> None:  # noqa: C901 - one check a line, each with its message
    where = f"task {made.type!r} ({made.func_name})"
    if not isinstance(made.type, str) or not TYPE_PATTERN.match(made.type):
        raise TaskDefinitionError(f"{where}: the type must match {TYPE_PATTERN.pattern} (lower case, digits, _)")
    if not (isinstance(made.args, type) and issubclass(made.args, BaseModel)):
        raise TaskDefinitionError(f"{where}: args= must be a pydantic model class, not {made.args!r}")
    if not callable(made.func):
        raise TaskDefinitionError(f"{where}: @task decorates a function")
    clash = sorted(RESERVED_FIELDS & set(made.args.model_fields))
    if clash:
        raise TaskDefinitionError(f"{where}: the model's field(s) {', '.join(clash)} are job options; rename them")
    if made.queue not in QUEUES:
        raise TaskDefinitionError(f"{where}: queue must be one of {', '.join(QUEUES)}")
    for name in ("timeout_seconds", "result_ttl_seconds", "concurrency_limit"):
        value = getattr(made, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise TaskDefinitionError(f"{where}: {name} must be a whole number of at least 1")
    if made.max_retries is not None and (not isinstance(made.max_retries, int) or made.max_retries < 0):
        raise TaskDefinitionError(f"{where}: max_retries must be a whole number of at least 0")
    if made.concurrency_key is not None:
        fields = {name for _, name, _, _ in string.Formatter().parse(made.concurrency_key) if name}
        unknown = sorted(fields - set(made.args.model_fields))
        if unknown:
            raise TaskDefinitionError(f"{where}: concurrency_key names {', '.join(unknown)}, not fields of the model")
    elif made.concurrency_limit is not None:
        raise TaskDefinitionError(f"{where}: concurrency_limit needs a concurrency_key")
    if made.example is not None:
        try:
            made.args.model_validate(dict(made.example))
        except ValueError as exc:
            raise TaskDefinitionError(f"{where}: its example is not valid: {exc}") from None


# --- discovery ---------------------------------------------------------------------------


def load(modules: str | None = None, *, use_entry_points: bool = True) -> list[str]:
    """Import the task modules: ``modules`` (comma-separated; default ``$OFFLOAD_TASKS``) and
    those of the ``offload.tasks`` entry points. Returns the modules' names.

    Raises :class:`TaskLoadError` naming the module that failed and why; a module imported
    before (by an earlier call, or because it is the built-ins') is not imported again."""
    names = [name.strip() for name in (os.environ.get(ENV_VAR, "") if modules is None else modules).split(",")]
    wanted = [(name, f"{ENV_VAR}") for name in names if name]
    if use_entry_points:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            wanted.append((point.value.split(":")[0].strip(), f"entry point {point.name!r} of {_dist(point)}"))
    loaded = []
    for name, origin in wanted:
        if name in loaded:
            continue
        try:
            importlib.import_module(name)
        except TaskDefinitionError as exc:
            raise TaskLoadError(f"tasks module {name!r} (from {origin}): {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - whatever the import raised, said with its name
            sys.modules.pop(name, None)
            raise TaskLoadError(
                f"tasks module {name!r} (from {origin}) could not be imported: {type(exc).__name__}: {exc}"
            ) from exc
        loaded.append(name)
    return loaded


def _dist(point: Any) -> str:
    dist = getattr(point, "dist", None)
    return f"the distribution {dist.name}" if dist is not None else "an installed distribution"
