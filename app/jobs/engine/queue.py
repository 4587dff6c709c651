"""The queue class: RQ's queue, dequeued without ever losing a job, by one script both workers use.

Jobs are stored
with RQ's :class:`~rq.serializers.JSONSerializer`, never pickle: data in Redis is plain JSON
that any process can read and none can use to run code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.job import Job
from rq.suspension import WORKERS_SUSPENDED

from ...settings import QUEUE_NAMES
from ..keys import PAUSED_QUEUES_KEY, WAKE_KEY, stranded_key
from . import scripts

log = logging.getLogger(__name__)


def register_queues(connection: redis.Redis) -> None:
    """Make all of offload's queues known to RQ (and so to the dashboard) before any job exists."""
    keys = [Queue(name, connection=connection).key for name in QUEUE_NAMES]
    connection.sadd(Queue.redis_queues_keys, *keys)


_WAKE_TOKENS = 64
#: Seconds an idle worker waits for a wake-up token at most before it looks at the queues again.
IDLE_POLL_SECONDS = 1


class OffloadQueue(Queue):
    """An RQ queue whose dequeue never loses a job.

    RQ pops from several queues with BLPOP: a worker killed between the pop and the moment
    the job is registered as started loses the job for good (it stays ``queued`` and is in
    no list). Offload's workers instead LMOVE the job onto the queue's intermediate list in
    a script that serves the queues in priority order (:class:`Dequeue`), and maintenance puts
    back any job stranded there (:func:`requeue_stranded`).

    Both workers take jobs with one script (:class:`Dequeue`). Having no BLMOVE over several
    lists, an idle worker blocks on a wake-up list that every
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
        """RQ's ``dequeue_any`` through ``dequeue.lua``, the script the fast worker takes its jobs
        with too: it skips paused queues, takes nothing while workers are suspended (``rq
        suspend``), and answers the job's hash with its id, so the job needs no read of its own."""
        job_class = job_class or cls.job_class
        taker = Dequeue(connection, job_class=job_class, serializer=serializer)
        found = take_or_wait(lambda: taker.take(queues), connection, timeout)
        if found is None:
            if timeout is None:
                return None
            raise DequeueTimeout(timeout, [queue.key for queue in queues])
        job, queue_key = found
        queue = {queue.key: queue for queue in queues}.get(queue_key) or cls.from_queue_key(
            queue_key, connection=connection, job_class=job_class, serializer=serializer,
            death_penalty_class=death_penalty_class,
        )  # fmt: skip
        return job, queue


def take_or_wait(take: Callable[[], Any], connection: redis.Redis, seconds: float | None) -> tuple | None:
    """What ``take()`` (a call of the dequeue script) takes, a tuple; between empty takes (empty,
    or workers suspended) a wait for a wake-up token a submission pushes, or a second, for up to
    ``seconds`` (None: no wait). None when nothing came. Both workers wait so."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while True:
        found = take()
        if isinstance(found, tuple):
            return found
        if found == AGAIN:
            continue
        if deadline is None:
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        connection.blpop([WAKE_KEY], timeout=max(1, min(IDLE_POLL_SECONDS, int(remaining))))


#: What :meth:`Dequeue.take` answers when workers are suspended, and when too many vanished jobs
#: were skipped in one call (take again).
SUSPENDED = "suspended"
AGAIN = "again"


class Dequeue:
    """One round trip that takes a job: ``lua/dequeue.lua``, shared by both workers.

    It takes the first job of the first queue (in the order given) that is not paused, moving it
    (LMOVE) onto the queue's intermediate list, where it stays until the transaction that records
    its start takes it off; a worker killed in between strands it there and maintenance puts it
    back (:func:`requeue_stranded`), where RQ's BLPOP would lose it. It answers the job's hash
    too, so the job is restored without a read of its own, and skips (and takes off the
    intermediate list) a job whose hash expired while it was queued, as RQ does.
    """

    def __init__(self, connection: redis.Redis, *, job_class, serializer=None) -> None:  # noqa: ANN001
        self.connection = connection
        self.job_class = job_class
        self.serializer = serializer
        self._script = scripts.register(connection, "dequeue")

    @staticmethod
    def keys_and_args(queues: list[Queue], job_class) -> tuple[list[str], list[str]]:  # noqa: ANN001
        """The script's KEYS and ARGV for ``queues``, in the order they are served."""
        keys = [WORKERS_SUSPENDED, PAUSED_QUEUES_KEY]
        args = [job_class.redis_job_namespace_prefix]
        for queue in queues:
            keys += [queue.key, queue.intermediate_queue_key]
            args.append(queue.name)
        return keys, args

    def take(self, queues: list[Queue]) -> tuple[Job, str] | str | None:
        """The next job and the key of the queue it came from; None when every queue is empty or
        paused; :data:`SUSPENDED` or :data:`AGAIN`."""
        keys, args = self.keys_and_args(queues, self.job_class)
        return self.restore(self._script(keys=keys, args=args))

    def restore(self, reply: list | None) -> tuple[Job, str] | str | None:
        """The script's ``reply`` as :meth:`take` answers it."""
        if not reply:
            return None
        if len(reply) == 1:
            return reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        queue_key, job_id, flat = (reply[0].decode(), reply[1].decode(), reply[2])
        job = self.job_class(job_id, connection=self.connection, serializer=self.serializer)
        job.restore(dict(zip(flat[::2], flat[1::2], strict=True)))
        return job, queue_key


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
