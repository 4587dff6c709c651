"""The table of job types: what each ``type`` validates with and how it runs.

One entry per type binds the plain function (:mod:`app.tasks`), its arguments model (the
contract, :mod:`app.jobs.schemas`) and its runner (:mod:`app.jobs.runners`). The API looks a
submission's type up here; the worker looks a job's stored function name up here, and only
here: a job naming any other function fails and nothing is imported or run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel
from rq.job import Job

from .. import tasks
from ..settings import Settings
from . import runners, schemas

Runner = Callable[[Job, dict, Settings], dict]


@dataclass(frozen=True)
class Task:
    """A job type: its arguments model and how to run the plain function behind it."""

    type: str
    func: Callable[..., dict]
    args_model: type[BaseModel]
    #: Runs the task inside its job; None: the function is called with the arguments alone.
    runner: Runner | None = None
    diagnostic: bool = False

    @property
    def func_name(self) -> str:
        """The name a job stores (and RQ and the dashboard show): ``app.tasks.<name>``,
        the public export of :mod:`app.tasks`, whichever module defines the function."""
        return f"{tasks.__name__}.{_EXPORTED_AS[self.func]}"

    def run(self, job: Job, arguments: dict, settings: Settings) -> dict:
        if self.runner is None:
            return self.func(**arguments)
        return self.runner(job, arguments, settings)


_EXPORTED_AS = {getattr(tasks, name): name for name in tasks.__all__ if callable(getattr(tasks, name))}

TASKS: dict[str, Task] = {
    task.type: task
    for task in (
        Task("count_words", tasks.count_words, schemas.CountWordsArgs, runners.count_words),
        Task("send_email", tasks.send_email, schemas.SendEmailArgs, runners.send_email_once),
        Task("webhook", tasks.deliver_webhook, schemas.WebhookArgs, runners.deliver_webhook),
        Task("sleep", tasks.sleep, schemas.SleepArgs, runners.sleep, diagnostic=True),
        Task("noop", tasks.noop, schemas.NoopArgs, diagnostic=True),
        Task("fail", tasks.fail, schemas.FailArgs, diagnostic=True),
    )
}

#: Names stored by earlier versions, so jobs queued before an upgrade still run.
_LEGACY_NAMES = {"app.webhooks.deliver": "webhook"}

_BY_FUNC_NAME = {task.func_name: task for task in TASKS.values()} | {
    name: TASKS[type_] for name, type_ in _LEGACY_NAMES.items()
}


def by_func_name(func_name: str | None) -> Task | None:
    """The task a job's stored function name stands for, or None for anything else."""
    return _BY_FUNC_NAME.get(func_name or "")
