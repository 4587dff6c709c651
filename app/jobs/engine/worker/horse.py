"""The persistent work horse: one child process that runs job after job over a pipe.

:class:`HorseMixin` is both sides of it, as RQ's worker is: the methods the worker process
calls to hand a job over and watch the horse (``_run_in_horse``, ``_horse_lost``,
``kill_horse``), and those that run in the horse itself (``_horse_main``, ``_horse_perform``).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import time
from multiprocessing.connection import Connection, Pipe

from rq.callbacks import execute_failure_callback, execute_success_callback
from rq.executions import Execution
from rq.job import Job, JobStatus, Retry
from rq.job_lifecycle import format_exc_info
from rq.queue import Queue
from rq.timeouts import JobTimeoutException
from rq.utils import now

from .... import logs, telemetry, tracing
from ...running.context import final_progress_rides_outcome

log = logging.getLogger("offload.worker")
rq_log = logging.getLogger("rq.worker")


class _NullPipeline:
    """Swallows the writes of ``Job.prepare_for_execution`` when the horse replays it to get
    the same in-memory job the worker process has (the worker already wrote them)."""

    def __getattr__(self, name: str):  # noqa: ANN204
        return lambda *args, **kwargs: self


class HorseMixin:
    """The horse, for :class:`~.fast.PersistentHorseWorker` (an RQ worker)."""

    #: Replace the horse after this many jobs (0: never), as Celery's max_tasks_per_child.
    horse_max_jobs: int = 10_000
    #: Replace the horse once its resident memory passes this many MiB (0: never).
    horse_max_rss_mb: int = 512
    #: Check the horse's memory every this many jobs.
    horse_rss_check_every: int = 50

    _horse_process: int = 0  # the horse's pid, busy or idle; _horse_pid is set only while it runs a job
    _horse_conn: Connection | None = None
    _horse_jobs: int = 0

    # -- the horse, seen from the worker --

    def _hand_to_horse(self, job: Job) -> None:
        """Hand the started job to the horse, which runs it at once."""
        raw = getattr(job, "_stored_hash", None) or self.connection.hgetall(job.key)
        self._send_to_horse((job.id, raw, self.name, tracing.current.get()))  # the attempt's span (app.worker.listeners.tracing)

    def _send_to_horse(self, payload: tuple) -> None:
        """Send the job to a live horse, starting one if there is none or it died while idle."""
        for attempt in (1, 2):
            if not self._horse_alive():
                self._spawn_horse()
            try:
                self._horse_conn.send(payload)  # type: ignore[union-attr]
                return
            except OSError:
                self._reap_horse(block=True)  # died while idle (e.g. OOM): start another and hand it the job
                if attempt == 2:
                    raise

    def _run_in_horse(self, job: Job, queue: Queue, execution: Execution):  # noqa: ANN202
        """Wait for the horse's answer to the job it was handed, beating the heartbeats
        meanwhile. Returns None when the horse died or was killed before answering (a horse
        that died since it was handed the job died with it)."""
        # (Unlike RQ, no RQ_JOB_ID in the environment: glibc keeps every value ever given to
        # setenv(), so a variable that changes per job grows the process by ~50 bytes a job.
        # rq.get_current_job() is the way to the job.)
        self._horse_pid = self._horse_process
        self.procline(f"Horse {self._horse_process} running {job.id} since {time.time()}")
        conn = self._horse_conn
        assert conn is not None
        while True:
            try:
                if conn.poll(self.job_monitoring_interval):
                    reply = conn.recv()
                    break
            except (EOFError, OSError):
                reply = None
                break
            working_time = (now() - job.started_at).total_seconds() if job.started_at else 0.0
            if job.timeout != -1 and working_time > (job.timeout or self.queue_class.DEFAULT_TIMEOUT) + 60:
                # The horse ignored its own alarm (stuck in C code): kill it from here, as RQ does.
                self.heartbeat(self.job_monitoring_interval + 60)
                self.kill_horse()
                reply = None
                break
            self.maintain_heartbeats(job, execution)
        self._horse_pid = 0
        if reply is not None:
            self._horse_jobs += 1
            self._maybe_recycle_horse()
        return reply

    def _horse_lost(self, job: Job, queue: Queue, execution: Execution) -> None:
        """The end of RQ's ``monitor_work_horse`` when the horse exits without answering."""
        retpid, ret_val, rusage = self._reap_horse(block=True)
        self.executions.pop(execution.id, None)
        try:
            job_status = job.get_status()
        except Exception:  # noqa: BLE001 - InvalidJobOperation: finished and expired
            return
        if self._stopped_job_id == job.id:
            self._handle_stopped_job(job, queue, execution)
        elif job_status not in (JobStatus.FINISHED, JobStatus.FAILED):
            job.ended_at = now()
            signal_msg = f" (signal {os.WTERMSIG(ret_val)})" if ret_val and os.WIFSIGNALED(ret_val) else ""
            exc_string = f"Work-horse terminated unexpectedly; waitpid returned {ret_val}{signal_msg}; "
            self.log.warning("Worker %s: job %s failed (%s)", self.name, job.id, exc_string)
            self.handle_work_horse_killed(job, retpid, ret_val, rusage)
            self.handle_job_failure(job, queue=queue, exc_string=exc_string, execution=execution)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill the horse's process group, but only while it runs a job: RQ's version turns a
        horse pid of 0 (a job that just ended) into this worker's own process group."""
        pid = self._horse_pid
        if not pid:
            return
        try:
            os.killpg(pid, sig)  # the horse leads its own group (setpgrp)
            self.log.info("Worker %s: killed horse pid %s", self.name, pid)
        except ProcessLookupError:
            self.log.debug("Worker %s: horse already dead", self.name)

    def _horse_alive(self) -> bool:
        if not self._horse_process:
            return False
        try:
            pid, _ = os.waitpid(self._horse_process, os.WNOHANG)
        except ChildProcessError:
            pid = self._horse_process
        if pid == 0:
            return True
        self._forget_horse()
        return False

    def _reap_horse(self, block: bool):  # noqa: ANN202
        pid = self._horse_process
        result: tuple = (None, None, None)
        if pid:
            try:
                result = os.wait4(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                pass
        self._forget_horse()
        return result

    def _forget_horse(self) -> None:
        if self._horse_conn is not None:
            self._horse_conn.close()
        self._horse_conn = None
        self._horse_process = 0
        self._horse_pid = 0

    def _spawn_horse(self) -> None:
        ours, theirs = Pipe(duplex=True)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the horse
            ours.close()
            code = 1
            try:
                self._horse_main(theirs, parent)
                code = 0
            except BaseException:  # noqa: BLE001
                pass
            os._exit(code)
        theirs.close()
        self._horse_process, self._horse_conn, self._horse_jobs = pid, ours, 0
        self.procline(f"Forked horse {pid} at {time.time()}")

    def _maybe_recycle_horse(self) -> None:
        if self.horse_max_jobs and self._horse_jobs >= self.horse_max_jobs:
            self._retire_horse()
        elif self.horse_max_rss_mb and self._horse_jobs % self.horse_rss_check_every == 0:
            if _rss_mb(self._horse_process) > self.horse_max_rss_mb:
                log.info("work horse %s is over %s MiB; replacing it", self._horse_process, self.horse_max_rss_mb)
                self._retire_horse()

    def _retire_horse(self) -> None:
        """Ask an idle horse to exit (kill it if it does not within 5 s) and reap it."""
        pid, conn = self._horse_process, self._horse_conn
        if not pid:
            return
        try:
            if conn is not None:
                conn.send(None)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            time.sleep(0.005)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._forget_horse()

    # -- the horse itself --

    def _horse_main(self, conn: Connection, parent: int) -> None:
        os.setpgrp()
        random.seed()
        self.setup_work_horse_signals()  # SIGINT ignored, SIGTERM default, dies with the worker
        if os.getppid() != parent:  # the worker died before the death signal was armed
            return
        self._is_horse = True
        self.log = rq_log
        self.executions = {}
        try:
            self._horse_serve(conn)
        finally:
            telemetry.flush()  # the horse leaves by os._exit, which skips atexit

    def _horse_serve(self, conn: Connection) -> None:
        while True:
            try:
                message = conn.recv()
                if message is None:
                    return
                job = self._horse_receive(*message[:2])  # a started job: run it
            except EOFError:
                return
            reply = self._horse_perform(job, *message[2:4])
            try:
                conn.send(reply)
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - the return value does not pickle (nothing was sent)
                conn.send(("failed", f"{type(exc).__name__}: cannot hand the result back: {exc}", *reply[2:]))

    def _horse_receive(self, job_id: str, raw: dict) -> Job:
        """The job handed over, restored from its hash, with its text read (if it has one)."""
        job = self.job_class(job_id, connection=self.connection, serializer=self.serializer)
        job.restore(raw)
        prefetch = getattr(job, "prefetch_text", None)
        if prefetch is not None:
            prefetch()
        return job

    def _horse_perform(self, job: Job, worker_name: str, span: tracing.SpanContext | None = None):  # noqa: ANN202
        """RQ's ``perform_job`` minus its Redis writes, which the worker process makes; ``span``
        is the attempt's, made by the worker process, current here too."""
        job.prepare_for_execution(worker_name, pipeline=_NullPipeline())  # same in-memory job as the worker's
        job_token = logs.job_id_var.set(job.id)
        request_token = logs.request_id_var.set(job.meta.get("request_id"))
        span_token = tracing.current.set(span)
        deferred_token = final_progress_rides_outcome.set(True)  # the worker saves meta with the outcome
        job.started_at = now()
        try:
            timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
            with self.death_penalty_class(timeout, JobTimeoutException, job_id=job.id):
                self.log.debug("Worker %s: performing job %s ...", self.name, job.id)
                return_value = job.perform()
            job.ended_at = now()
            if not isinstance(return_value, Retry):
                self.serializer.dumps(return_value)  # fails here, as the result save would in RQ
                execute_success_callback(job, self.death_penalty_class, return_value)
            return ("ok", return_value, job.started_at, job.ended_at, _job_state(job))
        except:  # noqa: E722 - as RQ's perform_job: any failure is the job's
            exc_info = sys.exc_info()
            job.ended_at = job.ended_at or now()
            try:
                execute_failure_callback(job, self.death_penalty_class, *exc_info)
            except:  # noqa: E722
                exc_info = sys.exc_info()
            self.handle_exception(job, *exc_info)
            return ("failed", format_exc_info(exc_info), job.started_at, job.ended_at, _job_state(job))
        finally:
            final_progress_rides_outcome.reset(deferred_token)
            tracing.current.reset(span_token)
            logs.job_id_var.reset(job_token)
            logs.request_id_var.reset(request_token)


#: What a task may change on its own job, handed back from the horse so that the worker
#: process records the outcome with it, as RQ's horse (which records it itself) would:
#: offload's send_email sets ``retries_left = 0`` when a retry could duplicate a message,
#: and count_words writes ``meta["progress"]``.

_HORSE_STATE = ("meta", "retries_left", "retry_intervals", "result_ttl", "failure_ttl", "ttl", "description")


def _job_state(job: Job) -> dict:
    return {name: getattr(job, name) for name in _HORSE_STATE if hasattr(job, name)}


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0
