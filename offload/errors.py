"""Exceptions of the client: every error answer of the server, typed by status.

The server answers every error as RFC 9457 ``application/problem+json``; :class:`OffloadError`
carries that document (``status``, ``title``, ``detail``, the field ``errors`` of a 422,
``request_id``) so a caller can show the server's own words. Catch :class:`OffloadError` for
everything, or a subclass for one case (``except NotFound``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class OffloadError(Exception):
    """An error answer of the server (``status`` set), or no answer at all (``status`` None)."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        errors: list[dict[str, str]] | None = None,
        problem: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.problem = problem or {}
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """The server asks to try again later: 429 and 503, and a 409 with ``Retry-After``
        (an Idempotency-Key whose first request is still in flight)."""
        return self.status in (429, 503) or (self.status == 409 and self.retry_after is not None)

    @property
    def request_id(self) -> str | None:
        """The server's id of the failed request: its logs carry it."""
        return self.problem.get("request_id")

    def __str__(self) -> str:
        head = f"{self.status} {self.title}: {self.detail}" if self.status else self.detail
        fields = "; ".join(f"{error.get('field')}: {error.get('message')}" for error in self.errors)
        return f"{head} ({fields})" if fields else head


class BadRequest(OffloadError):
    """400, 413 or 415: the request itself is malformed, too large or of the wrong type."""


class Unauthorized(OffloadError):
    """401: no API key, or one the server does not know."""


class Forbidden(OffloadError):
    """403: the key is known but its role may not do this."""


class NotFound(OffloadError):
    """404: no such job (never existed, expired, or another client's)."""


class Conflict(OffloadError):
    """409: the job's state forbids it (cancel a finished job), or the same Idempotency-Key is in flight."""


class ValidationFailed(OffloadError):
    """422: the submission or query is not valid; ``errors`` lists the fields."""


class RateLimited(OffloadError):
    """429: over the rate limit; ``retry_after`` says when to try again."""


class ServiceUnavailable(OffloadError):
    """503: Redis unreachable or the queue over its depth limit; ``retry_after`` says when to try again."""


class ServerError(OffloadError):
    """Any other 5xx."""


class ConnectionFailed(OffloadError):
    """No answer: the server could not be reached, or the connection broke or timed out."""


class EventsUnavailable(OffloadError):
    """The server does not stream ``GET /jobs/{id}/events`` (a server older than live events):
    poll with ``Client.get(id, wait=N)`` instead."""


class WaitTimeout(OffloadError, TimeoutError):
    """``Client.wait`` gave up before the job ended; ``job`` is the last state seen."""

    def __init__(self, job: Any, timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g} s")
        self.job = job


#: A 422 for a number over the server's limit says "must be from 0 to N" (wait, timeout).
_LIMIT = re.compile(r"from 0 to (\d+(?:\.\d+)?)")

_BY_STATUS: dict[int, type[OffloadError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    415: BadRequest,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (offload sends whole seconds; an HTTP date is read too)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def from_response(response: httpx.Response) -> OffloadError:
    """The exception for an error answer, from its problem+json (or whatever a proxy sent)."""
    status = response.status_code
    try:
        problem = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        problem = None
    if not isinstance(problem, dict):
        text = response.text.strip()[:200]
        problem = {"status": status, "title": response.reason_phrase, "detail": text or response.reason_phrase}
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else OffloadError)
    errors = problem.get("errors")
    return kind(
        str(problem.get("detail") or problem.get("title") or response.reason_phrase),
        status=status,
        title=problem.get("title") or response.reason_phrase,
        errors=errors if isinstance(errors, list) else None,
        problem=problem,
        retry_after=retry_after(response),
    )


def limit_named(error: OffloadError, field: str) -> float | None:
    """The server's limit for ``field``, when ``error`` is a 422 refusing a number over it."""
    if error.status != 422:
        return None
    for item in error.errors:
        if item.get("field") == field:
            match = _LIMIT.search(item.get("message", "")) or _LIMIT.search(error.detail)
            if match:
                return float(match.group(1))
    return None


def backoff(attempt: int) -> float:
    """Seconds before another try after a connection failure: 0.5, 1, 2, 4, then 5."""
    return min(0.5 * 2.0 ** (attempt - 1), 5.0)


def describe(exc: httpx.TransportError) -> str:
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
