"""``offload``: the command line for an offload server, on :class:`offload.client.Client`.

    offload tasks                                          # the job types the server takes
    offload task count_words                               # one type's fields
    offload submit count_words --text @notes.txt --wait    # a progress bar, then the result
    offload submit send_email --to bob@example.com --subject Hi --body 'Hello Bob'
    offload list --status failed
    offload retry 3f0c…

``submit TYPE`` takes TYPE's fields as options (``--FIELD VALUE``), read from the server's
description of the task at run time (:mod:`offload.cli_tasks`): no task is known here.

The server and key come from ``--url`` / ``--api-key`` or ``OFFLOAD_URL`` / ``OFFLOAD_API_KEY``.
``--json`` prints the server's JSON (one job resource, a list of them, or one event per line).

Exit codes, so scripts can branch on them:

==== ===================================================================================
0    done; with ``--wait``, ``wait`` and ``events``: the job finished
1    the job ended failed, canceled or stopped
2    a usage error: bad options, or the server refused the request as invalid (400, 413, 415, 422)
3    the server answered with another error (401, 403, 409, 429, 5xx) or could not be reached
4    ``--timeout`` passed before the job ended
5    not found (404): no such job (or task type, for ``offload task``)
==== ===================================================================================
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from .cli_tasks import ServerWithoutTasks, TaskCommands, print_task, print_tasks
from .client import DEFAULT_URL, Client, __version__
from .errors import NotFound, OffloadError, WaitTimeout
from .models import Job, TaskInfo
from .models import Progress as JobProgress
from .watch import follow

EXIT_JOB_FAILED, EXIT_USAGE, EXIT_SERVER, EXIT_TIMEOUT, EXIT_NOT_FOUND = 1, 2, 3, 4, 5
_INVALID = {400, 413, 415, 422}


class _Commands(click.Group):
    """Turns the client's errors into a message on stderr and the documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WaitTimeout as exc:
            click.echo(f"offload: {exc}", err=True)
            raise click.exceptions.Exit(EXIT_TIMEOUT) from None
        except OffloadError as exc:
            head = " ".join(str(part) for part in (exc.status, exc.title) if part)
            click.echo(f"offload: {head}: {exc.detail}" if head else f"offload: {exc.detail}", err=True)
            for error in exc.errors:
                click.echo(f"  {error.get('field')}: {error.get('message')}", err=True)
            if exc.request_id:
                click.echo(f"  request id: {exc.request_id}", err=True)
            raise click.exceptions.Exit(_exit_code(exc)) from None


def _exit_code(exc: OffloadError) -> int:
    if exc.status in _INVALID:
        return EXIT_USAGE
    return EXIT_NOT_FOUND if exc.status == 404 else EXIT_SERVER


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="OFFLOAD_URL", default=DEFAULT_URL, show_default=True, help="The server (env OFFLOAD_URL).")
@click.option("--api-key", envvar="OFFLOAD_API_KEY", default=None, help="Sent as Bearer (env OFFLOAD_API_KEY).")
@click.option("--http-timeout", type=float, default=10.0, show_default=True, help="Seconds to connect and per read.")
@click.version_option(__version__, prog_name="offload")
@click.pass_context
def cli(ctx: click.Context, url: str, api_key: str | None, http_timeout: float) -> None:
    """Submit jobs to an offload server and follow them."""
    ctx.obj = ctx.with_resource(Client(url, api_key or "", timeout=http_timeout))


def _json_option(command: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)


def _progress_option(command: Any) -> Any:
    return click.option(
        "--progress/--no-progress", default=None, help="A progress bar on stderr while waiting (default: if a terminal)."
    )(command)


def _submit(
    ctx: click.Context, info: TaskInfo, fields: dict[str, Any], options: dict[str, Any], *,
    idempotency_key: str | None, wait: bool, timeout: float | None, progress: bool | None, as_json: bool,
) -> None:  # fmt: skip
    """What ``submit TYPE`` does with its parsed fields and options."""
    if timeout is not None and not wait:
        raise click.UsageError("--timeout goes with --wait", ctx)
    client = ctx.find_object(Client)
    job = client.submit(info.type, fields, idempotency_key=idempotency_key, **options)
    if not wait:
        if as_json:
            _print_job(job, as_json)
        else:
            click.echo(job.id)  # alone on the line: id=$(offload submit ...)
        return
    _finish(client, job.id, timeout, progress, as_json)


cli.add_command(
    TaskCommands(
        "submit", run=_submit, no_args_is_help=True, subcommand_metavar="TYPE [--FIELD VALUE]... [--wait] [--json]",
        help="""Submit a job of TYPE with its fields as options.

        \b
          offload submit count_words --text 'the quick brown fox' --wait
          offload submit count_words --text @notes.txt --queue low
          offload submit TYPE --help     # TYPE's fields, and the job options

        The fields are those the server describes for TYPE (GET /tasks/TYPE): a field max_len is
        --max-len (or --max_len); integers, numbers and true/false are converted, a list field is
        given once per item, an object as JSON, and @path reads a text from a file (@- from stdin).""",
    )
)


@cli.command("tasks")
@_json_option
@click.pass_obj
def tasks_command(client: Client, as_json: bool) -> None:
    """List the task types the server takes."""
    tasks = _described(client, client.tasks)
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in tasks], indent=2))
    else:
        print_tasks(tasks)


@cli.command("task")
@click.argument("job_type", metavar="TYPE")
@_json_option
@click.pass_obj
def task_command(client: Client, job_type: str, as_json: bool) -> None:
    """Show a task type: its fields (name, type, required, default) and defaults."""
    info = _described(client, lambda: client.task(job_type))
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        print_task(info)


def _described(client: Client, ask: Callable[[], Any]) -> Any:
    """``ask()``, with a 404 of ``GET /tasks`` itself told apart from an unknown type."""
    try:
        return ask()
    except NotFound:
        try:
            client.tasks()
        except NotFound:
            raise ServerWithoutTasks(
                f"the server at {client.base_url} does not describe its tasks (GET /tasks answered 404)"
            ) from None
        raise


@cli.command()
@click.argument("job_id")
@_json_option
@click.pass_obj
def get(client: Client, job_id: str, as_json: bool) -> None:
    """Show a job."""
    _print_job(client.get(job_id), as_json)


@cli.command("wait")
@click.argument("job_id")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds (exit code 4).")
@_progress_option
@_json_option
@click.pass_obj
def wait_command(client: Client, job_id: str, timeout: float | None, progress: bool | None, as_json: bool) -> None:
    """Wait for a job to end; the exit code tells how it ended."""
    _finish(client, job_id, timeout, progress, as_json)


@cli.command()
@click.argument("job_id")
@_json_option
@click.pass_obj
def cancel(client: Client, job_id: str, as_json: bool) -> None:
    """Cancel a queued or scheduled job, or stop a running one."""
    _print_job(client.cancel(job_id), as_json)


@cli.command()
@click.argument("job_id")
@_json_option
@click.pass_obj
def retry(client: Client, job_id: str, as_json: bool) -> None:
    """Put a failed, stopped or canceled job back on its queue."""
    _print_job(client.retry(job_id), as_json)


@cli.command("list")
@click.option("--status", help="Only jobs in this status.")
@click.option("--type", "job_type", help="Only jobs of this type.")
@click.option("--queue", type=click.Choice(["high", "default", "low"]), help="Only jobs on this queue.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="At most this many jobs.")
@_json_option
@click.pass_obj
def list_command(
    client: Client, status: str | None, job_type: str | None, queue: str | None, limit: int, as_json: bool
) -> None:
    """List jobs, newest first (following the server's pages)."""
    jobs = list(client.list(status=status, type=job_type, queue=queue, limit=limit, page_size=min(limit, 200)))
    if as_json:
        click.echo(json.dumps([job.to_dict() for job in jobs], indent=2))
        return
    rows = [("ID", "TYPE", "STATUS", "QUEUE", "CREATED", "ATTEMPTS")]
    for job in jobs:
        created = job.to_dict()["created_at"] or "-"
        rows.append((job.id, job.type, job.status, job.queue, created, str(job.attempts)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@cli.command()
@click.argument("job_id")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds (exit code 4).")
@_json_option
@click.pass_obj
def events(client: Client, job_id: str, timeout: float | None, as_json: bool) -> None:
    """Print a job's live events until it ends; the exit code tells how it ended."""
    final: Job | None = None
    for event, data in client.events(job_id, timeout=timeout):
        payload = data.to_dict() if isinstance(data, Job) else asdict(data) if isinstance(data, JobProgress) else data
        if as_json:
            click.echo(json.dumps({"event": event, "data": payload}))
        elif isinstance(data, Job):
            click.echo(f"{event:<9}{data.status}" + (f"  {_short(data)}" if data.terminal else ""))
        elif event == "progress":
            click.echo(f"{event:<9}{data.done}/{data.total}")
        else:
            click.echo(f"{event:<9}{json.dumps(payload)}")
        if event == "end" and isinstance(data, Job):
            final = data
    if final is not None and not final.succeeded:
        raise click.exceptions.Exit(EXIT_JOB_FAILED)


def _finish(client: Client, job_id: str, timeout: float | None, progress: bool | None, as_json: bool) -> None:
    bar = sys.stderr.isatty() if progress is None else progress
    job = follow(client, job_id, timeout=timeout, bar=bar)
    _print_job(job, as_json)
    if not job.succeeded:
        raise click.exceptions.Exit(EXIT_JOB_FAILED)


def _print_job(job: Job, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(job.to_dict(), indent=2))
        return
    data = job.to_dict()
    lines: list[tuple[str, str | None]] = [("id", job.id), ("type", job.type), ("status", job.status), ("queue", job.queue)]
    lines += [(name, data[f"{name}_at"]) for name in ("created", "enqueued", "started", "ended")]
    lines.append(("attempts", f"{job.attempts} (max retries {job.max_retries})"))
    if job.progress is not None:
        lines.append(("progress", f"{job.progress.done}/{job.progress.total}"))
    lines.append(("result", json.dumps(job.result) if job.result is not None else None))
    lines.append(("error", f"{job.error.type}: {job.error.message}" if job.error else None))
    lines.append(("metadata", json.dumps(job.metadata) if job.metadata is not None else None))
    for name, value in lines:
        if value is not None:
            click.echo(f"{name:<10}{value}")


def _short(job: Job) -> str:
    if job.error is not None:
        return f"{job.error.type}: {job.error.message}"
    return json.dumps(job.result) if job.result is not None else ""


def main() -> None:
    """The ``offload`` console script."""
    cli(prog_name="offload")


if __name__ == "__main__":
    main()
