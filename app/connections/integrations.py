"""Redis for the libraries that open their own clients: Flask-Limiter and rq-dashboard.

Each gets a URI or options built from offload's settings, so they follow the same
topology (one server, Sentinel or Cluster) and credentials as everything else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ..settings import Settings
from .client import _db_number, _host, _sentinel_kwargs, describe, redis_client


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
