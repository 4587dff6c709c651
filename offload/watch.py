"""Following one job to its end for the command line, with an optional progress bar.

The bar is fed by the server's live events (``GET /jobs/{id}/events``: every status change
and every progress report as it happens). A server without that endpoint, or with all of its
event streams in use (503), is polled instead,
with ``GET /jobs/{id}?wait=1``: the answer comes back at once when the job ends, and once a
second otherwise with the progress saved so far. Both paths end with the job's final state;
only the liveness of the bar differs.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from .client import Client
from .errors import EventsUnavailable, ServiceUnavailable, WaitTimeout
from .models import Job
from .models import Progress as JobProgress

#: Seconds each poll may be held open when the server has no live events.
POLL_WAIT = 1.0


def follow(client: Client, job_id: str, *, timeout: float | None = None, bar: bool = False) -> Job:
    """The job once terminal, showing a progress bar on stderr if ``bar``; raises
    :class:`~offload.errors.WaitTimeout` after ``timeout`` seconds."""
    with Display(enabled=bar) as display:
        started = time.monotonic()
        try:
            for event, data in client.events(job_id, timeout=timeout, retry_busy=False):
                if isinstance(data, Job):
                    display.job(data)
                    if event == "end":
                        return data
                elif isinstance(data, JobProgress):
                    display.progress(data)
        except (EventsUnavailable, ServiceUnavailable):
            pass  # polling gets the same answer, a second later at worst
        remaining = None if timeout is None else timeout - (time.monotonic() - started)
        return _poll(client, job_id, remaining, display)


def _poll(client: Client, job_id: str, timeout: float | None, display: Display) -> Job:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = POLL_WAIT if deadline is None else max(0.0, min(POLL_WAIT, deadline - time.monotonic()))
        job = client.get(job_id, wait=step)
        display.job(job)
        if job.terminal:
            return job
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(job, timeout or 0.0)


class Display:
    """A rich progress bar on stderr: indeterminate until the job reports progress, full at
    the end if it finished. Disabled, every call is a no-op."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        if self.enabled:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task("waiting", total=None)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def job(self, job: Job) -> None:
        if self._bar is None or self._task is None:
            return
        self._bar.update(self._task, description=f"{job.type} {job.id[:8]} {job.status}")
        if job.progress is not None:
            self.progress(job.progress)
        if job.status == "finished":
            task = self._bar.tasks[0]
            total = task.total or 1
            self._bar.update(self._task, total=total, completed=total)

    def progress(self, progress: JobProgress) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=progress.total, completed=progress.done)
