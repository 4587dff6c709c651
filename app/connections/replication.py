"""Replication: no ``202`` before a replica holds the job (Sentinel).

With ``REDIS_WAIT_REPLICAS`` (1 by default under Sentinel), each submission is followed by
``WAIT``: a primary that dies right after answering cannot take an accepted job with it.
"""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from ..settings import Settings


class NotReplicated(redis.RedisError):
    """The write reached the primary, but not ``REDIS_WAIT_REPLICAS`` replicas in time.

    A :class:`redis.RedisError`, so the API answers it like any other Redis trouble: 503 with
    ``Retry-After``. The job may still exist (and run): a client that retries with the same
    ``Idempotency-Key`` gets that job back instead of a second one.
    """


def _marker_key() -> str:
    from rq.defaults import RQ_KEY_PREFIX

    return f"{RQ_KEY_PREFIX}:offload:replicated"


def wait_for_replicas(connection: redis.Redis, settings: Settings) -> None:
    """Block until ``REDIS_WAIT_REPLICAS`` replicas hold everything written so far, or raise
    :class:`NotReplicated` after ``REDIS_WAIT_TIMEOUT``. Does nothing when the setting is 0.

    ``WAIT`` counts the writes of the connection it is sent on, and a pooled client hands out
    any connection, so it is sent right after a small write of its own on one connection (a
    counter): the replication stream is ordered, so a replica that has that write has every
    write the caller finished before, the job's transaction included.
    """
    wanted = settings.redis_wait_replicas_effective
    if wanted <= 0:
        return
    node = connection
    if isinstance(connection, RedisCluster):  # WAIT has no key: send it to the node of offload's slot
        node = connection.get_node_from_key(_marker_key()).redis_connection
    timeout_ms = max(1, round(settings.redis_wait_timeout * 1000))
    with node.pipeline(transaction=False) as pipe:
        pipe.incr(_marker_key())
        pipe.execute_command("WAIT", wanted, timeout_ms)
        acknowledged = pipe.execute()[1]
    if acknowledged < wanted:
        raise NotReplicated(f"{acknowledged} of {wanted} replicas acknowledged the write within {timeout_ms} ms")
