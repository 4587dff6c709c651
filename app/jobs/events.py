"""Job-ended events: workers publish a job's id when it ends; ``?wait=`` requests wake on it.

Redis pub/sub, one channel (:data:`~app.jobs.keys.EVENTS_CHANNEL`). A lost message costs a
waiter at most one re-read interval, never a wrong answer: waiters re-read the job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import redis

from .keys import EVENTS_CHANNEL

log = logging.getLogger(__name__)


class JobEvents:
    """Wakes threads waiting on a job when a worker publishes that the job ended.

    One pub/sub connection and one daemon thread per process serve every waiter, so a
    waiting request costs a parked thread, not a Redis connection or a polling loop.
    """

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._waiters: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def publish(self, job_id: str) -> None:
        publish_job_ended(self.connection, job_id)

    class _Watch:
        def __init__(self, events: JobEvents, job_id: str) -> None:
            self.events, self.job_id, self.event = events, job_id, threading.Event()

        def __enter__(self) -> threading.Event:
            self.events._add(self.job_id, self.event)
            return self.event

        def __exit__(self, *exc: object) -> None:
            self.events._remove(self.job_id, self.event)

    def watch(self, job_id: str) -> JobEvents._Watch:
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
                    job_id = message["data"].decode() if isinstance(message["data"], bytes) else message["data"]
                    with self._lock:
                        for event in self._waiters.get(job_id, ()):
                            event.set()
            except (redis.RedisError, OSError):
                # Waiters fall back to re-reading the job until the listener is back.
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                pubsub.close()


def _messages(pubsub: redis.client.PubSub) -> Iterator[dict]:
    while True:
        message = pubsub.get_message(timeout=30.0)
        if message is not None and message.get("type") == "message":
            yield message


def publish_job_ended(connection: redis.Redis, job_id: str, pipeline: redis.client.Pipeline | None = None) -> None:
    """Called by workers when a job reaches an end state (or is about to be retried). With
    ``pipeline``, the PUBLISH joins it: inside the outcome transaction, a waiter woken by it
    never reads the job before its result."""
    if pipeline is not None:
        # execute_command: a Redis Cluster pipeline refuses .publish() (it is keyless), not the command.
        pipeline.execute_command("PUBLISH", EVENTS_CHANNEL, job_id)
        return
    try:
        connection.publish(EVENTS_CHANNEL, job_id)
    except redis.RedisError:
        log.warning("could not publish the end of job %s", job_id, extra={"job_id": job_id})
