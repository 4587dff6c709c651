"""Stopping a worker (issue 25, item 8): a SIGTERM always stops it, in bounded time, wherever it
lands. ``make run``'s stack kept a worker (and so supervisord, Valkey and the SMTP sink) alive
long after Ctrl-C in half the runs that had served some work:

* RQ raised its stop from inside the signal handler, wherever the worker was; a stop landing
  while the worker wrote a log line was swallowed by ``logging`` ("--- Logging error ---
  StopRequested") and the worker served on, its stop forgotten (supervisord waits an hour);
* RQ's unsubscribe waited with no limit for redis-py's pub/sub thread, which could be waiting
  a minute for a subscription that never came;
* a stopping worker's maintenance restarted the scheduler it had just stopped, and the wait for
  the scheduler had no limit either.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import ROOT, submit, wait_until

pytestmark = pytest.mark.integration


class _StopWhileLogging(logging.StreamHandler):
    """A log handler that delivers the worker's SIGTERM while it writes a given line: the signal
    handler then runs inside ``StreamHandler.emit``, as a real signal does when it lands there."""

    def __init__(self, worker, message: str) -> None:  # noqa: ANN001
        super().__init__(open("/dev/null", "w"))  # noqa: SIM115 - closed in the test
        self.worker, self.message, self.fired = worker, message, False

    def flush(self) -> None:  # called inside emit's try block, after the line is written
        super().flush()
        if not self.fired and self.current.msg == self.message:
            self.fired = True
            self.worker.request_stop(signal.SIGTERM, None)

    def emit(self, record: logging.LogRecord) -> None:
        self.current = record
        super().emit(record)


@pytest.mark.parametrize("worker_class", ["fast", "forking"])
def test_a_stop_that_lands_while_the_worker_logs_stops_it_after_the_job_in_hand(clean_valkey, settings, worker_class):
    from app.jobs import JobQueue
    from app.worker import build_worker

    settings = settings.model_copy(update={"worker_class": worker_class})
    connection = clean_valkey.client()
    queue = JobQueue(connection, settings)
    ids = [submit(queue, settings, type="count_words", text=f"job {n}")["id"] for n in range(20)]
    worker = build_worker(connection, settings)
    # The line a worker writes when it takes a job, with no job running yet: RQ's handler raised there.
    handler = _StopWhileLogging(worker, "Worker %s: %s: %s")
    rq_log = logging.getLogger("rq.worker")
    rq_log.addHandler(handler)
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.work(burst=True, logging_level="INFO")
    finally:
        rq_log.removeHandler(handler)
        handler.stream.close()
        for signum, previous in saved.items():
            signal.signal(signum, previous)
    assert handler.fired
    statuses = [queue.get(job_id)["status"] for job_id in ids]
    # The job it had taken finishes; the worker takes no other.
    assert statuses.count("finished") == 1, statuses
    assert statuses.count("queued") == len(ids) - 1, statuses


def test_unsubscribing_does_not_wait_for_a_pubsub_thread_that_read_the_reply_first(clean_valkey, settings):
    """redis-py 8.2's ``PubSubWorkerThread.stop()`` waits for the thread without a limit; a thread
    that has read the UNSUBSCRIBE reply before being told to stop waits 60 s for a subscription."""
    from app.worker import build_worker

    worker = build_worker(clean_valkey.client(), settings)
    worker.subscribe()
    wait_until(lambda: worker.pubsub.subscribed, what="the subscription")
    worker.pubsub.unsubscribe()  # the thread reads the reply and goes back to waiting
    wait_until(lambda: not worker.pubsub.subscribed, what="the thread to read the reply")
    time.sleep(0.2)
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 2.5


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(p) for p in handle.read().split()]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_worker_whose_scheduler_hangs_still_stops_in_bounded_time(stack_factory):
    """The wait for the scheduler process is bounded (RQ's joins it with no limit)."""
    from app.jobs.engine.worker import SCHEDULER_STOP_SECONDS

    stack = stack_factory(workers=1)
    worker = stack.workers[0]
    assert stack.wait_for(stack.post({"type": "noop"}).json()["id"])["status"] == "finished"
    # The scheduler is the child in the worker's process group (the horse leads a group of its own).
    scheduler = wait_until(
        lambda: next((pid for pid in _children(worker.pid) if os.getpgid(pid) == os.getpgid(worker.pid)), None),
        what="the scheduler process",
    )
    children = _children(worker.pid)
    os.kill(scheduler, signal.SIGSTOP)  # a scheduler that cannot answer its SIGTERM
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(SCHEDULER_STOP_SECONDS + 10) == 0
    assert time.monotonic() - started < SCHEDULER_STOP_SECONDS + 5
    wait_until(lambda: all(_gone(pid) for pid in children), timeout=5, what="the worker's children to be gone")


def test_an_idle_worker_stops_within_about_a_second(stack_factory):
    """The stop is a flag; an idle worker reads it between waits of at most a second."""
    stack = stack_factory(workers=1, JOB_HEARTBEAT_SECONDS="60")  # a five-minute maintenance cadence
    worker = stack.workers[0]
    assert stack.wait_for(stack.post({"type": "noop"}).json()["id"])["status"] == "finished"
    time.sleep(1.5)  # idle, blocked for jobs
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert time.monotonic() - started < 3.5


def test_the_worker_command_stops_on_sigint_as_on_sigterm(stack_factory):
    """Ctrl-C in a terminal that runs ``python worker.py``."""
    stack = stack_factory(workers=0)
    process = subprocess.Popen(
        [sys.executable, "worker.py"], cwd=ROOT, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        assert stack.wait_for(stack.post({"type": "noop"}).json()["id"])["status"] == "finished"
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
