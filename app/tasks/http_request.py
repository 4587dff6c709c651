"""``http_request``: offload sends an HTTP request to your own service, with retries.

What Google Cloud Tasks calls an HTTP target: a service written in Go, Node or Ruby submits
``{"type": "http_request", "url": ..., "method": ..., "headers": ..., "body": ...}`` and gets
offload's retries, schedules, batches, concurrency keys and fair shares without writing Python.
The service receives the request signed as callbacks are (``Offload-Signature``, with the method
and URL signed too, see :func:`app.tasks.webhook.sign_request`), with ``Offload-Delivery`` (the
job id, the same on every attempt: the key to drop a duplicate) and ``Offload-Attempt``.

Delivery is at least once: an attempt whose answer is lost (a timeout after the service acted) is
sent again, so a service makes its handler idempotent with ``Offload-Delivery``.

The request goes through the callbacks' SSRF guard (:func:`app.tasks.webhook.check_url` and
:func:`app.tasks.webhook.send`): the URL must resolve only to public addresses, unless
``ALLOW_PRIVATE_CALLBACKS=1``, and the connection goes to the addresses that were judged, so a
name whose DNS answer changes in between cannot lead it inside. No redirect is followed.
"""

from __future__ import annotations

import codecs
import email.utils
import http.client
import ipaddress
import re
import time
from datetime import UTC
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from offload.tasks import Context, PermanentFailure, RetryLater, task

from . import webhook

#: The longest URL taken (what browsers and most servers handle).
MAX_URL_CHARS = 2048
MAX_HEADERS = 50
MAX_HEADER_VALUE_CHARS = 8192
MAX_HEADERS_BYTES = 32 * 1024
#: The body's bound when validated without the server's settings (MAX_TEXT_BYTES's default).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: How much of the answer's body the result keeps: a result lives in Redis beside every job.
MAX_RESULT_BODY_BYTES = 64 * 1024
MAX_RESULT_HEADER_CHARS = 8192
#: A Retry-After beyond this is taken as this: one answer must not park a job for days.
MAX_RETRY_AFTER_SECONDS = 3600
#: Answers worth another attempt: the service is busy, down or timed out; anything else that is
#: not 2xx is an answer about the request itself, which the same request will get again.
RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
USER_AGENT = "offload-http-request/1"
DEFAULT_CONTENT_TYPE = "text/plain; charset=utf-8"
#: Headers a client may not set: hop-by-hop ones (RFC 9110 section 7.6.1) and those describing
#: the connection and framing, which offload writes from the URL and the body.
FORBIDDEN_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "expect",
})  # fmt: skip

# RFC 9110 field names and values, printable ASCII URLs; used with fullmatch ("$" would let a final newline by).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_VALUE = re.compile(r"[\t\x20-\x7e]*")  # printable ASCII and tabs: no CR, LF, NUL


class HttpRequestFailed(RuntimeError):
    """No answer, or an answer worth retrying without a Retry-After: the job's backoff applies."""


def _shown(url: str) -> str:
    """The URL as errors and logs show it: scheme and host only. A path or query may hold the
    service's tokens (``/hooks/T0K3N``, ``?sig=``), and the client knows the URL it sent."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _settings(info: ValidationInfo) -> object | None:
    return (info.context or {}).get("settings")


class HttpRequestArgs(BaseModel):
    """Send an HTTP request to your own service, signed, retried with backoff on 5xx, 429 and timeouts.

    The result is the answer's status, headers and (at most 64 KiB of) body. Any other answer
    (4xx, a 3xx: redirects are not followed) fails the job at once. The request carries
    Offload-Signature (HMAC-SHA256 with the server's WEBHOOK_SECRET over the timestamp, the
    method, the URL and the body), Offload-Delivery (the job id, for dropping duplicates) and
    Offload-Attempt."""

    # hide_input_in_errors: a refused header value may be a token; an error names the field only.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: StrictStr = Field(
        max_length=MAX_URL_CHARS,
        # The server checks this very pattern (webhook.shape_problem), with a message per cause.
        json_schema_extra={"pattern": webhook.URL_PATTERN},
        description="http:// or https:// URL of your service (no credentials, no #fragment). It must resolve to "
        "public addresses unless the server sets ALLOW_PRIVATE_CALLBACKS=1.",
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = Field("POST", description="The HTTP method.")
    headers: dict[StrictStr, StrictStr] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description="Headers to send (printable ASCII values). Not allowed: hop-by-hop headers, Host, Content-Length, "
        "Expect and offload's own (Offload-*). Kept with the job: prefer checking Offload-Signature to sending a token.",
    )
    body: StrictStr = Field(
        "",
        description="The body, sent as UTF-8 (at most MAX_TEXT_BYTES); not with GET or HEAD. Content-Type defaults to "
        f"`{DEFAULT_CONTENT_TYPE}` when there is a body.",
    )
    request_timeout_seconds: Annotated[float, Field(strict=True, ge=1, le=300)] = Field(
        30,
        description="How long one attempt may take, from connecting to the last byte read; past it the attempt is "
        "retried. Keep it under the job's timeout_seconds.",
    )

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str, info: ValidationInfo) -> str:
        """A URL offload can send to, said at submission (a clean 422, never an exception)."""
        settings = _settings(info)
        if settings is not None and getattr(settings, "webhook_secret", None) is None:
            # Unsigned, the service could not tell offload's requests from anyone's: refused.
            raise PydanticCustomError("not_enabled", "http_request is not enabled on this server (no WEBHOOK_SECRET)")
        problem = webhook.shape_problem(value)
        if problem is not None:
            raise PydanticCustomError("url", problem)
        literal = _ip_literal(urlsplit(value).hostname or "")
        allow_private = bool(getattr(settings, "allow_private_callbacks", True))
        if literal is not None and not allow_private and not webhook.is_public(literal):
            raise PydanticCustomError("url", "is a non-public address ({address})", {"address": str(literal)})
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name, header_value in value.items():
            shown = repr(name if len(name) <= 40 else f"{name[:40]}...")
            lower = name.lower()
            if not _TOKEN.fullmatch(name):
                raise PydanticCustomError("header_name", "{name} is not a header name", {"name": shown})
            if lower in FORBIDDEN_HEADERS:
                raise PydanticCustomError(
                    "header_forbidden", "{name} cannot be set: offload writes the connection and framing headers itself",
                    {"name": name},
                )  # fmt: skip
            if lower.startswith("offload-"):  # Offload-Signature, -Delivery, ...: what the service trusts
                raise PydanticCustomError("header_forbidden", "{name}: Offload-* headers are offload's own", {"name": name})
            if lower in seen:
                raise PydanticCustomError("header_twice", "{name} is given twice (names ignore case)", {"name": name})
            seen.add(lower)
            if not _VALUE.fullmatch(header_value):
                raise PydanticCustomError(
                    "header_value", "the value of {name} must be printable ASCII (no CR, LF or NUL)", {"name": name}
                )
            if len(header_value) > MAX_HEADER_VALUE_CHARS:
                raise PydanticCustomError(
                    "header_value", "the value of {name} must be at most {limit} characters",
                    {"name": name, "limit": MAX_HEADER_VALUE_CHARS},
                )  # fmt: skip
        if sum(len(name) + len(item) + 4 for name, item in value.items()) > MAX_HEADERS_BYTES:
            raise PydanticCustomError("too_long", "must be at most {limit} bytes in all", {"limit": MAX_HEADERS_BYTES})
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: str, info: ValidationInfo) -> str:
        if value and info.data.get("method") in ("GET", "HEAD"):
            raise PydanticCustomError("body_not_allowed", "a {method} request has no body", {"method": info.data["method"]})
        settings = _settings(info)
        limit = getattr(settings, "max_text_bytes", None) or DEFAULT_MAX_BODY_BYTES
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise PydanticCustomError("invalid_unicode", "must be valid Unicode (no unpaired surrogates)") from None
        if size > limit:
            # "too_large": the error type the server answers with 413, as for count_words' text.
            raise PydanticCustomError("too_large", "must be at most {limit} bytes of UTF-8", {"limit": limit})
        return value


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally (``10.0.0.1``, ``[::1]``), None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


EXAMPLE = {
    "url": "https://orders.example.com/tasks/reindex?shop=42",
    "method": "POST",
    "headers": {"Content-Type": "application/json"},
    "body": '{"shop": 42}',
}


@task(
    "http_request", args=HttpRequestArgs, max_retries=5,
    timeout_seconds=360,  # the longest request (300 s) fits
    requires=("webhook_secret",),  # served only where requests can be signed
    example=EXAMPLE,
)  # fmt: skip
def http_request(args: HttpRequestArgs, ctx: Context) -> dict:
    """Send the request once; the outcome decides between a result, a retry and a failure.

    With no WEBHOOK_SECRET on the worker the request is refused (PermanentFailure), not sent
    unsigned: a service that checks signatures would refuse it anyway, and one that does not
    could not tell offload's requests from anybody's. Submission refuses it first (the model's
    url check, given the server's settings)."""
    settings = ctx.settings
    secret = getattr(settings, "webhook_secret", None)
    where = f"{args.method} {_shown(args.url)}"
    if secret is None:
        raise PermanentFailure("http_request needs WEBHOOK_SECRET on the worker to sign its requests; not sent")
    if ctx.cancelled():
        raise PermanentFailure(f"{where}: canceled before the request was sent")
    try:
        target = webhook.check_url(args.url, bool(getattr(settings, "allow_private_callbacks", False)))
    except webhook.Unresolvable as exc:  # DNS may answer on the next attempt
        raise HttpRequestFailed(f"{where}: {exc}") from None
    except webhook.CallbackRefused as exc:
        raise PermanentFailure(f"{where}: {exc}") from None
    body = args.body.encode("utf-8")
    given = {name.lower() for name in args.headers}
    headers = {
        **({} if "user-agent" in given else {"User-Agent": USER_AGENT}),
        **({"Content-Type": DEFAULT_CONTENT_TYPE} if body and "content-type" not in given else {}),
        **args.headers,
        "Offload-Event": "http_request",
        "Offload-Delivery": ctx.job_id,
        "Offload-Attempt": str(ctx.attempt),
        webhook.SIGNATURE_HEADER: webhook.sign_request(secret.get_secret_value(), args.method, args.url, body),
    }
    ctx.logger.info("http_request: %s (attempt %d)", where, ctx.attempt)
    try:
        answer = webhook.send(
            target, args.method, headers, body, timeout=args.request_timeout_seconds, max_body=MAX_RESULT_BODY_BYTES
        )
    except TimeoutError:
        raise HttpRequestFailed(f"{where}: no complete answer within {args.request_timeout_seconds:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise HttpRequestFailed(f"{where}: the request failed: {type(exc).__name__}: {_clean(str(exc), 200)}") from None
    said = f"{where} answered {answer.status} {_clean(answer.reason, 100)}".rstrip()
    ctx.logger.info("http_request: %s in %.0f ms", said, answer.elapsed * 1000)
    if 200 <= answer.status < 300:
        return {
            "status": answer.status,
            "headers": _result_headers(answer.headers),
            "body": codecs.getincrementaldecoder("utf-8")("replace").decode(answer.body, final=not answer.truncated),
            "body_truncated": answer.truncated,
            "elapsed_ms": round(answer.elapsed * 1000, 3),
        }
    if answer.status in RETRYABLE_STATUSES:
        after = retry_after({name.lower(): value for name, value in answer.headers}.get("retry-after"))
        if after is not None:
            raise RetryLater(f"{said}; retrying in {after:g} s as its Retry-After asks", after=after)
        raise HttpRequestFailed(said)
    if 300 <= answer.status < 400:
        raise PermanentFailure(f"{said} (redirects are not followed: give the final URL)")
    raise PermanentFailure(said)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` asks for (delay-seconds or an HTTP-date), from 0 to
    MAX_RETRY_AFTER_SECONDS; None when absent or unreadable (the job's backoff applies)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP-date is GMT; "-0000" in the header parses as naive
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), float(MAX_RETRY_AFTER_SECONDS))


def _result_headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names; a header sent more than once joined with ", " (RFC 9110 section 5.3)."""
    merged: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        merged[name] = f"{merged[name]}, {value}" if name in merged else value
    return {name: value[:MAX_RESULT_HEADER_CHARS] for name, value in merged.items()}


def _clean(text: str, limit: int) -> str:
    """A server's words (a reason phrase, an error) fit for a message: printable and short."""
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


__all__ = ["HttpRequestArgs", "HttpRequestFailed", "http_request", "retry_after"]
