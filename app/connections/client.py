"""The Redis client every process uses, built from the settings for the chosen topology."""


from __future__ import annotations

import logging
import re
import socket
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as RedisRetry

from ..settings import Settings
from .cluster import OffloadRedisCluster

log = logging.getLogger(__name__)


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


def connect(settings: Settings, *, for_worker: bool = False) -> redis.Redis:
    """The client for offload's own use (see :func:`redis_client`)."""
    return redis_client(settings, for_worker=for_worker)
