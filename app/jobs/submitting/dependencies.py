"""Dependencies (``depends_on``): a job runs only after the jobs it names have finished.

RQ keeps the relation: a dependent is ``deferred`` (in RQ's deferred registry, and listed in each
dependency's dependents set), and when a dependency finishes, RQ's own worker code moves the
dependents whose dependencies have all finished onto their queues (both of offload's workers take
RQ's path for a job that has dependents). What RQ leaves out, offload adds here:

* **Checks at submission** (:func:`resolve`). An id the caller may not see is unknown (422), and so
  is a dependency that has already failed, been canceled or stopped: it will never finish, so the
  job is refused rather than failed at once. A dependency that has finished is met: the job is
  queued at once. In a batch ``$N`` names item N, an earlier one only, so a batch cannot make a
  cycle, and a new job cannot close one with existing jobs: nothing can depend on it yet.
* **Dependents of a job that will never finish** (:func:`fail_orphans`). RQ would leave them
  deferred for ever. The outcome transaction of a job that ends failed, canceled or stopped notes
  it when it has dependents (:mod:`app.jobs.running.endings`); then the worker that ended it, the web
  process that canceled it, or else the next maintenance pass of any worker fails each deferred
  dependent with error type ``DependencyFailed``, naming the dependency. That failure notes the
  dependent's own dependents in turn, so a whole chain fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import redis
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
from rq.registry import DeferredJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import now

from ...settings import Settings
from ..access import Principal
from ..catalog import is_offload_job
from ..engine import private, storage
from ..engine.job import OffloadJob
from ..errors import DependencyFailed
from ..keys import ORPHANING_KEY
from ..reading.resource import public_status
from ..running.callbacks import enqueue_callback
from ..running.counters import record_outcome
from ..running.events import publish_job_event

log = logging.getLogger(__name__)

#: A dependency in one of these will never finish.
NEVER_FINISHING = frozenset({"failed", "canceled", "stopped"})
_VERB = {"failed": "failed", "canceled": "was canceled", "stopped": "was stopped"}


def watch_keys(references: Mapping[int, list[str]]) -> list[str]:
    """The keys of the existing jobs named in ``references`` (each item's ``depends_on`` as
    given, by index): watched while they are checked."""
    return [storage.job_key(job_id) for job_id in _named(references)]


def _named(references: Mapping[int, list[str]]) -> list[str]:
    return sorted({ref for refs in references.values() for ref in refs if not ref.startswith("$")})


def read(pipe: redis.client.Pipeline, references: Mapping[int, list[str]]) -> None:
    """Ask (in ``pipe``, not a transaction) for the status and meta of every job ``references``
    name; :func:`resolve` reads the replies."""
    for job_id in _named(references):
        storage.ask_status_and_meta(pipe, job_id)


def resolve(
    references: Mapping[int, list[str]],
    job_ids: Mapping[int, str],
    replies: list,
    principal: Principal,
    *,
    in_batch: bool,
) -> tuple[dict[int, tuple[list[str], bool]], dict[int, list[dict]]]:
    """What each item waits for, by index: the ids of its dependencies (``$N`` made the id of
    item N, ``job_ids[N]``), and whether any has yet to finish; and the field errors of the
    items that cannot be written, by index. ``replies`` are :func:`read`'s, in its order."""
    ids = _named(references)
    found = {job_id: _existing(reply, principal) for job_id, reply in zip(ids, replies, strict=True)}
    met: dict[int, tuple[list[str], bool]] = {}
    errors: dict[int, list[dict]] = {}
    for index in sorted(references):
        problems, depends_on, deferred = [], [], False
        for position, reference in enumerate(references[index]):
            field = f"depends_on.{position}"
            if reference.startswith("$"):
                item = int(reference[1:])
                if not in_batch:
                    problems.append({"field": field, "message": "$N names an item of a batch: use it in POST /jobs/batch"})
                elif item >= index:
                    problems.append({"field": field, "message": "may name an earlier item of the batch only (no cycles)"})
                elif item not in met:
                    problems.append({"field": field, "message": f"item {item} of the batch is not valid, so no job waits for it"})
                else:
                    depends_on.append(job_ids[item])
                    deferred = True
                continue
            status = found.get(reference)
            if status is None:
                problems.append({"field": field, "message": "no job with this id (unknown, expired, or another client's)"})
            elif status in NEVER_FINISHING:
                problems.append({"field": field, "message": f"job {reference} {_VERB[status]}: it will never finish"})
            else:
                depends_on.append(reference)
                deferred = deferred or status != "finished"
        if problems:
            errors[index] = problems
        else:
            met[index] = (depends_on, deferred)
    return met, errors


def _existing(reply: list, principal: Principal) -> str | None:
    """The public status of a job the caller may see, or None."""
    found = storage.status_and_meta(reply)
    if found is None:
        return None
    status, meta = found
    if not is_offload_job(meta) or not principal.may_see(meta.get("owner")):
        return None
    return public_status(status)


def unfinished_dependency(connection: redis.Redis, job: OffloadJob) -> tuple[str, str] | None:
    """A dependency of ``job`` that has not finished, and its status; None when all have (a
    dependency that has expired finished long ago)."""
    ids = job.meta.get("depends_on") or []
    if not ids:
        return None
    for job_id, status in zip(ids, storage.read_statuses(connection, ids), strict=True):
        if status is not None and status != JobStatus.FINISHED:
            return job_id, public_status(status)
    return None


# --- dependents of a job that will never finish --------------------------------------------------


def fail_orphans(connection: redis.Redis, settings: Settings) -> int:
    """Fail the deferred dependents of every job noted as never finishing; returns how many."""
    failed = 0
    done: set[str] = set()
    while True:  # a failed dependent notes its own dependents: the next round takes them
        noted = {raw.decode() for raw in connection.smembers(ORPHANING_KEY)} - done
        if not noted:
            return failed
        for job_id in noted:
            failed += _fail_dependents_of(connection, job_id, settings)
            done.add(job_id)


def _fail_dependents_of(connection: redis.Redis, job_id: str, settings: Settings) -> int:
    found = storage.read_statuses(connection, [job_id])[0]
    status = public_status(found) if found is not None else None
    dependents_key = storage.dependents_key(job_id)
    handled: list[str] = []
    if status is None or status in NEVER_FINISHING:  # else it was retried meanwhile: its dependents wait on
        reason = f"dependency {job_id} {_VERB.get(status or '', 'no longer exists')}, so this job will not run"
        handled = [raw.decode() for raw in connection.smembers(dependents_key)]
        failed = sum(_fail(connection, dependent_id, reason, settings) for dependent_id in handled)
    else:
        failed = 0
    with connection.pipeline() as pipe:
        if handled:  # only those: a dependent added after a retry of the dependency stays
            pipe.srem(dependents_key, *handled)
        pipe.srem(ORPHANING_KEY, job_id)
        pipe.execute()
    return failed


def _fail(connection: redis.Redis, job_id: str, reason: str, settings: Settings) -> int:
    """Fail one dependent if it is still deferred: 1 if this call failed it, 0 if it was no
    longer deferred (or is gone). A Redis error leaves the note for a later pass."""
    with connection.pipeline() as pipe:
        while True:
            try:
                pipe.watch(storage.job_key(job_id))
                job = OffloadJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
                if job.get_status(refresh=False) != JobStatus.DEFERRED:
                    pipe.reset()
                    return 0
                pipe.multi()
                job.ended_at = now()
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                DeferredJobRegistry(job.origin, connection, job_class=OffloadJob, serializer=JSONSerializer).remove(
                    job, pipeline=pipe
                )
                storage.mark_ended_at(job, pipe)
                private.record_failure(job, f"{DependencyFailed.__name__}: {reason}", pipe)  # notes its own dependents
                record_outcome(connection, job, "failed", pipeline=pipe)
                publish_job_event(connection, job.id, pipeline=pipe)
                pipe.execute()
                break
            except redis.WatchError:
                continue
            except NoSuchJobError:
                return 0
    log.info("dependent job failed: %s", reason, extra={"job_id": job_id})
    if job.meta.get("callback_url"):
        try:
            enqueue_callback(connection, job, settings)
        except redis.RedisError:
            log.exception("could not queue the callback of job %s", job_id, extra={"job_id": job_id})
    return 1
