"""RFC 9457 problem details: the one shape of every error offload answers.

No request, however malformed, gets a 500 HTML page or a stack trace: werkzeug's HTTP
errors, validation failures, an unreachable Redis and unexpected exceptions all leave
through :func:`problem`.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, Response, has_request_context, json, request
from markupsafe import escape
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from ..jobs import STORE_UNAVAILABLE, catalog
from ..logs import request_id_var
from .headers import content_security_policy

log = logging.getLogger("offload.http")

PROBLEM_JSON = "application/problem+json"
REDIS_RETRY_AFTER = 5


class ApiProblem(Exception):
    """Raise to answer with a problem; carries status, detail, field errors and headers."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.errors = errors
        self.headers = headers or {}


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    errors: list[dict] | None = None,
    headers: dict[str, str] | None = None,
    members: dict | None = None,
) -> Response:
    """An RFC 9457 answer; ``members`` are extension members of this problem type (RFC 9457 3.2)."""
    body: dict = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description,
    }
    if errors is not None:
        body["errors"] = errors
    body.update(members or {})
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    if _browser_wants_html():
        response = Response(_html_page(body), status=status, mimetype="text/html")
        response.headers["Content-Security-Policy"] = content_security_policy()
        response.headers["Vary"] = "Accept"
    else:
        response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def field_errors(exc: ValidationError, *, within: str | None = None) -> list[dict]:
    """Pydantic's errors as ``[{"field", "message"}]``, with the discriminator tag left out.

    ``within`` names the member the validated object sits in (a schedule's ``job``): its fields
    are ``job.<field>`` and an error of the object as a whole is ``job``. Without it, an error of
    the whole request is ``body`` (which a field named ``body``, such as send_email's, can also
    be: only ``within`` tells them apart)."""
    return [field_error(error, within=within) for error in exc.errors(include_url=False)]


def field_error(error: dict, *, within: str | None = None) -> dict:
    """One of pydantic's errors (``ValidationError.errors()``) as ``{"field", "message"}``."""
    loc = list(error["loc"])
    kind = error["type"]
    if kind == "union_tag_not_found":
        return {"field": _within("type", within), "message": "required: the job type"}
    if kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        return {"field": _within("type", within), "message": f"unknown job type; expected one of {expected}"}
    if loc and isinstance(loc[0], str) and _is_tag(loc[0]):
        loc = loc[1:]
    path = ".".join(str(part) for part in loc) or (error.get("ctx") or {}).get("field") or ""
    return {"field": _within(path, within) if within else path or "body", "message": error["msg"]}


def _within(path: str, within: str | None) -> str:
    if not within:
        return path
    return f"{within}.{path}" if path else within


def _is_tag(value: str) -> bool:
    return catalog.get(value) is not None


def register(app: Flask) -> None:
    @app.errorhandler(ApiProblem)
    def _api_problem(exc: ApiProblem) -> Response:
        return problem(exc.status, exc.detail, title=exc.title, errors=exc.errors, headers=exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if exc.response is not None:  # already a problem (e.g. the rate limiter's 429)
            return exc.response  # type: ignore[return-value]
        headers = {}
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        detail = exc.description
        if exc.code == 413:
            detail = "the request body is larger than this server accepts"
        return problem(exc.code or 500, detail, headers=headers)

    def _redis_down(exc: Exception) -> Response:
        log.error("Redis unavailable: %s", exc.__class__.__name__)
        return problem(
            503,
            "the job store is not reachable; try again shortly",
            title="Service Unavailable",
            headers={"Retry-After": str(REDIS_RETRY_AFTER)},
        )

    # Redis not answering, however it shows (a RedisError, a Redis Cluster trouble): the same
    # outage to a client, whether a view, /metrics or the dashboard met it.
    for unavailable in STORE_UNAVAILABLE:
        app.register_error_handler(unavailable, _redis_down)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "an unexpected error occurred; it has been logged with this request's id")


def _browser_wants_html() -> bool:
    """A person's browser opening a URL (``Accept: text/html,...``) gets a small page; an API
    client (``*/*``, JSON, problem+json, no Accept at all) keeps problem+json."""
    if not has_request_context() or request.method not in ("GET", "HEAD"):
        return False
    accept = request.accept_mimetypes
    return accept.best_match([PROBLEM_JSON, "application/json", "text/html"]) == "text/html" and accept["text/html"] > accept[PROBLEM_JSON]


def _html_page(body: dict) -> str:
    """The problem as a page: what went wrong, the request id to quote, and the way back."""
    request_id = f"<p>Request id: <code>{escape(body['request_id'])}</code></p>" if "request_id" in body else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{body['status']} {escape(body['title'])} · offload</title>"
        '<link rel="stylesheet" href="/static/offload.css"></head><body><main class="problem-page">'
        f"<h1>{body['status']} {escape(body['title'])}</h1><p>{escape(body['detail'])}</p>{request_id}"
        '<p><a href="/">Back to offload</a> · <a href="/docs">API docs</a></p>'
        "</main></body></html>"
    )
