"""The command line's tasks: ``offload submit TYPE --FIELD VALUE ...`` built at run time from
the task's description (``GET /tasks/{type}``), and the tables of ``offload tasks`` and
``offload task TYPE``. Nothing here knows any task: every option of ``submit TYPE`` comes from
the task's JSON Schema (:mod:`offload.fields`) or is a job option every type takes.

``submit`` is a :class:`click.Group` whose commands are the server's task types: click resolves
``TYPE`` with :meth:`TaskCommands.get_command`, which asks the server and builds the command, so
``offload submit TYPE --help`` lists that task's fields, an unknown ``--FIELD`` is refused by
click's own parser (with its "did you mean"), and values are converted (and checked) as they
are parsed. A field ``max_len`` is ``--max-len`` and ``--max_len``; a field whose option would
be one of the command's own (``--wait``, ``--json``, ...) is given as ``--field NAME=VALUE``.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .client import Client
from .errors import NotFound, OffloadError
from .fields import TaskField, convert
from .models import TaskInfo

#: ``run(ctx, task, fields, options, **flags)``: what ``submit TYPE`` does once its options are
#: parsed (``flags``: idempotency_key, wait, timeout, progress, as_json).
Run = Callable[..., None]

#: A field name that can be an option's (``--NAME``); any other is given as ``--field NAME=VALUE``.
_OPTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ServerWithoutTasks(click.ClickException):
    """The server does not answer ``GET /tasks``: it is older than task discovery."""

    exit_code = 3


def _object_type(name: str) -> click.ParamType:
    return FieldType(TaskField(name, "object"))


def _job_options() -> list[click.Option]:
    """Fresh option objects for one command (click keeps state on them)."""
    return [
        click.Option(["--queue"], type=click.Choice(["high", "default", "low"]), help="Queue to run on."),
        click.Option(["--delay-seconds", "--delay", "delay_seconds"], type=click.FloatRange(min=0), metavar="SECONDS", help="Run no earlier than this many seconds from now."),
        click.Option(["--run-at"], metavar="TIME", help="Run no earlier than this RFC 3339 time."),
        click.Option(["--timeout-seconds"], type=click.IntRange(min=1), metavar="SECONDS", help="Bound on each attempt."),
        click.Option(["--max-retries"], type=click.IntRange(min=0), metavar="N", help="Retries after a failed attempt."),
        click.Option(["--callback-url"], metavar="URL", help="POSTed the job when it ends."),
        click.Option(["--metadata"], type=_object_type("metadata"), metavar="JSON", help="A JSON object, echoed back (@file reads it)."),
        click.Option(["--concurrency-key"], metavar="KEY", help="Jobs with the same key share --concurrency-limit."),
        click.Option(["--concurrency-limit"], type=click.IntRange(min=1), metavar="N", help="At most this many jobs of the key at once."),
        click.Option(["--depends-on"], multiple=True, metavar="JOB_ID", help="Run after this job finishes (repeatable)."),
    ]  # fmt: skip


def _own_options() -> list[click.Option]:
    return [
        click.Option(["--field", "field_values"], multiple=True, metavar="NAME=VALUE", help="A field by its name (repeatable): for a field whose option is one of the command's own."),
        click.Option(["--idempotency-key"], metavar="KEY", help="Default: a fresh one, so a retried submission is never doubled."),
        click.Option(["--wait"], is_flag=True, help="Follow the job to its end; the exit code tells how it ended."),
        click.Option(["--timeout"], type=click.FloatRange(min=0), metavar="SECONDS", help="With --wait: give up after this many seconds."),
        click.Option(["--progress/--no-progress"], default=None, help="A progress bar on stderr while waiting (default: if a terminal)."),
        click.Option(["--json", "as_json"], is_flag=True, help="Print JSON."),
    ]  # fmt: skip


# --- values -------------------------------------------------------------------------------------


class FieldType(click.ParamType):
    """A field's value from its text: ``@path`` reads a file (``@-`` stdin, ``@@x`` is ``@x``)
    for text and JSON fields, then :func:`offload.fields.convert`."""

    def __init__(self, field: TaskField) -> None:
        self.field = field
        self.item = field.items if field.kind == "array" and field.items else field
        self.name = self.item.type_label

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if self.item.reads_files and value.startswith("@"):
            value = value[1:] if value.startswith("@@") else self._read(value[1:], param, ctx)
        try:
            return convert(self.field, value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)

    def _read(self, path: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            if path == "-":
                stdin = sys.stdin
                data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode()
            else:
                data = Path(path).expanduser().read_bytes()
        except OSError as exc:
            self.fail(f"cannot read {path}: {exc.strerror or exc}", param, ctx)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{'stdin' if path == '-' else path} is not UTF-8 text", param, ctx)


#: The dests of the job options, and every option string ``submit TYPE`` has of its own.
JOB_OPTIONS = tuple(option.name for option in _job_options())
OWN_OPTIONS = frozenset(
    {"--help", "-h"}
    | {name for option in (*_job_options(), *_own_options()) for name in (*option.opts, *option.secondary_opts)}
)


def option_names(field_name: str) -> list[str]:
    """``--max-len`` and ``--max_len`` for a field ``max_len``; none for a name an option cannot
    have or whose option is one of the command's own (``--wait``, ``--json``, ...)."""
    names = list(dict.fromkeys([f"--{field_name.replace('_', '-')}", f"--{field_name}"]))
    return [] if not _OPTION_NAME.match(field_name) or OWN_OPTIONS & set(names) else names


class FieldOption(click.Option):
    """``--FIELD`` of one of the task's fields; its help shows the first of its names only."""

    def __init__(self, names: list[str], dest: str, field: TaskField) -> None:
        item = field.items if field.kind == "array" and field.items else field
        super().__init__(
            [*names, dest], type=FieldType(field), multiple=field.kind == "array", metavar=_metavar(item),
            help=field_help(field),
        )  # fmt: skip
        self.field = field

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        return f"{self.opts[0]} {self.make_metavar(ctx)}", record[1]


def _metavar(field: TaskField) -> str:
    if field.kind == "enum":
        return "[" + "|".join(str(choice) for choice in field.choices) + "]"
    return {
        "string": "@FILE|TEXT" if field.upload else "TEXT", "integer": "INTEGER", "number": "NUMBER",
        "boolean": "true|false", "object": "JSON", "array": "JSON",
    }.get(field.kind, "VALUE")  # fmt: skip


def field_help(field: TaskField) -> str:
    """What ``--help`` says of a field: its description, then its type's notes."""
    notes = [field.description.rstrip(".") + "." if field.description else ""]
    if field.kind == "array":
        notes.append("Repeat the option for each item.")
    if field.upload:
        notes.append("A text file: @path reads it (@- stdin).")
    elif field.long_text:
        notes.append("A long text: @path reads it from a file (@- stdin).")
    elif field.kind == "object" or (field.items and field.items.kind == "object"):
        notes.append("@path reads the JSON from a file.")
    if field.required:
        notes.append("[required]")
    elif field.has_default and field.default is not None:
        notes.append(f"[default: {_shown(field.default)}]")
    return " ".join(note for note in notes if note)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- the commands -------------------------------------------------------------------------------


class TaskCommands(click.Group):
    """``submit``: one command a task type of the server, made when it is named."""

    def __init__(self, *args: Any, run: Run, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run = run

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [info.type for info in ctx.find_object(Client).tasks()]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if ctx.resilient_parsing:  # shell completion: no requests
            return None
        client = ctx.find_object(Client)
        try:
            info = client.task(cmd_name)
        except NotFound:
            raise click.UsageError(_unknown_type(client, cmd_name), ctx) from None
        return TaskCommand(info, self.run, context_settings={"max_content_width": 100})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        client = ctx.find_object(Client)
        try:
            rows = [(info.type, info.description) for info in client.tasks()]
        except OffloadError as exc:  # the help is still shown, with why the types are not
            rows = [("?", f"could not ask {client.base_url}/tasks: {exc}")]
        with formatter.section("Task types (offload tasks)"):
            formatter.write_dl(rows)


def _unknown_type(client: Client, name: str) -> str:
    try:
        types = [info.type for info in client.tasks()]
    except NotFound:
        raise ServerWithoutTasks(
            f"the server at {client.base_url} does not describe its tasks (GET /tasks answered 404): "
            "it is older than this offload command"
        ) from None
    return f"no task type {name!r} on {client.base_url}; it has: {', '.join(types) or 'none'} (see offload tasks)"


class TaskCommand(click.Command):
    """``submit TYPE``: the task's fields as options, then the job options and the command's own."""

    def __init__(self, info: TaskInfo, run: Run, **kwargs: Any) -> None:
        self.info = info
        own = [*_job_options(), *_own_options()]
        taken: set[str] = set()
        self.by_option: dict[str, TaskField] = {}
        self.unoffered: list[TaskField] = []
        field_options = []
        for index, field in enumerate(info.fields):
            names = option_names(field.name)
            if not names or taken & set(names):
                self.unoffered.append(field)
                continue
            taken |= set(names)
            dest = f"field_{index}"
            field_options.append(FieldOption(names, dest, field))
            self.by_option[dest] = field
        help_text = (info.description or f"Submit a job of {info.type}.") + _unoffered_note(self.unoffered)
        super().__init__(
            info.type, params=[*field_options, *own], callback=self._submit, help=help_text,
            short_help=info.description, **kwargs,
        )  # fmt: skip
        self.runner = run
        by_name = {option.name: option for option in own}
        self.sections = [
            (f"Fields of {info.type}", [*field_options, by_name["field_values"]]),
            ("Job options", [*own[: len(JOB_OPTIONS)], by_name["idempotency_key"]]),
            ("Waiting and output", [by_name[name] for name in ("wait", "timeout", "progress", "as_json")]),
        ]  # fmt: skip

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, params in self.sections:
            records = [record for param in params if (record := param.get_help_record(ctx)) is not None]
            help_option = self.get_help_option(ctx)
            if title.startswith("Waiting") and help_option is not None:
                records.append(help_option.get_help_record(ctx))
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            fields = ", ".join(param.opts[0] for param in self.params if isinstance(param, FieldOption)) or "none"
            raise click.UsageError(
                f"{exc.format_message()}\n{self.info.type} has no field {exc.option_name.lstrip('-')!r}; "
                f"its fields: {fields} (offload task {self.info.type})",
                ctx,
            ) from None

    def _submit(self, **params: Any) -> None:
        ctx = click.get_current_context()
        given = {dest: params.pop(dest) for dest in self.by_option}  # an explicit null is sent, an absent field not
        fields = {
            self.by_option[dest].name: _given(value) for dest, value in given.items()
            if ctx.get_parameter_source(dest) is click.ParameterSource.COMMANDLINE
        }  # fmt: skip
        for field, value in self._named_fields(ctx, params.pop("field_values")):
            fields[field.name] = [*fields.get(field.name, []), value] if field.kind == "array" else value
        missing = [field for field in self.info.fields if field.required and field.name not in fields]
        if missing:
            names = ", ".join(self._option_of(field) for field in missing)
            raise click.UsageError(f"Missing {names} (required by {self.info.type}).", ctx)
        options = {name: _given(params.pop(name)) for name in JOB_OPTIONS}
        self.runner(ctx, self.info, fields, {k: v for k, v in options.items() if v is not None}, **params)

    def _named_fields(self, ctx: click.Context, items: tuple[str, ...]) -> list[tuple[TaskField, Any]]:
        """``--field NAME=VALUE`` items, converted as their fields (an array's: one item each)."""
        values = []
        param = next(param for param in self.params if param.name == "field_values")
        for item in items:
            name, equals, text = item.partition("=")
            if not equals or not name:
                raise click.BadParameter(f"{item!r} is not NAME=VALUE", ctx, param)
            field = self.info.field_named(name)
            if field is None:
                known = ", ".join(field.name for field in self.info.fields) or "none"
                raise click.BadParameter(f"{self.info.type} has no field {name!r}; its fields: {known}", ctx, param)
            values.append((field, FieldType(field).convert(text, param, ctx)))
        return values

    def _option_of(self, field: TaskField) -> str:
        option = next((p for p in self.params if isinstance(p, FieldOption) and p.field.name == field.name), None)
        return f"'{option.opts[0]}'" if option else f"'--field {field.name}=VALUE'"


def _given(value: Any) -> Any:
    """None for an option not given (a repeatable one gives an empty tuple), else the value."""
    if isinstance(value, tuple):
        return list(value) if value else None
    return value


def _unoffered_note(fields: list[TaskField]) -> str:
    if not fields:
        return ""
    names = ", ".join(field.name for field in fields)
    return f"\n\nGive {names} as --field NAME=VALUE (its option would clash with one of the command's own)."


# --- offload tasks, offload task TYPE ----------------------------------------------------------


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def print_tasks(tasks: list[TaskInfo]) -> None:
    """A table of the task types: type, default queue, description."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("TYPE", "QUEUE", "DESCRIPTION"):
        table.add_column(column, no_wrap=column != "DESCRIPTION", overflow="fold")
    for info in tasks:
        table.add_row(Text(info.type), Text(info.defaults.queue), Text(info.description))
    _console().print(table)


def print_task(info: TaskInfo) -> None:
    """One task: its description and defaults, an example command, and its fields as a table."""
    console = _console()
    defaults = info.defaults
    lines = [("type", info.type), ("description", info.description or "-"), ("queue", defaults.queue)]
    for name in ("timeout_seconds", "max_retries", "result_ttl_seconds", "concurrency_key", "concurrency_limit"):
        value = getattr(defaults, name)
        if value is not None:
            lines.append((name.replace("_", " "), str(value)))
    if info.example is not None:
        lines.append(("example", example_command(info)))
    width = max(len(name) for name, _ in lines) + 2
    for name, value in lines:
        console.print(Text(f"{name:<{width}}{value}"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in ("FIELD", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"):
        table.add_column(column, overflow="fold")
    for field in info.fields:
        default = _shown(field.default) if field.has_default else "-"
        note = "(a file: @path)" if field.upload else "(long text: @path)" if field.long_text else ""
        described = " ".join(part for part in (field.description, note) if part)
        cells = (field.name, field.type_label, "yes" if field.required else "no", default, described)
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table if info.fields else Text("(no fields)"))


def example_command(info: TaskInfo) -> str:
    """``offload submit TYPE --FIELD VALUE ...`` for the task's example."""
    words = ["offload", "submit", info.type]
    for name, value in (info.example or {}).items():
        option = next(iter(option_names(name)), None)
        for item in value if isinstance(value, list) else [value]:
            text = item if isinstance(item, str) else json.dumps(item)
            words += [option, text] if option else ["--field", f"{name}={text}"]
    return " ".join(shlex.quote(word) for word in words)
