"""``/healthz`` (the process is alive) and ``/readyz`` (Redis answers)."""

from __future__ import annotations

import json

from flask import Blueprint, Response

from .context import job_queue
from .problems import problem

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive; says nothing about Redis (that is /readyz)."""
    return _json({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    try:
        job_queue().ping()
    except Exception:  # noqa: BLE001 - any failure to ping means not ready
        return problem(503, "Redis is not answering", headers={"Retry-After": "5"})
    return _json({"status": "ready"})


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")
