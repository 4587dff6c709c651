"""Rate limits per API key (per client address when anonymous), kept in Redis.

Built on Flask-Limiter with its Redis storage, so every gunicorn process on every host
counts against the same budget. A breach answers ``429`` problem+json with ``Retry-After``,
and every limited answer carries the IETF draft headers::

    RateLimit-Policy: 50;w=1
    RateLimit: limit=50, remaining=49, reset=1

Limits come from ``RATE_LIMIT_SUBMIT`` (POST /jobs) and ``RATE_LIMIT_READ`` (everything
else under /jobs); ``RATE_LIMIT_ENABLED=0`` turns them off. When Redis is unreachable the
limiter lets requests through (they get the API's own 503 anyway).

``RATE_LIMIT_STRATEGY`` picks how ``limits`` counts. ``fixed-window`` (the default) keeps one
counter per key and window, bumped by one small script per limit; a client can get up to twice
a limit through around a window's edge. ``moving-window`` is exact but keeps a list entry per
request (2,000 for ``2000/minute``) and reads along it on every hit: 33 Valkey commands a
submission against 21 (bench/FINDINGS.md, section 11). ``sliding-window-counter`` weighs the previous window's
count, close to exact at two counters, but its keys leave offload's cluster slot.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RequestLimit
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from . import auth
from ..connections import limiter_storage_options, limiter_storage_uri
from .problems import problem
from ..settings import Settings


def _client_identity() -> str:
    settings: Settings = current_app.extensions["offload.settings"]
    return auth.identify(request, settings) or f"addr:{request.remote_addr or 'unknown'}"


def submit_limit() -> str:
    return current_app.extensions["offload.settings"].rate_limit_submit


def read_limit() -> str:
    return current_app.extensions["offload.settings"].rate_limit_read


def _breached(limit: RequestLimit) -> Response:
    """429 saying which limit was hit, for what, counted per what, and when it lets requests by."""
    window = _window(limit)
    retry_after = max(1, math.ceil(window[0] - time.time()))
    reset_at = datetime.fromtimestamp(time.time() + retry_after, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    settings: Settings = current_app.extensions["offload.settings"]
    submit = request.method == "POST" and request.url_rule is not None and request.url_rule.rule == "/jobs"
    applies_to = "POST /jobs" if submit else "the other /jobs calls"
    setting = "RATE_LIMIT_SUBMIT" if submit else "RATE_LIMIT_READ"
    per = "API key" if auth.identify(request, settings) else "client address"
    return problem(
        429,
        f"rate limit of {limit.limit} on {applies_to} (per {per}, {setting}) exceeded; "
        f"retry in {retry_after} s, at {reset_at}",
        title="Too Many Requests",
        headers={"Retry-After": str(retry_after), **_headers(limit, window)},
        members={
            "rate_limit": {
                "limit": str(limit.limit),
                "applies_to": applies_to,
                "per": per,
                "setting": setting,
                "retry_after": retry_after,
                "reset_at": reset_at,
            }
        },
    )


def _window(limit: RequestLimit) -> tuple[int, int]:
    """``(reset_at, remaining)`` of a limit after this request's hit, as Flask-Limiter's
    ``RequestLimit.reset_at`` and ``.remaining`` give them. For a fixed window in Redis the
    counter and its TTL are read in one pipelined round trip, where ``limits`` sends GET, then
    TTL; any other strategy or store is asked through ``limits`` itself."""
    strategy = limiter.limiter
    storage = strategy.storage
    if isinstance(strategy, FixedWindowRateLimiter) and isinstance(storage, RedisStorage):
        key = storage.prefixed_key(limit.key)
        with storage.get_connection(True).pipeline(transaction=False) as pipe:
            count, ttl = pipe.get(key).ttl(key).execute()
        reset = max(ttl, 0) + time.time()  # as limits' RedisStorage.get_expiry
        return int(reset + 1), max(0, limit.limit.amount - int(count or 0))
    return limit.reset_at, limit.remaining


def _headers(limit: RequestLimit, window: tuple[int, int]) -> dict[str, str]:
    item = limit.limit
    reset_at, remaining = window
    reset = max(0, math.ceil(reset_at - time.time()))
    return {
        "RateLimit-Policy": f"{item.amount};w={item.get_expiry()}",
        "RateLimit": f"limit={item.amount}, remaining={max(0, remaining)}, reset={reset}",
    }


limiter = Limiter(key_func=_client_identity, headers_enabled=False, swallow_errors=True, on_breach=_breached)


def install(app: Flask, settings: Settings, key_prefix: str, storage_uri: str | None = None) -> None:
    """The limits on ``app``; their counters under ``key_prefix`` (``JobQueue.rate_limit_prefix``)."""
    app.config["RATELIMIT_ENABLED"] = settings.rate_limit_enabled
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri or limiter_storage_uri(settings)
    app.config["RATELIMIT_STORAGE_OPTIONS"] = limiter_storage_options(settings)
    app.config["RATELIMIT_KEY_PREFIX"] = key_prefix
    app.config["RATELIMIT_STRATEGY"] = settings.rate_limit_strategy
    # The Limiter is shared by every app of the process (the views' decorators name it) and
    # keeps the strategy of the first init_app otherwise; each app gets the one it asks for.
    limiter._strategy = settings.rate_limit_strategy  # noqa: SLF001
    limiter.init_app(app)

    @app.after_request
    def _rate_limit_headers(response: Response) -> Response:
        current = limiter.current_limit
        if current is not None and "RateLimit" not in response.headers:
            try:  # reads the window from Redis again: when Redis is away, answer without the headers
                response.headers.update(_headers(current, _window(current)))
            except Exception:  # noqa: BLE001 - as the limiter itself (swallow_errors): never a 500 for this
                pass
        return response
