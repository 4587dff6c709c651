"""The benchmark's Celery app: the same two jobs on the same Redis server (its own database).

Celery keeps its defaults (prefork pool, prefetch multiplier 4, early acknowledgement) with
JSON and a Redis result backend, so that a result is stored per job as offload does.
``BENCH_CELERY_URL`` names the Redis database; ``BENCH_CELERY_EVENTS=1`` turns task events on
(``-E``), as Flower does on the workers it watches (bench/flower.py).

``BENCH_CELERY_SAFE=1`` configures it not to lose a task whose worker dies (issue 26, item 5):
``task_acks_late`` (acknowledged after it ran, not on receipt), ``task_reject_on_worker_lost``
(a task whose pool process died is put back, not failed) and ``worker_prefetch_multiplier=1``
(a worker holds one task a process beyond the ones it runs): the "celery-safe" contender.
``BENCH_CELERY_VISIBILITY`` (seconds) shortens the Redis transport's visibility timeout (an hour
by default), after which an unacknowledged task of a dead worker is delivered again: the
SIGKILL experiment (``--phases sigkill``) sets it, so that it sees the redelivery."""

import os
import time

from celery import Celery

from app import tasks

url = os.environ.get("BENCH_CELERY_URL", "redis://127.0.0.1:6379/2")
app = Celery("bench", broker=url, backend=url)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=7 * 24 * 3600,
    worker_send_task_events=os.environ.get("BENCH_CELERY_EVENTS") == "1",
)
if os.environ.get("BENCH_CELERY_SAFE") == "1":
    app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1)
if os.environ.get("BENCH_CELERY_VISIBILITY"):
    visibility = int(os.environ["BENCH_CELERY_VISIBILITY"])
    app.conf.broker_transport_options = {"visibility_timeout": visibility, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}


@app.task(name="bench.noop")
def noop() -> dict:
    return tasks.noop()


@app.task(name="bench.count_words")
def count_words(text: str) -> dict:
    return tasks.count_words(text)


@app.task(name="bench.marked_sleep")
def marked_sleep(seconds: float, token: str) -> dict:
    """The SIGKILL experiment's job: counts its runs and its ends in Redis (bench/sigkill.py)."""
    from bench import sigkill

    return sigkill.marked_sleep(url, seconds, token)
