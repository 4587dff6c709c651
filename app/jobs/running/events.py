"""Job events: workers publish a job's id when the job starts, reports progress and ends;
``?wait=`` requests and ``GET /jobs/{id}/events`` streams wake on it.

Redis pub/sub, one channel (:data:`~app.jobs.keys.EVENTS_CHANNEL`). The message is the id: it
says "look again", never the new state, so a waiter re-reads the job, and a lost message costs
at most one re-read interval (:data:`REREAD_SECONDS`), never a wrong answer. A change that cannot
end the job (a start, a progress report) adds its kind after a space (``<id> started``): a
``?wait=``, which answers only an ended job, does not read the job again for it (it did, once a
job, while the worker was running it); a stream reads it for every message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import redis

from ..keys import EVENTS_CHANNEL

log = logging.getLogger(__name__)

#: Seconds a waiter sleeps at most before it reads the job again without being woken: what
#: a message lost to a reconnect of the listener can cost.
REREAD_SECONDS = 2.0

#: The kinds of change a message may name that never end a job.
NOT_ENDING = ("started", "progress")


class JobEvents:
    """Wakes threads waiting on a job when a worker publishes something about it.

    One pub/sub connection and one daemon thread per process serve every waiter, so a
    waiting request costs a parked thread, not a Redis connection or a polling loop.
    """

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._waiters: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def publish(self, job_id: str) -> None:
        publish_job_event(self.connection, job_id)

    class _Watch:
        def __init__(self, events: JobEvents, job_id: str) -> None:
            self.events, self.job_id, self.event = events, job_id, _JobEvent()

        def __enter__(self) -> _JobEvent:
            self.events._add(self.job_id, self.event)
            return self.event

        def __exit__(self, *exc: object) -> None:
            self.events._remove(self.job_id, self.event)

    def watch(self, job_id: str) -> JobEvents._Watch:
        """A :class:`_JobEvent` set by every message about ``job_id`` while the watch lasts."""
        return JobEvents._Watch(self, job_id)

    def _add(self, job_id: str, event: threading.Event) -> None:
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(event)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, name="offload-job-events", daemon=True)
                self._thread.start()

    def _remove(self, job_id: str, event: threading.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(EVENTS_CHANNEL)
                backoff = 0.1
                for message in _messages(pubsub):
                    data = message["data"].decode() if isinstance(message["data"], bytes) else message["data"]
                    job_id, _, kind = data.partition(" ")
                    with self._lock:
                        for event in self._waiters.get(job_id, ()):
                            event.announce(kind)
            except (redis.RedisError, OSError):
                # Waiters fall back to re-reading the job until the listener is back.
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                pubsub.close()


class _JobEvent(threading.Event):
    """Set by each message about the job; :attr:`may_have_ended` says whether one of the messages
    since the last ``clear()`` was of a change that may end it (not a start or a progress report)."""

    def __init__(self) -> None:
        super().__init__()
        self.may_have_ended = False

    def announce(self, kind: str) -> None:
        if kind not in NOT_ENDING:
            self.may_have_ended = True
        self.set()

    def clear(self) -> None:
        self.may_have_ended = False
        super().clear()


def _messages(pubsub: redis.client.PubSub) -> Iterator[dict]:
    while True:
        message = pubsub.get_message(timeout=30.0)
        if message is not None and message.get("type") == "message":
            yield message


def follow(events: JobEvents, job_id: str, read: Callable[[], dict], seconds: float) -> Iterator[dict]:
    """The job as ``read`` returns it, now and again each time something is published about
    it (and at least every :data:`REREAD_SECONDS`), for ``seconds``; the caller stops early
    by closing the iterator (e.g. once the job is terminal).

    The watch is set before the first read, so nothing published after a read is missed;
    announcements that arrive while the caller handles a read are coalesced into one re-read.
    """
    deadline = time.monotonic() + seconds
    with events.watch(job_id) as event:
        while True:
            yield read()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            event.wait(min(remaining, REREAD_SECONDS))
            event.clear()


def publish_job_event(
    connection: redis.Redis, job_id: str, pipeline: redis.client.Pipeline | None = None, kind: str | None = None
) -> None:
    """Announce that job ``job_id`` changed: it started, saved its progress, ended, or is about
    to be retried; ``kind`` names a change of :data:`NOT_ENDING` (None: any other). With
    ``pipeline``, the PUBLISH joins it (RQ's convention): inside the transaction that writes the
    change, a waiter woken by it never reads the job before it."""
    if kind is not None:
        if kind not in NOT_ENDING:
            raise ValueError(f"an event's kind is one of {NOT_ENDING}, or None")
        job_id = f"{job_id} {kind}"
    if pipeline is not None:
        # Not pipeline.publish(): redis-py refuses it in a Redis Cluster pipeline. Sent as a plain
        # command, it is routed by the channel's name, which carries offload's hash tag: the
        # node that holds the job, inside its transaction; the cluster passes it to every node.
        pipeline.execute_command("PUBLISH", EVENTS_CHANNEL, job_id)
        return
    try:
        connection.publish(EVENTS_CHANNEL, job_id)
    except redis.RedisError:
        log.warning("could not publish an event of job %s", job_id, extra={"job_id": job_id})
