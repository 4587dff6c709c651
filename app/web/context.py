"""What a view needs from the app it runs in: the job queue, the settings, the caller."""

from __future__ import annotations

from flask import current_app, g, request

from ..jobs import JobQueue, Principal
from ..settings import Settings
from . import auth


def job_queue() -> JobQueue:
    return current_app.extensions["offload.queue"]


def settings() -> Settings:
    return current_app.extensions["offload.settings"]


def principal() -> Principal:
    if "principal" not in g:
        g.principal = auth.authenticate(request, settings())
    return g.principal
