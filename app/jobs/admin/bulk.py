"""Bulk actions by filter: retry failed jobs, cancel queued ones, delete finished ones.

One request walks the job index (:func:`app.jobs.reading.search.scan_index`) in batches of
:data:`~app.jobs.contract.schemas.SEARCH_BATCH` entries and acts on each batch's matches in one Redis round trip,
never one transaction per job (RQ's ``FailedJobRegistry.requeue`` is one per job). It stops after
``limit`` matches or :data:`SCAN_BUDGET` index entries and answers a cursor to go on from, so one
request never holds a thread for minutes, whatever the index holds.

Safe while workers run: every job is checked and changed atomically, so a job is never run twice
and never lost.

* retry and delete WATCH the batch's job hashes, read them, and change only the jobs still in the
  state that matched, in MULTI/EXEC. Anything that changes a job (a worker starting it, a single
  retry, another bulk request) changes its hash, so EXEC fails and the batch is read again: a job
  retried twice over would need two EXECs that both saw it failed.
* cancel cannot rely on the hash: a worker takes a queued job with an LMOVE (its dequeue script)
  that leaves the hash alone. A Lua script (:class:`app.jobs.engine.storage.QueuedCanceler`) cancels a
  job only if it takes it off its queue list itself (LREM), which a dequeue that got there first
  makes impossible.

What RQ stores of a job (its hash's fields, its registries, its keys) is written here through
:mod:`app.jobs.engine.storage`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import redis
from rq.serializers import JSONSerializer

from ...settings import QUEUE_NAMES
from ..access import Principal
from ..contract.bulk_schemas import DEFAULT_LIMIT
from ..engine import storage
from ..engine.job import OffloadJob, apart_fields
from ..engine.queue import OffloadQueue, wake
from ..keys import EVENTS_CHANNEL, JOB_INDEX_KEY, text_key
from ..reading.resource import public_status
from ..reading.search import JobFilter, Seen, matching_jobs, position, scan_index
from ..running import concurrency, endings
from ..submitting import dependencies

log = logging.getLogger(__name__)

#: Which statuses each action takes, and the default when the filter names none.
ACTIONS = {
    "retry": (frozenset({"failed", "stopped", "canceled"}), frozenset({"failed"})),
    "cancel": (frozenset({"queued"}), frozenset({"queued"})),
    "delete": (frozenset({"finished", "failed", "canceled", "stopped"}), frozenset({"finished"})),
}
#: Index entries one request scans at most.
SCAN_BUDGET = 50_000
_WATCH_ATTEMPTS = 8



@dataclass
class BulkOutcome:
    matched: int = 0
    done: int = 0
    skipped: int = 0
    next: str | None = None

    def as_dict(self) -> dict:
        return {"matched": self.matched, "done": self.done, "skipped": self.skipped}


class BulkActions:
    """Retry, cancel or delete every job matching a filter, in bounded batches."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self.queues = {
            name: OffloadQueue(name, connection=connection, serializer=JSONSerializer, job_class=OffloadJob)
            for name in QUEUE_NAMES
        }
        self._cancel = storage.QueuedCanceler(connection)

    def run(
        self,
        action: str,
        principal: Principal,
        job_filter: JobFilter,
        *,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        scan_budget: int = SCAN_BUDGET,
    ) -> BulkOutcome:
        """Act on up to ``limit`` matching jobs after ``cursor`` (ValueError if malformed)."""
        allowed, default = ACTIONS[action]
        statuses = job_filter.statuses or default
        if not statuses <= allowed:
            raise ValueError(f"{action} takes jobs that are {', '.join(sorted(allowed))}")
        job_filter = replace(job_filter, statuses=statuses)
        act = {"retry": self._retry, "cancel": self._cancel_batch, "delete": self._delete}[action]
        outcome = BulkOutcome()
        scanned = 0
        for entries in scan_index(
            self.connection, cursor=cursor, newest=job_filter.created_before, oldest=job_filter.created_after
        ):
            matched = matching_jobs(self.connection, principal, entries, job_filter)
            last_entry = entries[-1]
            if outcome.matched + len(matched) > limit:
                matched = matched[: limit - outcome.matched]
                last_job, last_score = matched[-1] if matched else (None, None)
                if last_job is not None:
                    last_entry = (last_job.id, last_score)
                outcome.next = position(*last_entry)
            outcome.matched += len(matched)
            if matched:
                done = act([job for job, _ in matched], job_filter)
                outcome.done += done
                outcome.skipped += len(matched) - done
            scanned += len(entries)
            if outcome.next is not None:
                break
            if scanned >= scan_budget or outcome.matched >= limit:
                outcome.next = position(*last_entry)
                break
        log.info(
            "bulk %s: %d matched, %d done, %d skipped",
            action, outcome.matched, outcome.done, outcome.skipped,
            extra={"bulk_action": action, "matched": outcome.matched, "done": outcome.done},
        )  # fmt: skip
        return outcome

    # -- retry and delete: WATCH the hashes, re-check the status, act in one MULTI/EXEC --

    def _watched(self, jobs: list[Seen], job_filter: JobFilter, write) -> int:
        """``write(jobs, pipe)`` for the jobs still in a status the filter takes, atomically.

        The jobs were read (in full) before the WATCH; after it, only their status is read again,
        in one round trip: a job whose hash changes after that fails the EXEC, and the batch is
        checked again. The writes touch only the fields that change, so a job changed between the
        first read and the WATCH (still failed, say, after another retry and run) loses nothing."""
        keys = [job.key for job in jobs]
        for _ in range(_WATCH_ATTEMPTS):
            with self.connection.pipeline() as pipe:
                try:
                    pipe.watch(*keys)
                    statuses = storage.read_statuses(self.connection, (job.id for job in jobs))
                    still = [
                        job
                        for job, status in zip(jobs, statuses, strict=True)
                        if status is not None and public_status(status) in job_filter.statuses
                    ]
                    pipe.multi()
                    if still:
                        write(still, pipe)
                    pipe.execute()
                    return len(still)
                except redis.WatchError:
                    continue
        # Jobs of this batch kept changing under us: act on none (they are counted as skipped).
        log.warning("bulk action: a batch of %d jobs kept changing; skipped", len(keys))
        return 0

    def _retry(self, jobs: list[Seen], job_filter: JobFilter) -> int:
        # As POST /jobs/{id}/retry: not while a dependency has not finished (counted as skipped).
        jobs = [job for job in jobs if dependencies.unfinished_dependency(self.connection, job) is None]  # type: ignore[arg-type]
        if not jobs:
            return 0

        def write(still: list[Seen], pipe: redis.client.Pipeline) -> None:
            # What RQ's FailedJobRegistry.requeue changes (registry, status, times, TTL, queue), but
            # field by field (RQ saves the whole hash) and a batch per command where Redis allows.
            storage.requeue(self.connection, _by_origin(still), pipe)
            for job in still:
                for name in apart_fields(job.meta):
                    pipe.persist(text_key(job.id, name))
                endings.job_reopened(job, pipe)  # type: ignore[arg-type] - a job of a batch: the batch waits for it again
            limited = [job for job in still if job.has_rate_limit]  # they wait for a slot again
            concurrency.requeue(self.connection, limited, pipe)  # type: ignore[arg-type] - Seen has what it needs
            for origin, ids in _by_origin([job for job in still if not job.has_rate_limit]).items():
                pipe.rpush(self.queues[origin].key, *ids)
            wake(pipe, len(still))

        return self._watched(jobs, job_filter, write)

    def _delete(self, jobs: list[Seen], job_filter: JobFilter) -> int:
        def write(still: list[Seen], pipe: redis.client.Pipeline) -> None:
            storage.delete(self.connection, _by_origin(still), pipe)
            apart = [text_key(job.id, name) for job in still for name in apart_fields(job.meta)]
            if apart:
                pipe.delete(*apart)
            pipe.zrem(JOB_INDEX_KEY, *(job.id for job in still))

        return self._watched(jobs, job_filter, write)

    # -- cancel: one script per batch --

    def _cancel_batch(self, jobs: list[Seen], job_filter: JobFilter) -> int:
        found = [
            (job.id, job.origin, storage.waiting_key(self.connection, job.rate_limit_key) if job.has_rate_limit else None)  # type: ignore[arg-type]
            for job in jobs
        ]
        return len(self._cancel(found, EVENTS_CHANNEL))


def _by_origin(jobs: list[Seen]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for job in jobs:
        found.setdefault(job.origin, []).append(job.id)
    return found
