"""A team's own task for ``make bench``: the same fields as ``count_words`` (one long text),
registered through ``@task`` in a module of its own and loaded by gunicorn from OFFLOAD_TASKS, so
the intake phase can show that a user task's submission costs what a built-in's does."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from offload import long_text, task


class EchoArgs(BaseModel):
    """Echo a text back (a user task of the benchmark)."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[StrictStr, long_text] = Field(min_length=1)


@task("bench_echo", args=EchoArgs)
def bench_echo(args: EchoArgs, ctx) -> dict:
    return {"characters": len(args.text)}
