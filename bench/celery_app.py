"""The benchmark's Celery app: the same two jobs on the same Redis server (its own database).

Celery keeps its defaults (prefork pool, prefetch multiplier 4, early acknowledgement) with
JSON and a Redis result backend, so that a result is stored per job as offload does.
``BENCH_CELERY_URL`` names the Redis database; ``BENCH_CELERY_EVENTS=1`` turns task events on
(``-E``), as Flower does on the workers it watches (bench/flower.py)."""

import os

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


@app.task(name="bench.noop")
def noop() -> dict:
    return tasks.noop()


@app.task(name="bench.count_words")
def count_words(text: str) -> dict:
    return tasks.count_words(text)
