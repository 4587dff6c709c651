"""How every offload process reaches Redis: one server, Sentinel, or Cluster.

Web, workers, RQ's scheduler, the rate limiter and the dashboard all get their client here,
so the three topologies behave alike everywhere (docs/ha.md has the operator's view):

* **One server** (``REDIS_URL``): as before.
* **Sentinel** (``REDIS_SENTINELS=host:port,...``, ``REDIS_SENTINEL_MASTER``): the client asks
  the sentinels where the primary is on every new connection, and drops its connections when
  the primary changes, so a failover is followed without a restart. ``REDIS_URL`` then only
  gives the primary's credentials and database number (``REDIS_PASSWORD`` wins over it).
* **Cluster** (``REDIS_CLUSTER=1``, ``REDIS_URL`` naming any node): every key offload and RQ
  write carries the hash tag of ``RQ_KEY_PREFIX`` (e.g. ``{offload}``), so they all live in one
  slot and RQ's transactions, Lua scripts and BLMOVE stay single-node operations.

RQ 3 does not run on redis-py's ``RedisCluster`` as it is; :class:`OffloadRedisCluster` fills
the four gaps, each checked against a real cluster by ``tests/test_ha.py``:

1. RQ reads ``connection.connection_pool.connection_kwargs`` (worker start-up) and rebuilds
   ``type(connection)(connection_pool=ConnectionPool(...))`` (the scheduler process);
   ``RedisCluster`` has no pool and takes no ``connection_pool``.
2. ``RedisCluster.pipeline()`` defaults to ``transaction=False``, where ``Redis.pipeline()``
   defaults to ``True``: RQ's (and offload's) ``MULTI``/``EXEC`` blocks would silently lose
   their atomicity.
3. RQ reads ``pipeline.watching`` and ``pipeline.explicit_transaction``, which
   ``ClusterPipeline`` keeps under other (private) names.
4. ``ClusterPipeline`` refuses ``EVALSHA``, which RQ's scheduler heartbeat queues in a
   pipeline; ``EVAL`` of the same script is allowed and is what the adapter sends.
"""

from .client import connect, describe, redis_client
from .durability import DURABLE_SETTINGS, check_server_settings
from .integrations import dashboard_connection, limiter_storage_options, limiter_storage_uri
from .replication import NotReplicated, wait_for_replicas

__all__ = [
    "DURABLE_SETTINGS",
    "NotReplicated",
    "check_server_settings",
    "connect",
    "dashboard_connection",
    "describe",
    "limiter_storage_options",
    "limiter_storage_uri",
    "redis_client",
    "wait_for_replicas",
]
