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

from __future__ import annotations

import logging
import re
import socket
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterPipeline, RedisCluster
from redis.commands.core import Script
from redis.retry import Retry as RedisRetry

from .settings import Settings

log = logging.getLogger(__name__)


# --- the client ----------------------------------------------------------------------------


def redis_client(settings: Settings, *, for_worker: bool = False) -> redis.Redis:
    """A Redis client that fails fast when the server is away.

    The web side must answer 503 within a couple of seconds, so it gets short timeouts and
    one quick retry. Workers block on BLMOVE for longer than any socket timeout, so they get
    no socket read timeout and rely on RQ's own reconnect loop. Sentinels are always asked
    with the short timeouts: a sentinel that does not answer is skipped for the next one.
    """
    options = _client_options(settings, for_worker=for_worker)
    if settings.redis_sentinels:
        return _sentinel_client(settings, options)
    if settings.redis_cluster:
        url, auth = _split_auth(settings)
        return OffloadRedisCluster.from_url(url, **auth, **options)
    url, auth = _split_auth(settings)
    return redis.Redis.from_url(url, **auth, **options)


def _keepalive_options() -> dict[int, int]:
    """TCP keepalive probes after 5 s of silence, every 2 s, 3 of them: a connection to a
    server that vanished without closing it (a container or host gone, a failover behind a
    VIP) is given up in ~11 s instead of the kernel's default two hours. This bounds a
    worker's blocking read, which has no socket timeout."""
    names = {"TCP_KEEPIDLE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 3}
    return {getattr(socket, name): value for name, value in names.items() if hasattr(socket, name)}


def _client_options(settings: Settings, *, for_worker: bool) -> dict[str, Any]:
    return {
        "socket_connect_timeout": settings.redis_socket_timeout,
        "socket_timeout": None if for_worker else settings.redis_socket_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": _keepalive_options(),
        "health_check_interval": 15,
        "retry": RedisRetry(ExponentialBackoff(cap=0.2, base=0.05), 1),
    }


def _split_auth(settings: Settings) -> tuple[str, dict[str, Any]]:
    """REDIS_URL, and REDIS_PASSWORD as a keyword when set (redis-py lets the URL's own
    password win over keywords, so the URL loses its password in that case)."""
    if settings.redis_password is None:
        return settings.redis_url, {}
    parts = urlsplit(settings.redis_url)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return parts._replace(netloc=netloc).geturl(), {"password": settings.redis_password.get_secret_value()}


def _primary_auth(settings: Settings) -> dict[str, Any]:
    """Credentials, database and TLS of the primary behind Sentinel, from REDIS_URL/REDIS_PASSWORD."""
    parts = urlsplit(settings.redis_url)
    options: dict[str, Any] = {"db": _db_number(settings.redis_url)}
    if parts.username:
        options["username"] = unquote(parts.username)
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    elif parts.password:
        options["password"] = unquote(parts.password)
    if parts.scheme == "rediss":
        options["ssl"] = True
    return options


def _db_number(url: str) -> int:
    parts = urlsplit(url)
    path = parts.path.strip("/")
    if path.isdigit():
        return int(path)
    match = re.search(r"(?:^|&)db=(\d+)", parts.query)
    return int(match.group(1)) if match else 0


def _sentinel_kwargs(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_socket_timeout,
        "socket_timeout": settings.redis_socket_timeout,
        "socket_keepalive": True,
    }
    if settings.redis_sentinel_password is not None:
        options["password"] = settings.redis_sentinel_password.get_secret_value()
    return options


def _sentinel_client(settings: Settings, options: dict[str, Any]) -> redis.Redis:
    from redis.sentinel import Sentinel

    sentinel = Sentinel(list(settings.redis_sentinels), sentinel_kwargs=_sentinel_kwargs(settings))
    return sentinel.master_for(settings.redis_sentinel_master, redis_class=redis.Redis, **_primary_auth(settings), **options)


def describe(settings: Settings) -> str:
    """Where offload's Redis is, without secrets (for logs, banners and the dashboard)."""
    if settings.redis_sentinels:
        hosts = ",".join(f"{_host(host)}:{port}" for host, port in settings.redis_sentinels)
        return f"redis+sentinel://{hosts}/{settings.redis_sentinel_master}/{_db_number(settings.redis_url)}"
    url = settings.redis_url_redacted()
    if settings.redis_cluster:
        return "redis+cluster://" + url.partition("://")[2]
    return url


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --- replication: WAIT after a submission ------------------------------------------------------


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


# --- the rate limiter (flask-limiter / limits) ------------------------------------------------


def limiter_storage_uri(settings: Settings) -> str:
    """The ``limits`` storage URI for the same Redis: ``redis://``, ``redis+sentinel://`` or
    ``redis+cluster://``."""
    parts = urlsplit(settings.redis_url)
    password = (
        settings.redis_password.get_secret_value() if settings.redis_password is not None else unquote(parts.password or "")
    )
    auth = ""
    if parts.username or password:
        auth = f"{quote(unquote(parts.username or ''), safe='')}:{quote(password, safe='')}@"
    if settings.redis_sentinels:
        hosts = ",".join(f"{_host(host)}:{port}" for host, port in settings.redis_sentinels)
        return f"redis+sentinel://{auth}{hosts}/{settings.redis_sentinel_master}"
    if settings.redis_cluster:
        return f"redis+cluster://{auth}{parts.netloc.rpartition('@')[2]}"
    if settings.redis_password is None:
        return settings.redis_url
    return parts._replace(netloc=f"{auth}{parts.netloc.rpartition('@')[2]}").geturl()


def limiter_storage_options(settings: Settings) -> dict[str, Any]:
    """Keyword options for the ``limits`` storage that :func:`limiter_storage_uri` names.

    With Sentinel, ``limits`` would send the primary's password to the sentinels too; their
    own options (password or none, short timeouts) are given apart, and so is the database.
    """
    options: dict[str, Any] = {"socket_timeout": settings.redis_socket_timeout}
    if settings.redis_sentinels:
        sentinel = _sentinel_kwargs(settings)
        sentinel.setdefault("password", None)
        options.update(
            socket_connect_timeout=settings.redis_socket_timeout,
            sentinel_kwargs=sentinel,
            db=_db_number(settings.redis_url),
        )
    return options


# --- rq-dashboard ------------------------------------------------------------------------------

_DASHBOARD_CLIENT = "offload.dashboard_redis"


def dashboard_connection(app: Any, settings: Settings) -> str:
    """Give rq-dashboard offload's own client; returns the (password-free) address it shows.

    rq-dashboard builds a client from ``RQ_DASHBOARD_REDIS_URL`` through
    ``redis_sentinel_url.connect`` at start-up and again on every request. That understands
    ``redis+sentinel://`` but not Cluster, not ``REDIS_PASSWORD`` and not offload's timeouts,
    so its ``from_url`` is wrapped once: inside an app that called this, it returns the
    client made here (one pool, the same timeouts and topology as the API); anywhere else it
    does what it did.
    """
    from flask import current_app, has_app_context
    from rq_dashboard import web

    app.extensions[_DASHBOARD_CLIENT] = redis_client(settings)
    if not getattr(web.from_url, "_offload_wrapped", False):
        original = web.from_url

        def from_url(url: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            client = current_app.extensions.get(_DASHBOARD_CLIENT) if has_app_context() else None
            if client is None:
                return original(url, *args, **kwargs)
            return None, client

        from_url._offload_wrapped = True  # type: ignore[attr-defined]
        web.from_url = from_url
    return describe(settings) if (settings.redis_sentinels or settings.redis_cluster) else settings.redis_url


# --- Redis Cluster -----------------------------------------------------------------------------


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


# --- the server's own settings ---------------------------------------------------------------

#: What a Redis server must be configured with so that an accepted job is never lost, and why.
DURABLE_SETTINGS = {
    "appendonly": ("yes", "without the append-only file a restart of Redis loses every job"),
    "appendfsync": (
        "always",
        "with 'everysec' Redis replies before writing while a slow fsync runs, so a crash can lose "
        "up to ~2 s of accepted jobs",
    ),
    "maxmemory-policy": ("noeviction", "any other policy lets Redis evict queued jobs when it is full"),
}


def check_server_settings(connection: redis.Redis) -> list[str]:
    """Warn (once, at worker start) about Redis settings that can lose accepted jobs.

    Managed services often refuse ``CONFIG GET``; then nothing can be said and nothing is
    reported. Offload never changes the server's settings itself: they belong to its operator.
    """
    try:
        current: dict[str, str] = {}
        for name in DURABLE_SETTINGS:
            for key, value in connection.config_get(name).items():
                current[key.decode() if isinstance(key, bytes) else key] = value.decode() if isinstance(value, bytes) else value
    except redis.RedisError as exc:
        log.info("cannot read the Redis server's settings (%s); durability not checked", exc)
        return []
    problems = []
    for name, (wanted, why) in DURABLE_SETTINGS.items():
        value = current.get(name)
        if value is not None and value != wanted:
            problems.append(f"Redis {name} is {value!r}, not {wanted!r}: {why}")
    for problem in problems:
        log.warning(problem)
    return problems
