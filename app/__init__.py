"""offload: an HTTP job API on Flask, RQ and Redis.

=================  ==============================================================
``web``            the HTTP layer: :func:`create_app`, routes, auth, limits, docs
``jobs``           the job contract and the one door into RQ and Redis
``tasks``          the work itself: plain functions, no Redis
``worker``         the worker processes (fast and forking) and RQ's scheduler
``connections``    Redis clients for one server, Sentinel or Cluster
``dev``            ``make run``'s supervised stack and the dev SMTP sink
``settings``       configuration from the environment, validated once
``logs``           JSON log lines with request and job ids
=================  ==============================================================

``docs/architecture.md`` follows one job through these modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .web import create_app


def __getattr__(name: str) -> Any:
    # Imported on first use, so that a worker (which never serves HTTP) does not load Flask.
    if name == "create_app":
        from .web import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app"]
