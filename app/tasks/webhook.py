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
unless ``ALLOW_PRIVATE_CALLBACKS=1``. The delivery then connects to the very addresses that
were judged (:func:`send`), never to what the name resolves to a moment later: a name whose
DNS answer changes between the check and the connection (DNS rebinding) cannot lead it to
an internal address. No proxy from the environment is used either (a proxy would resolve the
name itself).

The ``http_request`` task (:mod:`app.tasks.http_request`) sends its requests through the same
check, the same :func:`send` and a signature of the same scheme (:func:`sign_request`).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, StrictStr

from offload.tasks import Context, task

from .. import telemetry, tracing

SIGNATURE_HEADER = "Offload-Signature"


# The one shape of a URL offload sends to (a callback_url, an http_request's url), as a regular
# expression the document states (JSON Schema ``pattern``) and the server checks with the same
# text, so the two cannot disagree: http or https, a host name or an IP literal (RFC 3986's
# IPv4address and IPv6address, no zone id), a port from 1 to 65535, then a path or query of
# printable ASCII without "#" (a fragment is never sent). No "@": credentials never ride a URL.
# What it cannot say: a host name must resolve to public addresses, judged by check_url.
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "(?:" + "|".join(
    [
        rf"(?:{_H16}:){{6}}{_LS32}",
        rf"::(?:{_H16}:){{5}}{_LS32}",
        rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
) + ")"
_PORT = r"0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
#: The document's ``pattern`` of every URL field offload sends to.
URL_PATTERN = rf'^[Hh][Tt][Tt][Pp][Ss]?://(?:[A-Za-z0-9_.-]+|\[{_IPV6}\])(?::{_PORT})?(?:[/?][!-"$-~]*)?$'
_URL = re.compile(URL_PATTERN)
_PRINTABLE = re.compile(r"[!-~]+")


def shape_problem(url: str) -> str | None:
    """None when ``url`` has :data:`URL_PATTERN`'s shape; else why not, in words a client can act on."""
    if _URL.fullmatch(url):
        return None
    if not _PRINTABLE.fullmatch(url):
        return "must be printable ASCII without spaces: percent-encode the rest, and use the xn-- form of a host"
    if "#" in url:
        return "must not have a #fragment (it is never sent)"
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    if "@" in authority:
        return "must not carry credentials"
    return "must be an http:// or https:// URL with a host (a name or an IP address) and a port from 1 to 65535"


class CallbackRefused(ValueError):
    """The URL may not be called (bad scheme, unresolvable, or a private address)."""


class Unresolvable(CallbackRefused):
    """The URL's host does not resolve (now): unlike a private address, DNS may answer later."""


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


def _request_line(method: str, url: str) -> bytes:
    return f"{method} {url}\n".encode()


def sign_request(secret: str, method: str, url: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``Offload-Signature`` of an ``http_request``: the callbacks' scheme (``t=..,v1=..``,
    HMAC-SHA256 with ``WEBHOOK_SECRET`` of ``"<t>.<signed>"``), where what is signed is the
    method, a space, the URL, a newline and the body, not the body alone.

    Why not the body alone, as a callback: a client chooses an http_request's body and URL, so
    offload would otherwise sign anything for anyone. One client could have offload sign a
    made-up job resource, send it to its own server, and replay it, signature and all, to
    another client's callback receiver (one WEBHOOK_SECRET signs for every client); or replay
    a request meant for its own service to another client's. With the request line signed
    first, no http_request signature is a callback's (what follows ``"<t>."`` starts with a
    method, never with the ``{`` of a JSON body), and none is valid for another URL or method."""
    return sign(secret, _request_line(method, url) + body, timestamp)


def verify_request(  # noqa: PLR0913
    secret: str, method: str, url: str, body: bytes, header: str, tolerance: int = 300, now: float | None = None
) -> bool:
    """What a service receiving an ``http_request`` does: True when ``header`` signs this
    method, URL (the task's ``url``, as submitted) and body, and is fresh."""
    return verify(secret, _request_line(method, url) + body, header, tolerance, now)


@dataclass(frozen=True)
class Target:
    """A URL that :func:`check_url` let through, with the addresses it judged.

    ``addresses`` are ``getaddrinfo`` entries to connect to, in order; None when private
    addresses are allowed (nothing was resolved, so the name is resolved when connecting)."""

    scheme: str
    host: str
    port: int
    #: The request target: the path (``/`` when empty) and the query.
    path: str
    addresses: tuple[tuple, ...] | None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address a callback may go to: global and not multicast (an IPv4-mapped
    IPv6 address is judged as its IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(url: str, allow_private: bool) -> Target:
    """Raise CallbackRefused unless ``url`` is http(s) and resolves only to public addresses.

    Returns the :class:`Target` to :func:`send` to: the addresses judged here are the only
    ones it connects to. A URL that cannot be parsed (``http://[::1``, a port out of range)
    is refused like any other bad URL, never a ValueError escaping to the caller."""
    problem = shape_problem(url)
    if problem is not None:
        raise CallbackRefused(problem)
    parts = urlsplit(url)  # the shape above is one urlsplit parses: no ValueError
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if allow_private:
        return Target(parts.scheme, parts.hostname, port, path, None)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise Unresolvable(f"host {parts.hostname!r} does not resolve") from None
    except UnicodeError:  # not a name DNS can be asked about (a label over 63 characters): never will
        raise CallbackRefused(f"host {parts.hostname!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not is_public(address):
            shown = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped else address
            raise CallbackRefused(f"host {parts.hostname!r} resolves to a non-public address ({shown})")
    return Target(parts.scheme, parts.hostname, port, path, tuple(infos))


@dataclass(frozen=True)
class Answer:
    """What :func:`send` got back: the status, the headers as sent, and at most ``max_body``
    bytes of the body (``truncated`` when there was more)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool
    elapsed: float


class _Pinned:
    """An HTTP(S) connection to a :class:`Target`: the socket goes to the judged addresses,
    while Host, SNI and certificate checks use the name. ``abort`` (from another thread) ends
    whatever the connection is waiting for, which is how :func:`send` holds a whole request,
    not each read, to its timeout: a server that drips its answer a byte at a time cannot hold
    a worker for longer."""

    def _pin(self, target: Target, deadline: float) -> None:
        self.target, self.deadline, self.aborted = target, deadline, False
        # http.client's connect() (and HTTPS's, which wraps what it returns) opens the socket
        # through this attribute: replacing it pins the address and keeps everything else.
        self._create_connection = self._connect_pinned

    def _connect_pinned(self, address: tuple, timeout: float, source_address: object = None) -> socket.socket:
        if self.target.addresses is None:
            return socket.create_connection(address, timeout=self._remaining())
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in self.target.addresses:
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self._remaining())
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            sock.settimeout(timeout)
            return sock
        raise error or OSError("no address to connect to")

    def _remaining(self) -> float:
        return max(0.01, self.deadline - time.monotonic())

    def abort(self) -> None:
        self.aborted = True
        sock = self.sock
        if sock is not None:
            try:  # the plain socket's shutdown, not SSLSocket's (which is not safe across threads)
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


class _PinnedHTTP(_Pinned, http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float, deadline: float, context: ssl.SSLContext | None) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._pin(target, deadline)


class _PinnedHTTPS(_Pinned, http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, deadline: float, context: ssl.SSLContext | None) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context or ssl.create_default_context())
        self._pin(target, deadline)


def send(  # noqa: PLR0913
    target: Target,
    method: str,
    headers: dict[str, str],
    body: bytes,
    *,
    timeout: float,
    max_body: int,
    context: ssl.SSLContext | None = None,
) -> Answer:
    """Send one request to a checked ``target`` and read at most ``max_body`` bytes of its answer.

    Connects only to the target's judged addresses (see :class:`_Pinned`), follows no redirect
    (a redirect could lead where :func:`check_url` never looked: the 3xx is the answer), uses no
    proxy, and holds the whole exchange to ``timeout`` seconds: past it, TimeoutError. Anything
    else that goes wrong on the way raises OSError or http.client.HTTPException."""
    started = time.monotonic()
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = kind(target, timeout, started + timeout, context)
    watchdog = threading.Timer(timeout, connection.abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(method, target.path, body=body or None, headers=headers)
        response = connection.getresponse()
        data = b""
        while len(data) <= max_body:
            chunk = response.read(max_body + 1 - len(data))
            if not chunk:
                break
            data += chunk
        return Answer(
            status=response.status,
            reason=response.reason,
            headers=response.getheaders(),
            body=data[:max_body],
            truncated=len(data) > max_body,
            elapsed=time.monotonic() - started,
        )
    except (OSError, http.client.HTTPException) as exc:
        if connection.aborted:
            raise TimeoutError(f"no complete answer within {timeout:g} s") from None
        raise exc from None
    finally:
        watchdog.cancel()
        connection.close()


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
    replace offload's own, whatever their case."""
    target = check_url(url, allow_private)
    data = body.encode("utf-8")
    own = {
        "Content-Type": "application/json",
        "User-Agent": "offload-webhooks/1",
        "Offload-Event": event,
        "Offload-Delivery": delivery_id,
        SIGNATURE_HEADER: sign(secret, data),
    }
    taken = {name.lower() for name in own}
    extra = {name: value for name, value in (headers or {}).items() if name.lower() not in taken}
    try:
        answer = send(target, "POST", {**extra, **own}, data, timeout=timeout, max_body=0)
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryFailed(f"could not reach the receiver: {exc or type(exc).__name__}") from None
    if not 200 <= answer.status < 300:
        raise DeliveryFailed(f"receiver answered {answer.status}")
    return {"status": answer.status, "event": event}


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
