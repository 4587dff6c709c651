"""``callback_url``: tell the client's server when its job ends.

A delivery is a job of its own (type ``webhook``), enqueued by the worker when a job
finishes or fails for good, so a slow receiver never holds up a worker's next job and a
failing one is retried with backoff like any job.

Each POST carries the job resource as JSON and these headers::

    Offload-Event: job.finished | job.failed
    Offload-Delivery: <id of the delivery job>
    Offload-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(WEBHOOK_SECRET, "<t>.<body>")>
    traceparent: 00-<the job's trace id>-<this POST's span id>-<flags>   (W3C Trace Context)
    tracestate: <as sent with the job's POST /jobs, if it was>

Receivers recompute the HMAC over the timestamp, a dot and the raw body, compare in
constant time, and reject timestamps older than a few minutes (replays).

URLs that resolve to loopback, private, link-local (cloud metadata lives there), multicast
or otherwise reserved addresses are refused, at submission and again before each delivery,
unless ``ALLOW_PRIVATE_CALLBACKS=1``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ipaddress
import socket
import time
import urllib.error
import urllib.request
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, StrictStr

from offload.tasks import Context, task

from .. import telemetry, tracing

SIGNATURE_HEADER = "Offload-Signature"


class CallbackRefused(ValueError):
    """The URL may not be called (bad scheme, unresolvable, or a private address)."""


class DeliveryFailed(RuntimeError):
    """The receiver did not answer 2xx; the delivery job will be retried."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance: int = 300, now: float | None = None) -> bool:
    """What a receiver does: True when ``header`` signs ``body`` and is fresh."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def check_url(url: str, allow_private: bool) -> None:
    """Raise CallbackRefused unless ``url`` is http(s) and resolves only to public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise CallbackRefused("must not carry credentials")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError):
        raise CallbackRefused(f"host {parts.hostname!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise CallbackRefused(f"host {parts.hostname!r} resolves to a non-public address ({address})")


def deliver(  # noqa: PLR0913
    url: str,
    body: str,
    event: str,
    *,
    secret: str,
    delivery_id: str,
    allow_private: bool,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> dict:
    """POST one signed delivery; raises DeliveryFailed on anything but a 2xx answer.

    ``headers`` are sent too (the delivery's ``traceparent`` and ``tracestate``); they never
    replace offload's own."""
    check_url(url, allow_private)
    data = body.encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={
            **(headers or {}),
            "Content-Type": "application/json",
            "User-Agent": "offload-webhooks/1",
            "Offload-Event": event,
            "Offload-Delivery": delivery_id,
            SIGNATURE_HEADER: sign(secret, data),
        },
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"receiver answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"could not reach the receiver: {reason}") from None
    return {"status": status, "event": event}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could lead to an address check_url never saw; treat it as a failure."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        return None


class WebhookArgs(BaseModel):
    """Deliver a signed callback (internal: queued by workers when a job or batch ends, never by clients)."""

    model_config = ConfigDict(extra="forbid")

    url: StrictStr
    body: StrictStr
    event: Literal["job.finished", "job.failed", "batch.done"]


@task("webhook", args=WebhookArgs, queue="high", internal=True)
def deliver_webhook_job(args: WebhookArgs, ctx: Context) -> dict:
    """A callback delivery, signed with the worker's ``WEBHOOK_SECRET``; the job id is the delivery id.

    Each POST is a span of its own, under the delivery's attempt (so in the trace of the job it
    reports on), and carries it to the receiver as ``traceparent``."""
    settings = ctx.settings
    if settings.webhook_secret is None:
        raise DeliveryFailed("WEBHOOK_SECRET is not set on the worker; cannot sign the delivery")
    attempt = tracing.current.get()
    span = attempt.child() if attempt is not None else tracing.new_root()
    start_ns, answer, error = time.time_ns(), None, None
    try:
        answer = deliver(
            args.url, args.body, args.event,
            secret=settings.webhook_secret.get_secret_value(), delivery_id=ctx.job_id,
            allow_private=settings.allow_private_callbacks, timeout=settings.webhook_timeout_seconds,
            headers=span.headers(),
        )  # fmt: skip
        return answer
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if telemetry.enabled():
            parts = urlsplit(args.url)  # no path or query: they may hold the receiver's tokens
            telemetry.export("POST", span, attempt, start_ns=start_ns, kind="client", error=error, attributes={
                "http.request.method": "POST", "url.scheme": parts.scheme, "server.address": parts.hostname,
                "server.port": parts.port, "http.response.status_code": answer["status"] if answer else None,
                "offload.delivery.id": ctx.job_id, "offload.event": args.event,
                "offload.job.id": _job_of(args),
            })  # fmt: skip


def _job_of(args: WebhookArgs) -> str | None:
    """The job a delivery reports on (its body is that job's resource), for the span."""
    if not args.event.startswith("job."):
        return None
    try:
        return json.loads(args.body).get("id")
    except (ValueError, AttributeError):
        return None
