"""A team's own tasks, as a user of offload writes them: loaded by the test stacks with
``OFFLOAD_TASKS=tests.user_tasks`` (the web, worker and scheduler processes import it at start)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from offload import PermanentFailure, RetryLater, long_text, task, upload


class ReverseArgs(BaseModel):
    """Reverse a text."""

    text: str = Field(min_length=1, max_length=1000)


@task("reverse_text", args=ReverseArgs)
def reverse_text(args: ReverseArgs, ctx) -> dict:
    return {"reversed": args.text[::-1]}


class TypedEchoArgs(BaseModel):
    """Echo typed arguments back: one field of each kind a form or a command line must offer."""

    count: int = Field(ge=0, le=1000, description="A whole number.")
    ratio: float = Field(0.5, ge=0, description="A number with a fraction.")
    flag: bool = False
    color: Literal["red", "green", "blue"] = "green"
    tags: list[str] = Field(default_factory=list, description="Words.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything, as a JSON object.")


@task("typed_echo", args=TypedEchoArgs)
def typed_echo(args: TypedEchoArgs, ctx) -> dict:
    return args.model_dump()


# --- for the fault and lifecycle tests: a user task must behave as the built-ins do ------------


class CrunchArgs(BaseModel):
    """Crunch for a while, reporting progress and stopping when asked: a slow task of a team's."""

    seconds: float = Field(ge=0, le=120)
    note: Annotated[str, long_text, upload] = ""


@task("crunch", args=CrunchArgs, queue="low", max_retries=2, timeout_seconds=90, example={"seconds": 1})
def crunch(args: CrunchArgs, ctx) -> dict:
    steps = max(1, round(args.seconds * 10))
    for step in range(steps):
        if ctx.cancelled():
            ctx.logger.info("asked to cancel at step %d", step)
            return {"steps": step, "cancelled": True}
        time.sleep(0.1)
        ctx.progress(step + 1, steps)
    ctx.logger.info("crunched %d steps", steps)
    return {"steps": steps, "attempt": ctx.attempt, "note_words": len(args.note.split())}


class OutcomeArgs(BaseModel):
    """End as asked: each way a task can end, for tests."""

    outcome: Literal["permanent", "retry_later", "raise", "big_result", "not_json", "ok"]
    after: float = 1.0


@task("finish_as", args=OutcomeArgs, max_retries=2)
def finish_as(args: OutcomeArgs, ctx) -> dict:
    if args.outcome == "permanent":
        raise PermanentFailure("the partner said 404: no retry can mend it")
    if args.outcome == "retry_later" and ctx.attempt == 1:
        raise RetryLater("the partner is busy", after=args.after)
    if args.outcome == "raise":
        raise RuntimeError(f"failed on attempt {ctx.attempt}")
    if args.outcome == "big_result":
        return {"data": "x" * (2 * 1024 * 1024)}
    if args.outcome == "not_json":
        return {"set": {1, 2}}
    return {"attempt": ctx.attempt}


class PartnerCallArgs(BaseModel):
    """Call a partner's API for one account, one call per account at a time."""

    account: str = Field(pattern=r"^[a-z0-9-]{1,40}$")


@task("partner_call", args=PartnerCallArgs, concurrency_key="partner:{account}", concurrency_limit=1)
def partner_call(args: PartnerCallArgs, ctx) -> dict:
    return {"account": args.account}
