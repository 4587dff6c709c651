"""The OpenAPI 3.1 document of offload at ``/openapi.json``, and a browsable view of it at ``/docs``.

Each operation is declared once, beside its view (:func:`app.web.routes.route`), and the document
is built by walking those declarations (:mod:`.document`). Its schemas are generated from the
pydantic models that validate requests and that the views answer through (:mod:`app.jobs.contract.schemas`,
:mod:`app.web.answers`), never copied by hand: change a model and the document follows. Limits that the models check against settings (text size, timeouts,
retries, ``?wait``) are written in as this server is configured, and so are the job types
it accepts and whether it needs an API key: the document describes the running server.

``/docs`` is Swagger UI, served from offload itself (the ``swagger-ui-bundle-v2`` package
ships its files), so the page loads nothing from a CDN or any other origin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, send_from_directory

from ..headers import content_security_policy
from .document import document_for

bp = Blueprint("openapi", __name__)

#: The Swagger UI files /docs needs; nothing else of the package is served.
SWAGGER_UI_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-16x16.png", "favicon-32x32.png"})

#: Swagger UI sets a few inline styles (e.g. on collapsing sections).
DOCS_CONTENT_SECURITY_POLICY = content_security_policy(inline_styles=True)

# --- the views ---------------------------------------------------------------------------------


def current_document() -> dict[str, Any]:
    """This app's document, built once: settings do not change while the app runs."""
    cached = current_app.extensions.get("offload.openapi")
    if cached is None:
        cached = document_for(current_app.extensions["offload.settings"])
        current_app.extensions["offload.openapi"] = cached
    return cached


@bp.get("/openapi.json")
def document() -> Response:
    return Response(json.dumps(current_document()), mimetype="application/json")


@bp.get("/docs")
def docs() -> Response:
    response = Response(render_template("docs.html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.get("/docs/assets/<filename>")
def swagger_ui_asset(filename: str) -> Response:
    if filename not in SWAGGER_UI_FILES:
        abort(404)
    response = send_from_directory(_swagger_ui_dir(), filename, max_age=3600)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def _swagger_ui_dir() -> Path:
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))
