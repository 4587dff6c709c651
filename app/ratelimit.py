"""Rate limits per API key (per client address when anonymous), kept in Redis.

Every gunicorn process on every host counts against the same budget: a moving window per
limit, kept in Redis as a list of the timestamps of the requests it allowed (at most the
limit's amount of entries, so memory per key is bounded). A breach answers ``429``
problem+json with ``Retry-After``, and every limited answer carries the IETF draft headers::

    RateLimit-Policy: 50;w=1
    RateLimit: limit=50, remaining=49, reset=1

Limits come from ``RATE_LIMIT_SUBMIT`` (POST /jobs) and ``RATE_LIMIT_READ`` (everything
else under /jobs); ``RATE_LIMIT_ENABLED=0`` turns them off. When Redis is unreachable the
limiter lets requests through (they get the API's own 503 anyway).

One request costs one Redis round trip: a single Lua script checks every limit of the
request (``50/second;2000/minute`` is two), records the hit in all of them only when none is
breached, and returns what the headers need (the count in the window of the narrowest limit,
or of the breached one, and its oldest entry), so the headers need no second read. Keys are
those Flask-Limiter used (``LIMITS:LIMITER/{offload}:offload:ratelimit/<who>/<endpoint>/50/1/second``),
in offload's hash tag, so they stay in its cluster slot. The client is the API's own (one
server, Sentinel or Cluster).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, g, request
from limits import parse_many

from . import auth
from .problems import problem
from .settings import Settings

log = logging.getLogger(__name__)

_EXTENSION = "offload.ratelimit"
_STORAGE_PREFIX = "LIMITS:LIMITER"


@dataclass(frozen=True)
class Limit:
    amount: int
    seconds: int
    suffix: str  # "/50/1/second", as limits names its keys

    @property
    def policy(self) -> str:
        return f"{self.amount};w={self.seconds}"


@functools.lru_cache(maxsize=64)
def parse(value: str) -> tuple[Limit, ...]:
    """``"50/second;2000/minute"`` as limits, narrowest window first."""
    items = sorted(parse_many(value), key=lambda item: item.get_expiry())
    return tuple(
        Limit(item.amount, item.get_expiry(), f"/{item.amount}/{item.multiples}/{item.GRANULARITY.name}") for item in items
    )


@dataclass(frozen=True)
class Outcome:
    """What a check found: whether the request may go on, and the limit the headers describe."""

    allowed: bool
    limit: Limit
    count: int  # requests in that limit's window, this one included when allowed
    oldest: float  # timestamp of the oldest of them (now when none)

    def reset_in(self, now: float) -> int:
        return max(0, math.ceil(self.oldest + self.limit.seconds - now)) if self.count else 0

    def headers(self, now: float) -> dict[str, str]:
        remaining = max(0, self.limit.amount - self.count)
        return {
            "RateLimit-Policy": self.limit.policy,
            "RateLimit": f"limit={self.limit.amount}, remaining={remaining}, reset={self.reset_in(now)}",
        }


# --- storage ---------------------------------------------------------------------------------

#: KEYS: one list per limit, narrowest first. ARGV: now, then amount and seconds of each limit.
#: Returns {allowed (0/1), index of the limit described (1-based), count in its window, oldest}.
_HIT_SCRIPT = """
local now = tonumber(ARGV[1])
local breached = 0
for i = 1, #KEYS do
  local amount, seconds = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local entry = redis.call('LINDEX', KEYS[i], amount - 1)
  if entry and tonumber(entry) >= now - seconds then
    breached = i
    break
  end
end
if breached == 0 then
  for i = 1, #KEYS do
    local amount, seconds = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    redis.call('LPUSH', KEYS[i], ARGV[1])
    redis.call('LTRIM', KEYS[i], 0, amount - 1)
    redis.call('EXPIRE', KEYS[i], seconds)
  end
end
local shown = breached == 0 and 1 or breached
local amount, seconds = tonumber(ARGV[2 * shown]), tonumber(ARGV[2 * shown + 1])
local low, high, found = 0, amount - 1, -1
while low <= high do  -- the oldest entry still in the window: entries are newest first
  local mid = math.floor((low + high) / 2)
  local value = tonumber(redis.call('LINDEX', KEYS[shown], mid))
  if value and value >= now - seconds then
    found = mid
    low = mid + 1
  else
    high = mid - 1
  end
end
local oldest = ARGV[1]
if found >= 0 then oldest = redis.call('LINDEX', KEYS[shown], found) end
return {breached == 0 and 1 or 0, shown, found + 1, oldest}
"""


class RedisWindows:
    """Moving windows in Redis, one script call per request."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._script = connection.register_script(_HIT_SCRIPT)

    def hit(self, keys: list[str], limits: tuple[Limit, ...], now: float) -> Outcome:
        args: list[Any] = [repr(now)]
        for limit in limits:
            args += [limit.amount, limit.seconds]
        allowed, shown, count, oldest = self._script(keys=keys, args=args)
        return Outcome(bool(allowed), limits[int(shown) - 1], int(count), float(oldest))


class MemoryWindows:
    """The same in this process (tests, and ``rate_limit_storage="memory://"``)."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, keys: list[str], limits: tuple[Limit, ...], now: float) -> Outcome:
        with self._lock:
            windows = [self._windows.setdefault(key, deque()) for key in keys]
            breached = 0
            for index, (window, limit) in enumerate(zip(windows, limits, strict=True), start=1):
                if len(window) >= limit.amount and window[limit.amount - 1] >= now - limit.seconds:
                    breached = index
                    break
            if not breached:
                for window, limit in zip(windows, limits, strict=True):
                    window.appendleft(now)
                    while len(window) > limit.amount:
                        window.pop()
            shown = breached or 1
            limit, window = limits[shown - 1], windows[shown - 1]
            inside = [stamp for stamp in window if stamp >= now - limit.seconds]
            return Outcome(not breached, limit, len(inside), inside[-1] if inside else now)


# --- Flask -----------------------------------------------------------------------------------


@dataclass
class _State:
    enabled: bool
    prefix: str
    store: Any = None
    connection_of: Callable[[], Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def windows(self) -> Any:
        if self.store is None:
            with self.lock:
                if self.store is None and self.connection_of is not None:
                    self.store = RedisWindows(self.connection_of())
        return self.store


def _client_identity(settings: Settings) -> str:
    return auth.identify(request, settings) or f"addr:{request.remote_addr or 'unknown'}"


def submit_limit() -> str:
    return current_app.extensions["offload.settings"].rate_limit_submit


def read_limit() -> str:
    return current_app.extensions["offload.settings"].rate_limit_read


def _breached(outcome: Outcome, now: float) -> Response:
    retry_after = max(1, outcome.reset_in(now))
    return problem(
        429,
        f"rate limit of {outcome.limit.amount} per {outcome.limit.seconds} s exceeded; retry in {retry_after} s",
        title="Too Many Requests",
        headers={"Retry-After": str(retry_after), **outcome.headers(now)},
    )


class Limiter:
    """``@limiter.limit(provider)`` on a view: the provider returns the limit string."""

    def limit(self, provider: Callable[[], str]) -> Callable:
        def decorator(view: Callable) -> Callable:
            @functools.wraps(view)
            def limited(*args: Any, **kwargs: Any) -> Any:
                state: _State | None = current_app.extensions.get(_EXTENSION)
                if state is None or not state.enabled:
                    return view(*args, **kwargs)
                settings: Settings = current_app.extensions["offload.settings"]
                limits = parse(provider())
                base = f"{_STORAGE_PREFIX}/{state.prefix}/{_client_identity(settings)}/{request.endpoint}"
                now = time.time()
                try:
                    outcome = state.windows().hit([base + limit.suffix for limit in limits], limits, now)
                except Exception:  # noqa: BLE001 - Redis away: let the request through, without headers
                    log.warning("rate limit storage unreachable; request not limited", exc_info=True)
                    return view(*args, **kwargs)
                g.rate_limit_headers = outcome.headers(now)
                if not outcome.allowed:
                    log.info("rate limit %s exceeded at endpoint %s", outcome.limit.policy, request.endpoint)
                    return _breached(outcome, now)
                return view(*args, **kwargs)

            return limited

        return decorator


limiter = Limiter()


def install(app: Flask, settings: Settings, storage_uri: str | None = None) -> None:
    """Limits on; kept in memory for ``memory://``, else in the API's own Redis (or the one
    ``storage_uri`` names)."""
    state = _State(enabled=settings.rate_limit_enabled, prefix=settings.rate_limit_key_prefix)
    if storage_uri and storage_uri.startswith("memory://"):
        state.store = MemoryWindows()
    elif storage_uri:
        import redis

        state.connection_of = lambda: redis.Redis.from_url(storage_uri, socket_timeout=settings.redis_socket_timeout)
    else:
        state.connection_of = lambda: app.extensions["offload.queue"].connection
    app.extensions[_EXTENSION] = state

    @app.after_request
    def _rate_limit_headers(response: Response) -> Response:
        headers = g.get("rate_limit_headers")
        if headers is not None and "RateLimit" not in response.headers:
            response.headers.update(headers)
        return response

