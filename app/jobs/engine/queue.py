"""The queue class: RQ's queue, dequeued without ever losing a job.

Only this module and :mod:`app.jobs.store` know RQ's queues and registries. Jobs are stored
with RQ's :class:`~rq.serializers.JSONSerializer`, never pickle: data in Redis is plain JSON
that any process can read and none can use to run code.
"""

from __future__ import annotations

import logging
import time

import redis
from rq import Queue
from rq.exceptions import DequeueTimeout

from ...settings import QUEUE_NAMES
from ..keys import PAUSED_QUEUES_KEY, WAKE_KEY, stranded_key

log = logging.getLogger(__name__)


def register_queues(connection: redis.Redis) -> None:
    """Make all of offload's queues known to RQ (and so to the dashboard) before any job exists."""
    keys = [Queue(name, connection=connection).key for name in QUEUE_NAMES]
    connection.sadd(Queue.redis_queues_keys, *keys)


#: Take the first job of the first non-empty queue that is not paused, moving it (atomically)
#: onto that queue's intermediate list, where it stays until the worker has registered it as
#: started. KEYS: the paused set, then each queue and its intermediate list; ARGV: the names.
_DEQUEUE_SCRIPT = """
for i = 2, #KEYS, 2 do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i / 2]) == 0 then
    local job_id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
    if job_id then return {KEYS[i], job_id} end
  end
end
return false
"""
_WAKE_TOKENS = 64
_IDLE_POLL = 1


class OffloadQueue(Queue):
    """An RQ queue whose dequeue never loses a job.

    RQ pops from several queues with BLPOP: a worker killed between the pop and the moment
    the job is registered as started loses the job for good (it stays ``queued`` and is in
    no list). Offload's workers instead LMOVE the job onto the queue's intermediate list in
    a script that serves the queues in priority order, and maintenance puts back any job
    stranded there (:func:`requeue_stranded`).

    Having no BLMOVE over several lists, an idle worker blocks on a wake-up list that every
    enqueue through this class pushes a token onto, and looks again at least once a second
    for jobs that arrive another way (RQ's scheduler, the dashboard).
    """

    def push_job_id(self, job_id: str, pipeline: redis.client.Pipeline | None = None, at_front: bool = False) -> None:
        super().push_job_id(job_id, pipeline=pipeline, at_front=at_front)
        wake(pipeline if pipeline is not None else self.connection)

    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls,
        queues,
        timeout: int | None,
        connection: redis.Redis,
        job_class=None,
        serializer=None,
        death_penalty_class=None,
    ):
        keys: list[str] = [PAUSED_QUEUES_KEY]
        names: list[str] = []
        for queue in queues:
            keys += [queue.key, queue.intermediate_queue_key]
            names.append(queue.name)
        script = connection.register_script(_DEQUEUE_SCRIPT)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = script(keys=keys, args=names)
            if found:
                queue_key, job_id = (part.decode() if isinstance(part, bytes) else part for part in found)
                fetched = cls._fetch_dequeued_job(
                    connection, queue_key, job_id, job_class=job_class, serializer=serializer,
                    death_penalty_class=death_penalty_class,
                )  # fmt: skip
                if fetched is None:  # the job expired while queued
                    connection.lrem(f"{queue_key}:intermediate", 1, job_id)
                    continue
                return fetched
            if deadline is None:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DequeueTimeout(timeout, keys[1::2])
            connection.blpop([WAKE_KEY], timeout=max(1, min(_IDLE_POLL, int(remaining))))


def wake(connection: redis.Redis | redis.client.Pipeline, jobs: int = 1) -> None:
    """Wake up to ``jobs`` idle workers for jobs that have just reached a queue: a token each on
    the list they block on (see :class:`OffloadQueue`), which is kept to ``_WAKE_TOKENS``."""
    connection.lpush(WAKE_KEY, *([1] * max(1, min(jobs, _WAKE_TOKENS))))
    connection.ltrim(WAKE_KEY, 0, _WAKE_TOKENS - 1)


def requeue_stranded(queue: Queue, connection: redis.Redis, grace_seconds: int) -> list[str]:
    """Put back jobs left on a queue's intermediate list by a worker that died before it
    registered them as started. A job is put back at the front of its queue once it has been
    seen stranded for ``grace_seconds``; it never ran, so it keeps its attempts."""
    started = {job_id for job_id in queue.started_job_registry.get_job_ids(cleanup=False)}
    requeued = []
    for raw in connection.lrange(queue.intermediate_queue_key, 0, -1):
        job_id = raw.decode()
        if job_id in started:
            continue
        seen_key = stranded_key(job_id)
        moment = time.time()
        first_seen, last_seen = _sightings(connection.get(seen_key))
        if last_seen is None or moment - last_seen > 2 * grace_seconds:
            # A first sighting, or the first after a gap: a sighting from an earlier stay on the
            # list (the job was caught between a live worker's dequeue and start, then started)
            # must not count, or this stay would be cut short while its worker starts the job.
            connection.set(seen_key, f"{moment}:{moment}", ex=24 * 3600)
            continue  # give a live worker time to register it
        connection.set(seen_key, f"{first_seen}:{moment}", ex=24 * 3600)
        if moment - first_seen < grace_seconds:
            continue
        with connection.pipeline() as pipe:
            pipe.lrem(queue.intermediate_queue_key, 1, job_id)
            pipe.lpush(queue.key, job_id)
            wake(pipe)
            pipe.delete(seen_key)
            removed = pipe.execute()[0]
        if removed:
            requeued.append(job_id)
            log.warning("job %s was stranded by a dead worker; requeued", job_id, extra={"job_id": job_id})
    return requeued


def _sightings(raw: bytes | None) -> tuple[float, float | None]:
    """When maintenance first and last saw a job stranded (``first:last``; an older marker
    holds one time)."""
    if raw is None:
        return 0.0, None
    first, _, last = raw.decode().partition(":")
    return float(first), float(last or first)
