"""Writing new jobs: one (``POST /jobs``) or many (``POST /jobs/batch``), in one round trip.

:func:`draft` makes the RQ job for a validated request and writes nothing. :func:`write` checks
the drafts' dependencies (:mod:`.dependencies`) and their queues' depth, then writes every draft
that can be written, with whatever the caller adds (a batch's record, an ``Idempotency-Key``'s
answer): all of them are written, or none.

The writes are RQ's own, recorded and sent in ONE script with their checks
(:mod:`app.jobs.engine.submit`, ``lua/submit.lua``): each queue's depth, and each dependency's
status still as it was read, so a dependency that ends meanwhile makes the submission read again
instead of leaving a job waiting on a job that has already ended. One round trip and one fsync
(two with ``depends_on``: the dependencies' read). Two cases keep a ``MULTI``/``EXEC`` with
``WATCH``: a job with a concurrency limit (RQ's limiter runs a script of its own, which cannot run
inside another), and a schedule's tick, whose job joins the ticker's own transaction
(``pipeline=``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis
from rq.job import JobStatus

from ...settings import Settings
from .. import catalog
from ..access import Principal
from ..admin import timeseries
from ..contract import schemas
from ..engine import private, submit
from ..engine.job import APART_FIELD, TEXT_INLINE_MAX_CHARS, OffloadJob
from ..engine.queue import OffloadQueue
from ..errors import QueueFull
from ..keys import JOB_INDEX_KEY, METRICS_KEY, text_key
from ..running import concurrency
from ..running.callbacks import retry_policy
from . import dependencies

#: Times a submission starts over when a job it depends on changes while it is checked.
_ATTEMPTS = 20


@dataclass
class Draft:
    """A job made but not written yet."""

    #: The item's index in its batch (0 for ``POST /jobs``): ``$N`` names item N.
    index: int
    request: schemas.JobOptions
    job: OffloadJob
    queue: OffloadQueue
    run_at: datetime | None
    #: Long texts of the task's ``long_text`` fields, each kept in a key of its own (by field).
    apart: dict[str, bytes]
    #: ``depends_on`` as given: job ids and, in a batch, ``$N``.
    references: list[str] = field(default_factory=list)
    #: Set by :func:`write`: the ids it waits for, and whether any has yet to finish.
    depends_on: list[str] = field(default_factory=list)
    deferred: bool = False


def draft(
    request: schemas.JobOptions,
    *,
    queues: Mapping[str, OffloadQueue],
    settings: Settings,
    owner: str | None,
    request_id: str | None,
    index: int = 0,
    batch_id: str | None = None,
    job_id: str | None = None,
    extra_meta: dict | None = None,
) -> Draft:
    """The RQ job for ``request`` on its queue of ``queues`` (nothing is written); ``job_id``
    names it (else RQ does). Its timeouts, TTLs, retries and concurrency limit come from
    ``settings`` where the request leaves them out."""
    task = catalog.get(request.type)  # type: ignore[attr-defined]
    queue = queues[request.queue]
    max_retries = settings.default_max_retries if request.max_retries is None else request.max_retries
    meta = {
        "type": task.type,
        "owner": owner,
        "max_retries": max_retries,
        "metadata": request.metadata,
        "callback_url": request.callback_url,
        "request_id": request_id,
        **(extra_meta or {}),
    }
    if batch_id is not None:
        meta["batch_id"] = batch_id
    if request.concurrency_key is not None:
        meta["concurrency_key"] = request.concurrency_key
    kwargs = request.task_arguments()
    apart = {
        name: kwargs.pop(name).encode("utf-8")
        for name in task.long_text_fields
        if isinstance(kwargs.get(name), str) and len(kwargs[name]) > TEXT_INLINE_MAX_CHARS
    }
    if apart:
        meta[APART_FIELD] = {name: len(text) for name, text in apart.items()}
    job = queue.create_job(
        task.func_name,
        kwargs=kwargs,
        timeout=request.timeout_seconds or settings.default_timeout_seconds,
        result_ttl=task.result_ttl_seconds or settings.result_ttl_seconds,
        failure_ttl=settings.failure_ttl_seconds,
        meta=meta,
        retry=retry_policy(settings, max_retries),
        description=task.type,
        job_id=job_id,
        rate_limit=concurrency.rate_limit_for(request.concurrency_key, request.concurrency_limit, owner, settings),
    )
    return Draft(index, request, job, queue, _run_at(request), apart, list(request.depends_on or []))


def write(
    connection: redis.Redis,
    drafts: list[Draft],
    *,
    principal: Principal,
    max_queue_depth: int,
    in_batch: bool = False,
    known_depth: int | None = None,
    also: Callable[[redis.client.Pipeline, list[Draft], dict[int, list[dict]]], None] | None = None,
    pipeline: redis.client.Pipeline | None = None,
    absent: list[str] | None = None,
    rate: submit.RateCount | None = None,
) -> tuple[list[Draft], dict[int, list[dict]]]:
    """Write every draft that can be written, in one transaction, with the commands that
    ``also(pipeline, written, errors)`` adds; return them, and the field errors of the others by
    index (a dependency that is unknown, another client's, or will never finish; an earlier item
    of the batch that was not valid).

    Raises QueueFull, writing nothing, when a queue would go over ``max_queue_depth``;
    ``known_depth`` is the depth of the one draft's queue if already read.

    With ``pipeline``, a transaction the caller has begun (and watches what it needs), the
    commands join it and nothing is sent; the jobs named in ``depends_on`` are read, not watched.

    ``absent``: keys that must not exist (an idempotency key the script claims): when one does,
    nothing is written and :class:`~app.jobs.engine.submit.Exists` is raised. Only the one-script
    path takes them; the caller claims them itself where that path cannot be taken
    (:func:`one_script`).

    ``rate``: rate-limit windows counted before anything else, by the same script (or, where
    the submission cannot be one script, in a round trip of their own first); over a limit,
    RateLimited is raised and nothing is written.
    """
    if pipeline is None and one_script(drafts):
        for _ in range(_ATTEMPTS):
            try:  # the windows are counted by the first attempt only (rate.replies)
                done = _in_one_script(connection, drafts, principal, max_queue_depth, in_batch, also, absent or [], rate)
            except submit.Changed:
                continue
            if done is not None:
                return done
            if absent:  # one_script() said yes, but a write turned out to be a script of RQ's
                raise RuntimeError("this submission cannot be one script: claim its idempotency key first (claim_now)")
            break
        else:
            raise redis.WatchError("the jobs this submission depends on kept changing; try again")
    if rate is not None and rate.replies is None:
        submit.count(connection, rate)  # this submission is a MULTI/EXEC: the windows first, on their own
    if pipeline is not None:
        return _attempt(connection, pipeline, drafts, principal, max_queue_depth, in_batch, known_depth, also, own=False)
    with connection.pipeline() as pipe:
        for _ in range(_ATTEMPTS):
            try:
                return _attempt(connection, pipe, drafts, principal, max_queue_depth, in_batch, known_depth, also)
            except redis.WatchError:
                known_depth = None
                continue
    raise redis.WatchError("the jobs this submission depends on kept changing; try again")


def _attempt(  # noqa: PLR0913 - write()'s arguments, and its pipeline
    connection: redis.Redis,
    pipe: redis.client.Pipeline,
    drafts: list[Draft],
    principal: Principal,
    max_queue_depth: int,
    in_batch: bool,
    known_depth: int | None,
    also: Callable[[redis.client.Pipeline, list[Draft], dict[int, list[dict]]], None] | None,
    *,
    own: bool = True,
) -> tuple[list[Draft], dict[int, list[dict]]]:
    references = {d.index: d.references for d in drafts}
    watched = dependencies.watch_keys(references)
    if watched and own:
        pipe.watch(*watched)  # before they are read: a change from now on fails the EXEC below
    per_queue = Counter(d.queue.name for d in drafts)
    queues = {d.queue.name: d.queue for d in drafts}
    depths: dict[str, int] = {}
    if watched or known_depth is None:
        with connection.pipeline(transaction=False) as reads:  # one round trip for all of them
            dependencies.read(reads, references)
            names = [] if known_depth is not None else list(per_queue)
            for name in names:
                reads.llen(queues[name].key)
            replies = reads.execute()
        depths = dict(zip(names, replies[len(watched) :], strict=True))
        replies = replies[: len(watched)]
    else:
        replies = []
    if known_depth is not None:
        depths = {name: known_depth for name in per_queue}
    met, errors = dependencies.resolve(references, {d.index: d.job.id for d in drafts}, replies, principal, in_batch=in_batch)
    kept = [d for d in drafts if d.index in met]
    for item in kept:
        item.depends_on, item.deferred = met[item.index]
    if not kept:
        if own:
            pipe.reset()
        return kept, errors
    for name, count in Counter(d.queue.name for d in kept).items():
        if depths[name] + count > max_queue_depth:
            raise QueueFull(name)
    concurrency.check_waiting(connection, [d.job for d in kept], max_queue_depth)
    if own:
        pipe.multi()
    _writes(kept, errors, pipe, also)
    if own:
        pipe.execute()
    return kept, errors


def _in_one_script(
    connection: redis.Redis,
    drafts: list[Draft],
    principal: Principal,
    max_queue_depth: int,
    in_batch: bool,
    also: Callable[[redis.client.Pipeline, list[Draft], dict[int, list[dict]]], None] | None,
    absent: list[str],
    rate: submit.RateCount | None = None,
) -> tuple[list[Draft], dict[int, list[dict]]] | None:
    """:func:`write` in one round trip (two with ``depends_on``: the dependencies are read first),
    by ``lua/submit.lua`` (:mod:`app.jobs.engine.submit`): the queues' depths, and the statuses of
    the dependencies as they were read, are checked in the script that writes. None when a write
    cannot go in a script (a rate-limited job: RQ's limiter runs a script of its own); raises
    :class:`~app.jobs.engine.submit.Changed` when a dependency changed meanwhile."""
    references = {d.index: d.references for d in drafts}
    named = dependencies.watch_keys(references)
    replies: list = []
    if named:
        with connection.pipeline(transaction=False) as reads:
            dependencies.read(reads, references)
            replies = reads.execute()
    met, errors = dependencies.resolve(references, {d.index: d.job.id for d in drafts}, replies, principal, in_batch=in_batch)
    kept = [d for d in drafts if d.index in met]
    if not kept:
        return kept, errors
    for item in kept:
        item.depends_on, item.deferred = met[item.index]
    recorded = submit.Recorder()
    _writes(kept, errors, recorded, also)  # type: ignore[arg-type] - it takes what a pipeline takes
    if recorded.scripted:
        return None
    checks = submit.Checks(
        depths={d.queue.key: (count, max_queue_depth) for d, count in _per_queue(kept)},
        guards=[(key, "status", reply[0]) for key, reply in zip(named, replies, strict=True)],
        absent=absent,
        rate=rate,
    )
    try:
        submit.run(connection, recorded, checks)
    except submit.QueueOverLimit as exc:
        raise QueueFull(next(d.queue.name for d in kept if d.queue.key == exc.args[0])) from None
    return kept, errors


def one_script(drafts: list[Draft], pipeline: redis.client.Pipeline | None = None) -> bool:
    """Whether :func:`write` can write ``drafts`` in one script (else: a MULTI/EXEC, and a key
    that must be absent is the caller's to claim first)."""
    return pipeline is None and not any(d.job.has_rate_limit for d in drafts)


def _per_queue(kept: list[Draft]) -> list[tuple[Draft, int]]:
    """One draft of each queue, and how many of ``kept`` go on it."""
    counts = Counter(d.queue.name for d in kept)
    firsts = {d.queue.name: d for d in reversed(kept)}
    return [(firsts[name], count) for name, count in counts.items()]


def _writes(
    kept: list[Draft],
    errors: dict[int, list[dict]],
    pipe: redis.client.Pipeline,
    also: Callable[[redis.client.Pipeline, list[Draft], dict[int, list[dict]]], None] | None,
) -> None:
    """Every write of a submission, into ``pipe`` (a transaction, or a :class:`~app.jobs.engine.submit.Recorder`)."""
    for item in kept:
        _stage(item, pipe)
    # The index entries and counters of all of them in one command each, not one per job.
    pipe.zadd(JOB_INDEX_KEY, {d.job.id: d.job.created_at.timestamp() if d.job.created_at else time.time() for d in kept})
    for job_type, count in Counter(d.job.meta["type"] for d in kept).items():
        pipe.hincrby(METRICS_KEY, f"enqueued:{job_type}", count)
    for queue_name, count in Counter(d.queue.name for d in kept).items():
        timeseries.count(pipe, "enqueued", queue_name, amount=count)
    if also is not None:
        also(pipe, kept, errors)


def _stage(item: Draft, pipe: redis.client.Pipeline) -> None:
    """Add ``item``'s job to the transaction: deferred, scheduled or queued."""
    job, queue = item.job, item.queue
    if item.depends_on:
        job.meta["depends_on"] = item.depends_on
    if item.deferred:  # RQ's Queue.setup_dependencies, for a pipeline already in MULTI
        private.set_dependency_ids(job, item.depends_on)
        job.set_status(JobStatus.DEFERRED, pipeline=pipe)
        job.register_dependency(pipeline=pipe)
        job.save(pipeline=pipe)
        pipe.sadd(queue.redis_queues_keys, queue.key)
    elif item.run_at is not None and item.run_at > datetime.now(UTC):
        queue.schedule_job(job, item.run_at, pipeline=pipe)
    elif job.has_rate_limit:
        concurrency.stage(queue, job, pipe)
    else:
        queue.enqueue_job(job, pipeline=pipe)
    for name, text in item.apart.items():  # in the job's transaction: all exist or none
        pipe.set(text_key(job.id, name), text)


def _run_at(request: schemas.JobOptions) -> datetime | None:
    """When to run, rounded up to a whole second: RQ's schedule keeps whole seconds, and a
    job must never run before the time the client asked for."""
    if request.delay_seconds:
        moment = datetime.now(UTC) + timedelta(seconds=request.delay_seconds)
    elif request.run_at is not None:
        moment = request.run_at.astimezone(UTC)
    else:
        return None
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment
