"""A team's own tasks, as a user of offload writes them: loaded by the test stacks with
``OFFLOAD_TASKS=tests.user_tasks`` (the web, worker and scheduler processes import it at start)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from offload import task


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
