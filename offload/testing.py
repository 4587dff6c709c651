"""Running a task as a plain function, in a test, with no Redis and no worker.

::

    from offload.testing import run

    def test_reverse():
        assert run(reverse_text, text="abc") == {"reversed": "cba"}

:func:`run` validates the fields with the task's model (as ``POST /jobs`` would: a
``pydantic.ValidationError`` for bad ones) and calls the function with a :class:`LocalContext`,
which records what the task reported (``progress_reports``, ``logger`` lines through the usual
``logging`` machinery) and answers ``cancelled()`` with what the test set.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from .tasks import Task

__all__ = ["LocalContext", "MemoryState", "run"]


class MemoryState:
    """:class:`offload.tasks.JobState` in a dict: what a job keeps across attempts, in a test."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def set(self, name: str, value: str) -> None:
        self.values[name] = value

    def claim(self, name: str, value: str = "1") -> bool:
        if name in self.values:
            return False
        self.values[name] = value
        return True

    def delete(self, *names: str) -> None:
        for name in names:
            self.values.pop(name, None)


class LocalContext:
    """A :class:`offload.tasks.Context` for tests: progress is recorded, nothing is stored."""

    def __init__(
        self,
        task: Task,
        *,
        job_id: str = "local",
        attempt: int = 1,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        settings: Any = None,
        state: MemoryState | None = None,
    ) -> None:
        self.job_id = job_id
        self.type = task.type
        self.attempt = attempt
        self.env = dict(env or {})
        self.secrets = {name: SecretStr(value) for name, value in (secrets or {}).items()}
        self.settings = settings
        self.state = state if state is not None else MemoryState()
        self.logger = logging.LoggerAdapter(logging.getLogger(f"offload.task.{task.type}"), {"job_id": job_id})
        self.progress_reports: list[tuple[int, int]] = []
        self.cancel_requested = False

    def progress(self, done: int, total: int) -> None:
        self.progress_reports.append((done, total))

    def cancelled(self) -> bool:
        return self.cancel_requested


def run(task: Task, ctx: LocalContext | None = None, /, **fields: Any) -> Any:
    """Validate ``fields`` with ``task``'s model and run it with ``ctx`` (a new LocalContext)."""
    arguments = task.args.model_validate(fields)
    return task(arguments, ctx if ctx is not None else LocalContext(task))
