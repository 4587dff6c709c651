"""The benchmark's Dramatiq app: the same jobs on the same Redis server (its own database).

Dramatiq's Redis broker at its defaults: at-least-once (a message is acknowledged after its
actor ran; the messages a worker fetched stay in that worker's ack set until then, and a dead
worker's are put back by another's maintenance once its heartbeat is older than
``heartbeat_timeout``, 60 s by default) and prefetching (``--threads`` x 2 messages a process).
Results go to a Redis result backend, so that a result is stored per job as offload and Celery
store one. ``BENCH_DRAMATIQ_URL`` names the Redis database; ``BENCH_DRAMATIQ_HEARTBEAT_MS``
shortens the heartbeat timeout and makes every broker command run maintenance, for the SIGKILL
experiment (``--phases sigkill``) to see the redelivery within its wait."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from app import tasks

url = os.environ.get("BENCH_DRAMATIQ_URL", "redis://127.0.0.1:6379/3")
_options = {}
if os.environ.get("BENCH_DRAMATIQ_HEARTBEAT_MS"):
    _options = {"heartbeat_timeout": int(os.environ["BENCH_DRAMATIQ_HEARTBEAT_MS"]), "maintenance_chance": 1_000_000}
broker = RedisBroker(url=url, **_options)
broker.add_middleware(Results(backend=RedisBackend(url=url), store_results=True))
dramatiq.set_broker(broker)
QUEUE = "default"


@dramatiq.actor(actor_name="noop", queue_name=QUEUE, max_retries=0)
def noop() -> dict:
    return tasks.noop()


@dramatiq.actor(actor_name="count_words", queue_name=QUEUE, max_retries=0)
def count_words(text: str) -> dict:
    return tasks.count_words(text)


@dramatiq.actor(actor_name="marked_sleep", queue_name=QUEUE, max_retries=0)
def marked_sleep(seconds: float, token: str) -> dict:
    """The SIGKILL experiment's job: counts its runs and its ends in Redis (bench/sigkill.py)."""
    from bench import sigkill

    return sigkill.marked_sleep(url, seconds, token)


def fill(actor_name: str, kwargs: dict, n: int) -> None:
    """``n`` messages for ``actor_name`` on the queue, written in pipelines as the broker's own
    ``enqueue`` writes each (HSET of the message, RPUSH of its id): enqueueing one at a time takes
    longer than the workers take to drain them."""
    from uuid import uuid4

    client = broker.client
    key = f"{broker.namespace}:{QUEUE}"
    template = dramatiq.Message(queue_name=QUEUE, actor_name=actor_name, args=(), kwargs=kwargs, options={})
    for start in range(0, n, 1000):
        with client.pipeline(transaction=False) as pipe:
            for _ in range(min(1000, n - start)):
                redis_id = str(uuid4())
                message = template.copy(message_id=str(uuid4()), options={"redis_message_id": redis_id})
                pipe.hset(f"{key}.msgs", redis_id, message.encode())
                pipe.rpush(key, redis_id)
            pipe.execute()


def pending() -> int:
    """Messages not acknowledged yet (queued, prefetched or running): the broker deletes a
    message's data when its actor has run."""
    return int(broker.client.hlen(f"{broker.namespace}:{QUEUE}.msgs"))
