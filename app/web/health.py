"""``/healthz`` (the process is alive) and ``/readyz`` (Redis answers)."""

from __future__ import annotations

import json
from typing import Literal

from flask import Blueprint, Response
from pydantic import BaseModel

from .context import job_queue
from .problems import problem
from .routes import Answer, route

bp = Blueprint("health", __name__)


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


#: The answers never change: written once, from their models.
_ALIVE = json.dumps(Health(status="ok").model_dump())
_READY = json.dumps(Ready(status="ready").model_dump())


@route(
    bp, "GET", "/healthz", operation_id="healthz", tag="health", summary="Liveness",
    description="The process is alive. Says nothing about Redis (that is `/readyz`). Needs no key.",
    responses={200: Answer("Alive.", Health)}, keyed=False, store=False,
)  # fmt: skip
def healthz() -> Response:
    """The process is alive; says nothing about Redis (that is /readyz)."""
    return Response(_ALIVE, mimetype="application/json")


@route(
    bp, "GET", "/readyz", operation_id="readyz", tag="health", summary="Readiness",
    description="Redis answers. Needs no key.",
    responses={200: Answer("Ready.", Ready)}, keyed=False,
)  # fmt: skip
def readyz() -> Response:
    try:
        job_queue().ping()
    except Exception:  # noqa: BLE001 - any failure to ping means not ready
        return problem(503, "Redis is not answering", headers={"Retry-After": "5"})
    return Response(_READY, mimetype="application/json")
