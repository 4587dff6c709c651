"""Per-key concurrency and fair shares between API keys, on RQ's own rate limiter.

RQ 3 limits how many jobs with the same ``rate_limit_key`` are queued or running at once: a job
over the limit is saved as ``rate_limited`` and waits in a sorted set (``rq:rl:<key>:rate_limited``)
instead of its queue; when a job holding a slot ends, the worker releases the slot and promotes
the oldest waiting job onto its queue in one Lua script, and maintenance frees the slots of jobs
that died without releasing them. Because the jobs over the limit never reach a queue, no worker
dequeues one it may not run: the limit holds across any number of workers of either kind, and the
dequeue scripts stay as they are.

Offload gives a job one of two limits (RQ allows one per job):

* ``concurrency_key`` + ``concurrency_limit`` from the request: the key is scoped to the API key
  that submitted the job, so one client cannot stall another's jobs by reusing its key name;
* otherwise, with ``FAIR_SHARE`` set, the client's share: at most that many of one API key's jobs
  are queued or running at once. The rest wait their turn and each ended job promotes the next
  one to the back of the queue, so another client's few jobs queue behind at most ``FAIR_SHARE``
  of the first client's, whatever its backlog: round-robin between clients in effect.

A share smaller than the number of worker processes keeps a lone client from using them all,
which is why it is off unless set (docs/guide.md has the trade-off). Public statuses show a
``rate_limited`` job as ``queued`` (:func:`app.jobs.reading.resource.public_status`).
"""

from __future__ import annotations

from collections import Counter

import redis
from rq.job import Job
from rq.queue import Queue
from rq.rate_limit import RateLimit, RateLimitRegistry, release_slot

from ...settings import Settings
from ..engine import private, storage
from ..engine.queue import wake
from ..errors import QueueFull
from ..keys import CONCURRENCY_LIMIT_PREFIX, FAIR_SHARE_LIMIT_PREFIX


def rate_limit_for(concurrency_key: str | None, limit: int | None, owner: str | None, settings: Settings) -> RateLimit | None:
    """The RQ rate limit a new job of ``owner`` gets, or None."""
    if concurrency_key is not None:
        return RateLimit(scoped_key(owner, concurrency_key), limit or 1)
    if settings.fair_share and owner is not None:
        return RateLimit(f"{FAIR_SHARE_LIMIT_PREFIX}{owner}", settings.fair_share)
    return None


def scoped_key(owner: str | None, concurrency_key: str) -> str:
    """A client's key, prefixed with its owner's name and that name's length (so no pair of owner
    and key can spell another's)."""
    owner = owner or ""
    return f"{CONCURRENCY_LIMIT_PREFIX}{len(owner)}:{owner}:{concurrency_key}"


def stage(queue: Queue, job: Job, pipe: redis.client.Pipeline) -> None:
    """Add a rate-limited job to a transaction already in MULTI: saved as ``rate_limited``, then
    promoted onto its queue in the same transaction if a slot is free (RQ's script)."""
    pipe.sadd(queue.redis_queues_keys, queue.key)
    private.enqueue_rate_limited(queue, job, pipe)
    wake(pipe)


def check_waiting(connection: redis.Redis, jobs: list[Job], max_depth: int) -> None:
    """Raise QueueFull when a limit would hold more than ``max_depth`` waiting jobs: they are on
    no queue, so MAX_QUEUE_DEPTH (a queue's length) would not bound them. One round trip, and
    only for jobs that have a limit."""
    per_key = Counter(job.rate_limit_key for job in jobs if job.has_rate_limit)
    if not per_key:
        return
    with connection.pipeline(transaction=False) as pipe:
        for key in per_key:
            pipe.zcard(waiting_key(connection, key))  # type: ignore[arg-type]
        replies = pipe.execute()
    for (key, count), waiting in zip(per_key.items(), replies, strict=True):
        if waiting + count > max_depth:
            described = describe_key(key)  # type: ignore[arg-type]
            what = f"concurrency key {described[2]}" if described and described[2] else "your fair share"
            raise QueueFull(f"({what}: jobs waiting for a slot)")


def requeue(connection: redis.Redis, jobs: list[Job], pipe: redis.client.Pipeline) -> None:
    """Put rate-limited jobs (being retried) back in their limiter's waiting set and promote as
    many as have slots, in a transaction already in MULTI, after their status was set: RQ's
    ``requeue`` for many jobs at once."""
    limits: dict[str, int] = {}
    for job in jobs:
        assert job.rate_limit_key
        storage.mark_rate_limited(job.id, pipe)
        RateLimitRegistry(job.rate_limit_key, connection).add_to_rate_limited(job.id, pipe)
        limits[job.rate_limit_key] = job.rate_limit_concurrency or 1
    for key, limit in limits.items():
        registry = RateLimitRegistry(key, connection)
        registry.register(limit, pipe)
        registry.acquire_and_enqueue(limit, pipeline=pipe)
    if limits:
        wake(pipe)


def waiting_key(connection: redis.Redis, rate_limit_key: str) -> str:
    """The sorted set of the jobs waiting for a slot of ``rate_limit_key``."""
    return storage.waiting_key(connection, rate_limit_key)


def release(job: Job) -> list[str]:
    """Release an ended job's slot and promote the next waiting job (RQ's ``release_slot``),
    waking a worker for it (it reaches its queue without OffloadQueue.push_job_id)."""
    promoted = release_slot(job)
    if promoted:
        wake(job.connection)
    return promoted


def cancel(job: Job) -> None:
    """Cancel a queued rate-limited job. RQ refuses to do it in a caller's transaction: the slot
    it frees promotes the next job in a script of its own."""
    job.cancel()
    wake(job.connection)


def describe_key(rate_limit_key: str) -> tuple[str, str | None, str | None] | None:
    """``(kind, owner, concurrency_key)`` of one of offload's rate-limit keys (None: not offload's):
    ``("key", owner, key)`` for a client's key, ``("fair_share", owner, None)`` for its share."""
    if rate_limit_key.startswith(FAIR_SHARE_LIMIT_PREFIX):
        return "fair_share", rate_limit_key.removeprefix(FAIR_SHARE_LIMIT_PREFIX), None
    if not rate_limit_key.startswith(CONCURRENCY_LIMIT_PREFIX):
        return None
    length, _, rest = rate_limit_key.removeprefix(CONCURRENCY_LIMIT_PREFIX).partition(":")
    if not length.isdigit() or len(rest) < int(length) + 1:
        return None
    owner = rest[: int(length)] or None
    return "key", owner, rest[int(length) + 1 :]


def overview(connection: redis.Redis, *, owner: str | None, everyone: bool) -> list[dict]:
    """Each concurrency key and fair share in use (``GET /concurrency``): its limit, how many of
    its jobs are queued or running (``active``) and how many wait for a slot. ``everyone``: all
    clients' (an admin key), else ``owner``'s only. Three round trips, whatever the number of keys."""
    registries = sorted(RateLimitRegistry.all(connection), key=lambda registry: registry.key)
    rows = []
    for registry in registries:
        described = describe_key(registry.key)
        if described is None or not (everyone or described[1] == owner):
            continue
        rows.append((registry, described))
    with connection.pipeline(transaction=False) as pipe:
        for registry, _ in rows:
            storage.ask_limit(pipe, registry)
            pipe.zcard(registry.allowed_key)
            pipe.zcard(registry.rate_limited_key)
        replies = pipe.execute()
    found = []
    for index, (_, (kind, key_owner, key)) in enumerate(rows):
        limit, active, waiting = replies[index * 3 : index * 3 + 3]
        if not active and not waiting:
            continue  # idle: maintenance forgets it (RQ's limiter cleanup)
        found.append(
            {"kind": kind, "key": key, "owner": key_owner, "limit": int(limit or 0), "active": active, "waiting": waiting}
        )
    return found
