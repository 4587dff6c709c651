"""A team's own tasks, as a user of offload writes them: the stacks of the tests load this module
with ``OFFLOAD_TASKS=tests.user_tasks`` (the server's tests and the client's use the same one).

``reverse_text`` is the contract's example; ``typed_echo`` has a field of every JSON type the
command line converts (integer, number, boolean, an enum, a list, an object, an optional text
with an underscore in its name) and answers its fields as they arrived.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from offload import task


class ReverseArgs(BaseModel):
    """Reverse a text."""

    text: str = Field(min_length=1, max_length=1000)


@task("reverse_text", args=ReverseArgs, example={"text": "abc"})
def reverse_text(args: ReverseArgs, ctx) -> dict:
    return {"reversed": args.text[::-1]}


class TypedEchoArgs(BaseModel):
    """Echo typed fields back."""

    count: int = Field(description="A whole number.")
    ratio: float = Field(default=0.5, description="A number.")
    flag: bool = False
    color: Literal["red", "green", "blue"] = "red"
    tags: list[str] = Field(default_factory=list, description="Labels.")
    options: dict[str, Any] = Field(default_factory=dict, description="Anything, as JSON.")
    note_text: str | None = None


@task("typed_echo", args=TypedEchoArgs)
def typed_echo(args: TypedEchoArgs, ctx) -> dict:
    return args.model_dump(mode="json")
