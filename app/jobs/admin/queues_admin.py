"""Pausing and resuming a queue, and the per-queue overview ``GET /queues`` shows.

A paused queue still takes jobs (``POST /jobs``, schedules and RQ's scheduler put them on it as
before) but no worker takes one off it: both dequeue scripts (``app/jobs/engine/lua/dequeue.lua`` and
:data:`app.jobs.engine.queue._DEQUEUE_SCRIPT`) skip a queue whose name is in
:data:`~app.jobs.keys.PAUSED_QUEUES_KEY`. The state is that one Redis set, so it outlives every
worker and web process, and (written like a job: replicated before the answer) a failover.
Jobs already running when the queue is paused finish as usual.
"""

from __future__ import annotations

import logging

import redis

from ... import connections
from ...settings import QUEUE_NAMES, Settings
from ..access import Principal
from ..engine import storage
from ..engine.queue import OffloadQueue, wake
from ..errors import UnknownQueue
from ..keys import PAUSED_QUEUES_KEY
from ..running import concurrency

log = logging.getLogger(__name__)

#: What each queue reports beside its list's length: RQ's registries of that name (a ZCARD each).
_REGISTRIES = ("scheduled", "started", "deferred", "failed")


def queue_links(name: str) -> dict[str, str]:
    return {"self": f"/queues/{name}", "pause": f"/queues/{name}/pause", "resume": f"/queues/{name}/resume"}


class QueueAdmin:
    """Pause, resume and describe offload's queues (those of :class:`~app.jobs.store.JobQueue`)."""

    def __init__(self, connection: redis.Redis, settings: Settings, queues: dict[str, OffloadQueue]) -> None:
        self.connection = connection
        self.settings = settings
        self.queues = queues

    def _check(self, name: str) -> None:
        if name not in self.queues:
            raise UnknownQueue(name)

    def pause(self, name: str) -> dict:
        """Stop workers taking jobs from ``name`` (idempotent); answers the queue as it now is."""
        self._check(name)
        added = self.connection.sadd(PAUSED_QUEUES_KEY, name)
        connections.wait_for_replicas(self.connection, self.settings)
        if added:
            log.warning("queue %s paused: its jobs wait until it is resumed", name, extra={"queue": name})
        return self.describe(name)

    def resume(self, name: str) -> dict:
        """Let workers take jobs from ``name`` again, and wake the idle ones (idempotent)."""
        self._check(name)
        with self.connection.pipeline() as pipe:
            pipe.srem(PAUSED_QUEUES_KEY, name)
            wake(pipe)  # idle workers look again now, not in a second
            removed = pipe.execute()[0]
        connections.wait_for_replicas(self.connection, self.settings)
        if removed:
            log.warning("queue %s resumed", name, extra={"queue": name})
        return self.describe(name)

    def concurrency(self, principal: Principal) -> list[dict]:
        """The concurrency keys and fair shares in use (:func:`app.jobs.running.concurrency.overview`):
        every client's for an admin key, the caller's own for a client key."""
        return concurrency.overview(self.connection, owner=principal.name, everyone=principal.is_admin)

    def held_back(self) -> dict:
        """What offload holds back that RQ's own tools (``rq info``, rq-dashboard) cannot see:
        the paused queues, and the jobs waiting for a concurrency slot (every client's), which
        sit on no queue. ``waiting`` lists the keys with waiting jobs, most waiting first."""
        waiting = [row for row in concurrency.overview(self.connection, owner=None, everyone=True) if row["waiting"]]
        waiting.sort(key=lambda row: (-row["waiting"], row["kind"], row["owner"] or "", row["key"] or ""))
        paused = self.paused()
        return {
            "paused": [name for name in self.queues if name in paused],
            "waiting": waiting,
            "waiting_total": sum(row["waiting"] for row in waiting),
        }

    def paused(self) -> set[str]:
        return {member.decode() if isinstance(member, bytes) else member for member in self.connection.smembers(PAUSED_QUEUES_KEY)}

    def describe(self, name: str) -> dict:
        self._check(name)
        return self.overview([name])[0]

    def overview(self, names: list[str] | None = None) -> list[dict]:
        """Each queue's counts, paused state and live workers, in two round trips."""
        names = list(QUEUE_NAMES) if names is None else names
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.smembers(PAUSED_QUEUES_KEY)
            for name in names:
                queue = self.queues[name]
                pipe.llen(queue.key)
                for label in _REGISTRIES:
                    pipe.zcard(getattr(queue, f"{label}_job_registry").key)
                pipe.smembers(storage.workers_key(name))
            replies = pipe.execute()
        paused = {_text(member) for member in replies[0]}
        width = 2 + len(_REGISTRIES)
        rows, worker_keys = [], []
        for index, name in enumerate(names):
            reply = replies[1 + index * width : 1 + (index + 1) * width]
            counts = {"queued": reply[0], **dict(zip(_REGISTRIES, reply[1:-1], strict=True))}
            keys = sorted(_text(key) for key in reply[-1])
            worker_keys.append(keys)
            rows.append({"name": name, "paused": name in paused, **counts, "workers": 0, "links": queue_links(name)})
        # A worker's key expires with its heartbeat; the per-queue sets keep a killed worker until
        # RQ's maintenance cleans them, so only workers whose key still exists are counted.
        everyone = sorted({key for keys in worker_keys for key in keys})
        if everyone:
            with self.connection.pipeline(transaction=False) as pipe:
                for key in everyone:
                    pipe.exists(key)
                alive = {key for key, exists in zip(everyone, pipe.execute(), strict=True) if exists}
            for row, keys in zip(rows, worker_keys, strict=True):
                row["workers"] = sum(1 for key in keys if key in alive)
        return rows


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
