"""The Redis server's own settings: warn where they can lose accepted jobs."""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)


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
