"""Redis Cluster: redis-py's ``RedisCluster`` made fit for RQ (see the package docstring)."""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import ClusterPipeline, RedisCluster
from redis.commands.core import Script


class _PoolView:
    """What RQ reads off ``connection.connection_pool``: the socket options, and (under a key
    of offload's own) everything needed to build the same client again in another process."""

    connection_class = redis.Connection

    def __init__(self, cluster: OffloadRedisCluster) -> None:
        self._cluster = cluster

    @property
    def connection_kwargs(self) -> dict[str, Any]:
        # A fresh dict: RQ's worker raises socket_timeout on it, which needs no effect here
        # (the worker's client has no read timeout, and keepalive on).
        options = self._cluster.offload_options
        return {"socket_timeout": options.get("socket_timeout"), _REBUILD: options}


_REBUILD = "offload_cluster_options"


class OffloadRedisCluster(RedisCluster):
    """``RedisCluster`` with what RQ 3 expects of a client (see the module docstring)."""

    def __init__(self, *args: Any, connection_pool: Any = None, **kwargs: Any) -> None:
        if connection_pool is not None:  # RQ rebuilding the client, from what _PoolView gave it
            kwargs = {**connection_pool.connection_kwargs[_REBUILD], **kwargs}
        self.offload_options = dict(kwargs)
        super().__init__(*args, **kwargs)

    @property
    def connection_pool(self) -> _PoolView:  # type: ignore[override]
        return _PoolView(self)

    def pipeline(self, transaction: bool | None = True, shard_hint: Any = None) -> _OffloadClusterPipeline:
        """Transactional by default, as ``Redis.pipeline()`` is. All keys share one slot."""
        if shard_hint:
            raise redis.RedisError("shard_hint is not supported in cluster mode")
        return _OffloadClusterPipeline(
            nodes_manager=self.nodes_manager,
            commands_parser=self.commands_parser,
            startup_nodes=self.nodes_manager.startup_nodes,
            result_callbacks=self.result_callbacks,
            cluster_response_callbacks=self.cluster_response_callbacks,
            read_from_replicas=self.read_from_replicas,
            load_balancing_strategy=self.load_balancing_strategy,
            reinitialize_steps=self.reinitialize_steps,
            retry=self.retry,
            lock=self._lock,
            transaction=bool(transaction),
            event_dispatcher=self._event_dispatcher,
        )

    def register_script(self, script: str) -> Script:
        return _ClusterScript(self, script)


class _OffloadClusterPipeline(ClusterPipeline):
    @property
    def watching(self) -> bool:
        return bool(getattr(self._execution_strategy, "_watching", False))

    @property
    def explicit_transaction(self) -> bool:
        return bool(getattr(self._execution_strategy, "_explicit_transaction", False))


class _ClusterScript(Script):
    """In a cluster pipeline, run the script with EVAL (ClusterPipeline refuses EVALSHA, and a
    pipeline could not load a missing script anyway); elsewhere, as usual."""

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        if isinstance(client, ClusterPipeline):
            keys, args = list(keys or []), list(args or [])
            return client.execute_command("EVAL", self.script, len(keys), *keys, *args)
        return super().__call__(keys=keys, args=args, client=client)
