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
counter per key and window; a client can get up to twice a limit through around a window's
edge. In Redis, every window of a request's limit (``50/second;2000/minute``: two) is counted
in one script, which also hands back what the ``RateLimit`` headers need: one round trip a
limited request instead of three (issue 26, item 2; :class:`OneTripFixedWindow`).
A submission (``POST /jobs``, ``POST /jobs/batch``) does not spend that round trip of its own: its windows ride the
submission's script (:func:`submission_limit`, :func:`riding`), which counts them before it
writes and writes nothing over a limit, so a limited submission is one round trip in all.
Flask-Limiter's semantics stay: every request is counted, the shortest window first, stopping
at the first breach, and a breach answers the same 429. A request that ends before its job is
written (a 4xx of its own) has its windows counted after the view instead, and a breach still
answers 429. The windows ride only where they live on the job store's own server (the limits'
storage made from ``REDIS_URL``, not a Cluster): elsewhere they are counted as above.
``moving-window`` is exact but keeps a list entry per request (2,000 for ``2000/minute``) and
reads along it on every hit: 33 Valkey commands a submission against 21 (bench/FINDINGS.md,
section 11). ``sliding-window-counter`` weighs the previous window's count, close to exact at
two counters, but its keys leave offload's cluster slot.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from flask import Flask, Response, current_app, g, has_request_context, request
from flask_limiter import Limiter, RequestLimit
from limits import RateLimitItem, parse_many
from limits.storage import RedisClusterStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter

from . import auth
from ..connections import limiter_storage_options, limiter_storage_uri
from ..jobs import RateCount
from .problems import problem
from ..settings import Settings


def _client_identity() -> str:
    settings: Settings = current_app.extensions["offload.settings"]
    return auth.identify(request, settings) or f"addr:{request.remote_addr or 'unknown'}"


def submit_limit() -> str:
    return _applies(current_app.extensions["offload.settings"].rate_limit_submit)


def submission_limit() -> str:
    """``RATE_LIMIT_SUBMIT`` for ``POST /jobs`` and ``POST /jobs/batch``, whose windows ride the
    submission's own script (:func:`riding`) where the job store can count them."""
    if has_request_context():
        g.offload_rate_rides = True
    return submit_limit()


def read_limit() -> str:
    return _applies(current_app.extensions["offload.settings"].rate_limit_read)


def _applies(limits: str) -> str:
    """Flask-Limiter asks a view's limit string just before it counts its windows: note it, so
    that :class:`OneTripFixedWindow` counts them all at the first (see there)."""
    if has_request_context():
        g.offload_rate_limit = limits
    return limits


@lru_cache(maxsize=32)
def _windows(limits: str) -> tuple[RateLimitItem, ...]:
    """A limit string's windows in the order Flask-Limiter counts them (the shortest first)."""
    return tuple(sorted(parse_many(limits)))


#: Every window of a limit in one call (the file says how). The limiter's own script, beside it:
#: the job layer's scripts are the engine's (app/jobs/engine/lua/), which the web never imports.
_COUNT_WINDOWS = Path(__file__).with_name("ratelimit.lua").read_text()


class OneTripFixedWindow(FixedWindowRateLimiter):
    """``limits``' fixed window on its Redis storage, with the same keys, counts and expiries,
    but every window of a request's limit counted in one round trip.

    Flask-Limiter counts the windows of ``50/second;2000/minute`` one ``hit`` at a time, the
    shortest first, stopping at the first breach, and then reads the counter and TTL of the one
    it reports for the headers: three round trips a request, each fsynced under ``appendfsync
    always``. At the first ``hit`` of a request this strategy counts that window and the longer
    ones of the same limit string (the one :func:`submit_limit` or :func:`read_limit` just gave
    Flask-Limiter) in one script, stopping where Flask-Limiter would, and keeps each window's
    count and TTL for the request: the next ``hit`` is answered from them, and so are the
    headers (:func:`_window`). Anything else (no request, another limit, a cost that differs, a
    cluster whose keys do not share a slot) is counted as ``limits`` does.
    """

    def __init__(self, storage: RedisStorage) -> None:
        super().__init__(storage)
        self._script = storage.get_connection().register_script(_COUNT_WINDOWS)

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        if not has_request_context():
            return super().hit(item, *identifiers, cost=cost)
        counted = g.setdefault("offload_rate_windows", {})
        key = self.storage.prefixed_key(item.key_for(*identifiers))
        if g.get("offload_rate_rides") and current_app.extensions.get("offload.rate_rides"):
            riding = g.get("offload_rate_riding")
            if riding is None:  # the first window: hand them all to the submission (see riding())
                windows = self._windows_of(item)
                g.offload_rate_riding = RateCount(
                    [(self.storage.prefixed_key(w.key_for(*identifiers)), w.get_expiry(), w.amount) for w in windows],
                    cost,
                )
                g.offload_rate_riding_items = (windows, identifiers)
                return True
            if riding.replies is None and any(key == window[0] for window in riding.windows):
                return True  # counted (or refused) with the others, by the submission or after it
        if key not in counted or counted[key][2] != cost or counted[key][3]:
            self._count(self._windows_of(item), identifiers, cost, counted)
        count, _ttl, _cost, _used = counted[key]
        counted[key] = (*counted[key][:3], True)  # answered: a second hit of it counts again
        return count <= item.amount

    @staticmethod
    def _windows_of(item: RateLimitItem) -> list[RateLimitItem]:
        """``item`` and the longer windows of the limit string noted for this request."""
        noted = g.get("offload_rate_limit")
        windows = [w for w in _windows(noted) if not w < item] if noted else [item]
        return windows if item in windows else [item]

    def settle(self, riding: RateCount) -> str | None:
        """This request's riding windows as counted (by the submission's script, or here and now
        when the view ended before it ran): kept for the headers; the key of the one breached, or None."""
        counted = g.setdefault("offload_rate_windows", {})
        if riding.replies is None:
            windows, identifiers = g.offload_rate_riding_items
            self._count(windows, identifiers, riding.cost, counted)
            riding.replies = [counted[key][:2] for key, _e, _a in riding.windows if key in counted]
        else:
            for (key, _expiry, _amount), (count, ttl) in zip(riding.windows, riding.replies, strict=False):
                counted[key] = (count, ttl, riding.cost, True)
        return riding.breached

    def _count(self, windows: list[RateLimitItem], identifiers: tuple[str, ...], cost: int, counted: dict) -> None:
        keys = [self.storage.prefixed_key(w.key_for(*identifiers)) for w in windows]
        if isinstance(self.storage, RedisClusterStorage):
            cluster = self.storage.get_connection()
            if len({cluster.keyslot(key) for key in keys}) > 1:  # offload's {prefix} puts them in one
                keys, windows = keys[:1], windows[:1]
        args = [cost, *(value for w in windows for value in (w.get_expiry(), w.amount))]
        replies = self._script(keys=keys, args=args)
        for index in range(0, len(replies), 2):
            counted[keys[index // 2]] = (int(replies[index]), int(replies[index + 1]), cost, False)

    def window_of(self, limit: RequestLimit) -> tuple[int, int] | None:
        """``(reset_at, remaining)`` of a window this request counted, as ``RequestLimit`` gives
        them (``limits``: TTL from now, plus one), or None when it counted none."""
        if not has_request_context():
            return None
        counted = g.get("offload_rate_windows") or {}
        found = counted.get(self.storage.prefixed_key(limit.key))
        if found is None:
            return None
        count, ttl = found[:2]
        return int(max(ttl, 0) + time.time() + 1), max(0, limit.limit.amount - count)


def riding() -> RateCount | None:
    """The windows of this request's limit for the submission's script to count, or None (the
    limiter counted them itself, or is off). See the module's docstring."""
    riding = g.get("offload_rate_riding")
    return riding if riding is not None and riding.replies is None else None


def refusal() -> Response | None:
    """The 429 of a riding window over its limit (counted by the submission, or now), or None."""
    riding = g.get("offload_rate_riding")
    strategy = limiter.limiter
    if riding is None or g.get("offload_rate_settled") or not isinstance(strategy, OneTripFixedWindow):
        return None
    g.offload_rate_settled = True
    breached = strategy.settle(riding)
    if breached is None:
        return None
    for counted in limiter.current_limits:
        if strategy.storage.prefixed_key(counted.key) == breached:
            limit = RequestLimit(limiter, counted.limit, counted.request_args, True, counted.shared)
            limiter.context.view_rate_limit = limit  # the headers name the breached window, as Flask-Limiter's
            current_app.logger.info("ratelimit %s exceeded at %s %s", limit.limit, request.method, request.path)
            return _breached(limit)
    return None


def refused() -> Response:
    """The answer to a submission its script refused over a riding window (``RateLimited``):
    :func:`refusal`'s 429, which names the window."""
    return refusal() or problem(429, "rate limit exceeded", title="Too Many Requests")


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
    ``RequestLimit.reset_at`` and ``.remaining`` give them. A window :class:`OneTripFixedWindow`
    counted in this request is answered from its script's reply; another fixed window in Redis
    has its counter and TTL read in one pipelined round trip, where ``limits`` sends GET, then
    TTL; any other strategy or store is asked through ``limits`` itself."""
    strategy = limiter.limiter
    if isinstance(strategy, OneTripFixedWindow):
        known = strategy.window_of(limit)
        if known is not None:
            return known
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


class _Limiter(Limiter):
    """Flask-Limiter, its fixed window in Redis counted by :class:`OneTripFixedWindow`."""

    _one_trip: OneTripFixedWindow | None = None

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        """Flask-Limiter runs this before every request, for the limits that apply app-wide
        (default, application and meta limits), and again in each limited view for the view's
        own. offload sets none app-wide (each view names its own limit), so the first run finds
        nothing to count; it is skipped: 0.05-0.08 ms of CPU a request (bench/FINDINGS.md, 17)."""
        if in_middleware and not self._app_wide_limits():
            return
        super()._check_request_limit(callable_name, in_middleware)

    def _app_wide_limits(self) -> bool:
        manager = self.limit_manager
        return bool(
            manager.default_limits or manager.application_limits or manager._blueprint_limits  # noqa: SLF001
            or self._meta_limits or self._in_memory_fallback_enabled
        )

    @property
    def limiter(self) -> RateLimiter:
        strategy = super().limiter
        if type(strategy) is not FixedWindowRateLimiter or not isinstance(strategy.storage, RedisStorage):
            return strategy
        if self._one_trip is None or self._one_trip.storage is not strategy.storage:
            self._one_trip = OneTripFixedWindow(strategy.storage)  # one per storage (init_app makes it)
        return self._one_trip


limiter = _Limiter(key_func=_client_identity, headers_enabled=False, swallow_errors=True, on_breach=_breached)


def install(app: Flask, settings: Settings, key_prefix: str, storage_uri: str | None = None) -> None:
    """The limits on ``app``; their counters under ``key_prefix`` (``JobQueue.rate_limit_prefix``).
    Without ``storage_uri`` they are kept on the job store's server (``REDIS_URL``), and a
    submission's windows ride its script (see the module's docstring) unless it is a Cluster."""
    app.extensions["offload.rate_rides"] = storage_uri is None and not settings.redis_cluster
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
        try:  # windows a submission did not count (it ended first) are counted now; a breach is a 429
            response = refusal() or response
        except Exception:  # noqa: BLE001 - as the limiter itself (swallow_errors): let it through
            pass
        current = limiter.current_limit
        if current is not None and "RateLimit" not in response.headers:
            try:  # may read the window from Redis: when Redis is away, answer without the headers
                response.headers.update(_headers(current, _window(current)))
            except Exception:  # noqa: BLE001 - as the limiter itself (swallow_errors): never a 500 for this
                pass
        return response
