"""Running periodic schedules: every due tick started once, however many workers tick.

Every worker's scheduler process (:class:`~app.worker.scheduler.OffloadScheduler`) holds a
:class:`ScheduleTicker` and calls :meth:`ScheduleTicker.tick` whenever a schedule is due (it
sleeps until the earliest next tick, at most a second). Any number of tickers may run at once,
on any number of hosts:

* **Polling** is one script (``due_schedules.lua``): the server's time, the due ids and the
  earliest next tick, so tickers whose host clocks disagree agree on what is due.
* **A claim is one transaction.** The ticker WATCHes the schedule's hash, reads its next tick
  T, and in one MULTI/EXEC enqueues the job (through :meth:`JobQueue.submit`, so it is the same
  job ``POST /jobs`` makes, owned by the schedule's owner) and moves the next tick on. Of two
  tickers claiming T, the second one's EXEC fails on the WATCH and it runs nothing. The job's id
  is ``<schedule id>-<T>``, a pure function of the tick: a claim that found that job already
  there would only move the schedule on.
* **Failover.** The claim and its job are one transaction, so they replicate together: after a
  failover the new primary has both or neither, and a tick lost with its job is claimed again,
  once. Under Sentinel the ticker WAITs for replicas after a poll's claims, as ``POST /jobs`` does
  after a submission (one WAIT covers every write before it).
* **Catch-up.** The next tick after a claim is the cadence's first tick after *now*: a ticker
  that comes back after more than one period runs the missed tick once (the one stored, T) and
  then goes on at the next future tick; it never runs a burst of the ticks it missed.

A tick whose job cannot be started (its queue is over MAX_QUEUE_DEPTH, or the submission no
longer validates on this server) starts no job: the schedule moves on and records why in
``last_error``.
"""

from __future__ import annotations

import json
import logging

import redis
from pydantic import ValidationError

from ... import connections, tracing
from ...settings import Settings
from .. import catalog
from ..contract import schemas
from ..engine import scripts
from ..engine.job import OffloadJob
from ..errors import InvalidSubmission, QueueFull
from ..keys import SCHEDULE_DUE_KEY, schedule_key
from ..store import JobQueue
from .schedules import cadence_of, decode, server_time

log = logging.getLogger(__name__)

#: Due schedules claimed per poll; more are taken on the next poll, at once.
BATCH = 100
#: The longest a ticker sleeps between polls: a schedule created or enabled meanwhile waits no longer.
MAX_WAIT_SECONDS = 1.0
#: After a claim raised something unexpected: poll again no sooner than this.
_AFTER_TROUBLE_SECONDS = 1.0


def job_id_for(schedule_id: str, tick: int) -> str:
    """The id of the job a schedule's tick starts: the same for every ticker that claims it."""
    return f"{schedule_id}-{tick}"


class ScheduleTicker:
    """Claims due schedules' ticks and starts their jobs (see the module docstring)."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.jobs = JobQueue(connection, settings)
        self._due = scripts.register(connection, "due_schedules")

    def tick(self) -> float:
        """Start the job of every due tick; answer the seconds until the next one is due (at
        most :data:`MAX_WAIT_SECONDS`). Redis errors propagate: the caller backs off."""
        seconds, micros, due, earliest = self._due(keys=[SCHEDULE_DUE_KEY], args=[BATCH])
        now = int(seconds) + int(micros) / 1_000_000
        trouble = False
        claimed = []
        for raw in due:
            schedule_id = raw.decode() if isinstance(raw, bytes) else raw
            try:
                claimed.append(self.claim(schedule_id, now, replicate=False))
            except redis.RedisError:
                raise
            except Exception:  # noqa: BLE001 - one broken schedule must not stop the others
                trouble = True
                log.exception("schedule %s: the tick failed", schedule_id, extra={"schedule_id": schedule_id})
        if any(claimed):
            self._replicate(f"{sum(map(bool, claimed))} claim(s)")
        if trouble:
            return _AFTER_TROUBLE_SECONDS
        if due:
            return 0.0  # poll again at once: more may be due, and the next tick is known then
        if earliest is None:
            return MAX_WAIT_SECONDS
        return max(0.0, min(MAX_WAIT_SECONDS, float(earliest) - now))

    def claim(self, schedule_id: str, now: float | None = None, *, replicate: bool = True) -> str | None:
        """Run the schedule's due tick, unless it is not due or another ticker (or an edit) got
        there first. Answers the id of the job started, or None. ``now`` is the server's time
        (read here when not given). ``replicate=False`` leaves the WAIT for replicas to the caller:
        :meth:`tick` waits once for all the claims of a poll (one WAIT covers every write before it)."""
        key = schedule_key(schedule_id)
        with self.connection.pipeline() as pipe:
            try:
                pipe.watch(key)
                fields = decode(pipe.hgetall(key))
                if now is None:
                    now = server_time(self.connection)
                if not fields or fields.get("enabled") != "1" or not fields.get("next_run_at"):
                    pipe.multi()  # deleted or disabled since the poll: it has no place in the due set
                    pipe.zrem(SCHEDULE_DUE_KEY, schedule_id)
                    pipe.execute()
                    return None
                tick = int(fields["next_run_at"])
                if tick > now:
                    return None  # claimed by another ticker since the poll
                job_id = job_id_for(schedule_id, tick)
                job_key = OffloadJob.key_for(job_id)
                pipe.watch(job_key)
                already = bool(pipe.exists(job_key))
                spec, error = self._validated(fields["job"])
                following = cadence_of(fields).next_after(now)
                pipe.multi()
                started = None
                if already:
                    # Another ticker started it and this one read the schedule before its advance:
                    # the race is settled by the job's id (one job a tick), so INFO, not WARNING
                    # (113 of 585 lines of a make run with 20 one-second schedules were this).
                    log.info("schedule %s: the job of tick %s exists already; moving on", schedule_id, tick)
                elif error is None:
                    try:
                        self.jobs.submit(
                            spec,
                            owner=fields.get("owner") or None,
                            job_id=job_id,
                            # A tick starts a trace of its own; its job's attempts are its root spans.
                            extra_meta={
                                "schedule_id": schedule_id,
                                "trace": tracing.to_meta(tracing.new_root(), root=True),
                            },
                            pipeline=pipe,
                        )
                        started = job_id
                    except QueueFull as exc:
                        error = {"type": "QueueFull", "message": f"queue {exc} is over its depth limit; tick skipped"}
                    except InvalidSubmission as exc:  # depends_on: a job unknown to the owner, or that will never finish
                        problems = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors[0])
                        error = {"type": "InvalidJob", "message": f"the job is not valid here any more: {problems}"}
                pipe.hset(
                    key,
                    mapping={
                        "next_run_at": str(following),
                        "last_run_at": repr(now),
                        "last_job_id": started or fields.get("last_job_id", ""),
                        "last_error": json.dumps(error) if error else "",
                    },
                )
                pipe.zadd(SCHEDULE_DUE_KEY, {schedule_id: following})
                pipe.execute()
            except redis.WatchError:
                return None
        if replicate and started:
            self._replicate(f"tick {tick} of schedule {schedule_id}")
        extra = {"schedule_id": schedule_id, "job_id": started}
        if started:
            log.info("schedule %s: tick %s started job %s", schedule_id, tick, started, extra=extra)
        elif error:
            log.warning("schedule %s: tick %s started no job: %s", schedule_id, tick, error["message"], extra=extra)
        return started

    def _replicate(self, what: str) -> None:
        """WAIT for replicas, as ``POST /jobs`` does; a claim no replica confirmed in time stays
        claimed (it has run or will): a failover now would lose it with its job, and run it again."""
        try:
            connections.wait_for_replicas(self.connection, self.settings)
        except connections.NotReplicated as exc:
            log.warning("%s not yet on a replica (%s)", what, exc)

    def _validated(self, submission: str) -> tuple[schemas.JobOptions | None, dict | None]:
        """The schedule's job, validated as ``POST /jobs`` would validate it on this server now."""
        adapter = catalog.request_adapter(self.settings)
        try:
            return adapter.validate_python(json.loads(submission), context={"settings": self.settings}), None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "job"
            return None, {
                "type": "InvalidJob",
                "message": f"the job is not valid here any more: {where}: {first['msg']}",
            }
