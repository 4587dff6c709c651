"""Diagnostic tasks, served only with ``ENABLE_DIAGNOSTIC_TASKS=1``: for tests and benchmarks."""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from offload.tasks import Context, task

from .words import ProgressCallback


def noop() -> dict:
    """Does nothing; for benchmarks of the queue itself."""
    return {}


def fail(message: str) -> dict:
    """Raises; for tests of failures and retries."""
    raise RuntimeError(message)


def sleep(seconds: float, progress: ProgressCallback | None = None) -> dict:
    """Waits; for tests of timeouts, cancel and worker shutdown. With ``progress``, reports
    milliseconds slept of ``seconds`` every tenth of a second: a job with live progress that
    takes as long as a test (or a person watching the page) needs."""
    if progress is None or seconds <= 0:
        time.sleep(seconds)
        return {"slept": seconds}
    total = max(1, round(seconds * 1000))
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(0.1, seconds - elapsed))
        progress(min(total, round((time.monotonic() - started) * 1000)), total)
    return {"slept": seconds}


class SleepArgs(BaseModel):
    """Wait (diagnostic: tests of timeouts, cancel and shutdown)."""

    model_config = ConfigDict(extra="forbid")

    seconds: Annotated[float, Field(strict=True, ge=0, le=3600)]


class NoopArgs(BaseModel):
    """Do nothing (diagnostic: benchmarks of the queue itself)."""

    model_config = ConfigDict(extra="forbid")


class FailArgs(BaseModel):
    """Fail on purpose (diagnostic: tests of failures and retries)."""

    model_config = ConfigDict(extra="forbid")

    message: StrictStr = "failed on purpose"


@task("sleep", args=SleepArgs, diagnostic=True)
def sleep_job(args: SleepArgs, ctx: Context) -> dict:
    return sleep(args.seconds, progress=ctx.progress)


@task("noop", args=NoopArgs, diagnostic=True)
def noop_job(args: NoopArgs, ctx: Context) -> dict:
    return noop()


@task("fail", args=FailArgs, diagnostic=True)
def fail_job(args: FailArgs, ctx: Context) -> dict:
    return fail(args.message)
