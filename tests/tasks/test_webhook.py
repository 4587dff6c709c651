"""Webhooks (app/tasks/webhook.py): ``sign`` and ``verify`` (the receiver's side), ``check_url``
(which URLs may be called) and ``deliver`` against a real HTTP server on loopback, as plain
functions; then callbacks end to end, signed and retried, through the API and a worker."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fakeredis
import pytest

from app.tasks import webhook

from ..conftest import free_port, wait_until
from ..receiver import Receiver

SECRET = "whsec-unit-test"
BODY = b'{"id": "8d1e", "status": "finished"}'
NOW = 1_750_000_000


# --- sign and verify ------------------------------------------------------------------------


def test_sign_is_an_hmac_sha256_of_the_timestamp_a_dot_and_the_body():
    digest = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert webhook.sign(SECRET, BODY, NOW) == f"t={NOW},v1={digest}"
    assert webhook.sign(SECRET, BODY, NOW) == webhook.sign(SECRET, BODY, NOW)  # deterministic
    assert webhook.sign(SECRET, BODY, NOW + 1) != webhook.sign(SECRET, BODY, NOW)
    assert webhook.sign("another-secret", BODY, NOW) != webhook.sign(SECRET, BODY, NOW)


def test_sign_stamps_the_current_time_when_given_none():
    before = int(time.time())
    header = webhook.sign(SECRET, BODY)
    stamp = int(header.split(",", 1)[0].removeprefix("t="))
    assert before <= stamp <= int(time.time())
    assert webhook.verify(SECRET, BODY, header)


def test_verify_accepts_a_fresh_signature_of_the_same_body_with_the_same_secret():
    header = webhook.sign(SECRET, BODY, NOW)
    assert webhook.verify(SECRET, BODY, header, now=NOW)
    # Within the tolerance (300 s by default) on either side: clocks differ a little.
    assert webhook.verify(SECRET, BODY, header, now=NOW + 300)
    assert webhook.verify(SECRET, BODY, header, now=NOW - 300)
    assert webhook.verify(SECRET, BODY, header, tolerance=10, now=NOW + 10.0)


def test_verify_refuses_another_secret_another_body_or_a_moved_timestamp():
    header = webhook.sign(SECRET, BODY, NOW)
    assert not webhook.verify("another-secret", BODY, header, now=NOW)
    assert not webhook.verify(SECRET, BODY + b" ", header, now=NOW)
    assert not webhook.verify(SECRET, BODY.replace(b"finished", b"failed"), header, now=NOW)
    # The timestamp is signed too: a replay cannot be freshened by rewriting it.
    moved = header.replace(f"t={NOW}", f"t={NOW + 600}")
    assert not webhook.verify(SECRET, BODY, moved, now=NOW + 600)


def test_verify_refuses_a_stale_or_future_timestamp():
    header = webhook.sign(SECRET, BODY, NOW)
    assert not webhook.verify(SECRET, BODY, header, now=NOW + 301)  # a replay, five minutes on
    assert not webhook.verify(SECRET, BODY, header, now=NOW - 301)
    assert not webhook.verify(SECRET, BODY, header, tolerance=10, now=NOW + 11)


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "v1=abc", "t=,v1=abc", "t=soon,v1=abc", f"t={NOW}", f"t={NOW},v1=", f"t={NOW},v1={'0' * 64}", f"t={NOW};v1=x"],
)
def test_verify_refuses_a_malformed_header(header):
    assert webhook.verify(SECRET, BODY, header, now=NOW) is False


# --- check_url ------------------------------------------------------------------------------


class Resolver:
    """Stands in for DNS: a name resolves only to what a test says (``answers[name]``: a list
    of addresses, or an exception to raise); ``asked`` records every lookup."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str] | BaseException] = {}
        self.asked: list[tuple[str, int]] = []

    def getaddrinfo(self, host, port, *args, **kwargs):
        self.asked.append((host, port))
        answer = self.answers[host]  # a name the test did not list is a failure
        if isinstance(answer, BaseException):
            raise answer
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in answer
        ]


@pytest.fixture
def dns(monkeypatch) -> Resolver:
    resolver = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    return resolver


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "file:///etc/passwd", "javascript:alert(1)", "example.com/hook", "//example.com/hook",
     "http://", "https:///hook", "gopher://example.com/", "http://[::1", "http://example.com:99999/",
     "https://example.com:port/"],
)  # fmt: skip
@pytest.mark.parametrize("allow_private", [False, True])
def test_check_url_wants_http_or_https_with_a_host(url, allow_private):
    with pytest.raises(webhook.CallbackRefused, match="http:// or https:// URL with a host"):
        webhook.check_url(url, allow_private)


@pytest.mark.parametrize("url", ["http://[::1", "http://example.com:99999/"])
def test_a_callback_url_that_cannot_be_parsed_is_a_422_not_a_500(monkeypatch, url):
    """urlsplit raises ValueError for these; check_url used to let it escape as a 500."""
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    from app import create_app
    from app.jobs.store import JobQueue
    from app.settings import get_settings

    settings = get_settings()
    app = create_app(settings, job_queue=JobQueue(fakeredis.FakeRedis(server=fakeredis.FakeServer()), settings))
    response = app.test_client().post("/jobs", json={"type": "count_words", "text": "a", "callback_url": url})
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"field": "callback_url", "message": "must be an http:// or https:// URL with a host (a name or an IP address) and a port from 1 to 65535"}]


@pytest.mark.parametrize("url", ["https://user:pw@example.com/hook", "https://user@example.com/hook", "http://:pw@example.com/"])
@pytest.mark.parametrize("allow_private", [False, True])
def test_check_url_refuses_credentials_in_the_url(url, allow_private):
    with pytest.raises(webhook.CallbackRefused, match="credentials"):
        webhook.check_url(url, allow_private)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "http://127.1/",  # short forms and numbers are parsed as the resolver does
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0.0.0.0/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://169.254.169.254/latest/meta-data",  # cloud metadata: link-local
        "http://224.0.0.1/",  # multicast
        "http://239.255.255.250:1900/",
        "http://255.255.255.255/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped: judged as the IPv4 address
        "http://[::ffff:169.254.169.254]/",
        "http://[ff02::1]/",
    ],
)
def test_check_url_refuses_addresses_that_are_not_public(url):
    with pytest.raises(webhook.CallbackRefused, match="non-public address"):
        webhook.check_url(url, allow_private=False)
    webhook.check_url(url, allow_private=True)  # ALLOW_PRIVATE_CALLBACKS=1


@pytest.mark.parametrize("url", ["http://93.184.215.14/hook", "https://8.8.8.8:8443/x?y=1", "https://[2606:4700:4700::1111]/"])
def test_check_url_accepts_public_addresses(url):
    webhook.check_url(url, allow_private=False)


def test_check_url_judges_every_address_a_name_resolves_to(dns):
    dns.answers["hooks.example.com"] = ["203.0.113.7", "93.184.215.14"]  # 203.0.113.0/24 is for documentation
    with pytest.raises(webhook.CallbackRefused, match=r"'hooks.example.com' resolves to a non-public address \(203.0.113.7\)"):
        webhook.check_url("https://hooks.example.com/offload", allow_private=False)
    dns.answers["public.example.com"] = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    webhook.check_url("https://public.example.com/offload", allow_private=False)
    # One private address among public ones is enough to refuse (a rebinding name may list both).
    dns.answers["mixed.example.com"] = ["93.184.215.14", "10.0.0.5"]
    with pytest.raises(webhook.CallbackRefused, match=r"\(10.0.0.5\)"):
        webhook.check_url("http://mixed.example.com/", allow_private=False)
    # A scoped IPv6 link-local answer is still link-local.
    dns.answers["scoped.example.com"] = ["fe80::1%eth0"]
    with pytest.raises(webhook.CallbackRefused, match=r"\(fe80::1\)"):
        webhook.check_url("http://scoped.example.com/", allow_private=False)
    assert ("hooks.example.com", 443) in dns.asked and ("mixed.example.com", 80) in dns.asked


@pytest.mark.parametrize("error", [socket.gaierror(socket.EAI_NONAME, "Name or service not known"), UnicodeError("label too long")])
def test_check_url_refuses_a_name_that_does_not_resolve(dns, error):
    dns.answers["nowhere.example"] = error
    with pytest.raises(webhook.CallbackRefused, match="'nowhere.example' does not resolve") as caught:
        webhook.check_url("https://nowhere.example/hook", allow_private=False)
    # DNS may answer later (an http_request retries); a name it cannot be asked about never will.
    assert isinstance(caught.value, webhook.Unresolvable) == isinstance(error, socket.gaierror)


def test_check_url_resolves_nothing_when_private_addresses_are_allowed(dns):
    webhook.check_url("http://internal.service.local:8080/hook", allow_private=True)
    assert dns.asked == []


# --- deliver, to a real HTTP server ---------------------------------------------------------


class Answering:
    """An HTTP server on loopback answering every POST with ``status`` (and ``headers``),
    recording what it got."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.requests: list[tuple[str, dict, bytes]] = []
        answering = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answering.requests.append((self.path, dict(self.headers), body))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/offload"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def answering():
    servers: list[Answering] = []

    def make(status: int, headers: dict[str, str] | None = None) -> Answering:
        servers.append(Answering(status, headers))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _deliver(url: str, **overrides):
    arguments = {"secret": SECRET, "delivery_id": "delivery-1", "allow_private": True, "timeout": 5} | overrides
    return webhook.deliver(url, BODY.decode(), "job.finished", **arguments)


def test_deliver_posts_the_body_signed_with_the_event_and_delivery_id(answering):
    receiver = answering(204)
    assert _deliver(receiver.url) == {"status": 204, "event": "job.finished"}
    [(path, headers, body)] = receiver.requests
    assert path == "/hooks/offload" and body == BODY
    assert headers["Content-Type"] == "application/json"
    assert headers["Offload-Event"] == "job.finished" and headers["Offload-Delivery"] == "delivery-1"
    assert webhook.verify(SECRET, body, headers[webhook.SIGNATURE_HEADER])
    assert not webhook.verify("another-secret", body, headers[webhook.SIGNATURE_HEADER])
    assert json.loads(body) == json.loads(BODY)


def test_deliver_sends_the_trace_headers_it_is_given_but_never_in_place_of_its_own(answering):
    receiver = answering(204)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    _deliver(receiver.url, headers={"traceparent": traceparent, "tracestate": "a=1", "offload-event": "forged"})
    [(_, headers, _)] = receiver.requests
    headers = {name.lower(): value for name, value in headers.items()}
    assert headers["traceparent"] == traceparent and headers["tracestate"] == "a=1"
    assert headers["offload-event"] == "job.finished"


@pytest.mark.parametrize("status", [400, 404, 410, 500, 503])
def test_deliver_fails_on_an_answer_that_is_not_2xx(answering, status):
    receiver = answering(status)
    with pytest.raises(webhook.DeliveryFailed, match=f"receiver answered {status}"):
        _deliver(receiver.url)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_deliver_follows_no_redirect(answering, status):
    """A redirect could lead where check_url never looked: it is a failure, never followed."""
    elsewhere = answering(204)
    receiver = answering(status, {"Location": elsewhere.url})
    with pytest.raises(webhook.DeliveryFailed, match=f"receiver answered {status}"):
        _deliver(receiver.url)
    assert len(receiver.requests) == 1 and elsewhere.requests == []


def test_deliver_fails_when_nobody_listens():
    with pytest.raises(webhook.DeliveryFailed, match="could not reach the receiver"):
        _deliver(f"http://127.0.0.1:{free_port()}/hook", timeout=2)


def test_deliver_checks_the_url_before_sending_anything(answering):
    receiver = answering(204)
    with pytest.raises(webhook.CallbackRefused, match="non-public address"):
        _deliver(receiver.url, allow_private=False)
    assert receiver.requests == []


# --- callbacks end to end -------------------------------------------------------------------


@pytest.fixture
def receiver():
    server = Receiver(fail_first=1)
    yield server
    server.close()


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_callback_is_signed_and_retried_until_delivered(stack_factory, receiver):
    secret = "whsec-test-123"
    stack = stack_factory(
        WEBHOOK_SECRET=secret, ALLOW_PRIVATE_CALLBACKS="1", RETRY_BACKOFF_BASE_SECONDS="1", WEBHOOK_MAX_RETRIES="3"
    )
    job_id = stack.post(
        {"type": "count_words", "text": "call me back", "callback_url": receiver.url, "metadata": {"order": 9}}
    ).json()["id"]
    assert stack.wait_for(job_id)["status"] == "finished"
    wait_until(lambda: receiver.deliveries, timeout=30, what="the callback")
    headers, body = receiver.deliveries[0]
    payload = json.loads(body)
    assert payload["id"] == job_id and payload["status"] == "finished"
    assert payload["result"]["words"] == 3 and payload["metadata"] == {"order": 9}
    assert headers["Offload-Event"] == "job.finished"
    assert webhook.verify(secret, body, headers["Offload-Signature"])
    assert not webhook.verify("wrong-secret", body, headers["Offload-Signature"])
    assert receiver.fail_first == 0  # the first attempt was refused, then retried


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_callback_of_a_failed_job(stack_factory, receiver):
    receiver.fail_first = 0
    stack = stack_factory(WEBHOOK_SECRET="s", ALLOW_PRIVATE_CALLBACKS="1")
    job_id = stack.post({"type": "fail", "message": "nope", "callback_url": receiver.url}).json()["id"]
    assert stack.wait_for(job_id)["status"] == "failed"
    wait_until(lambda: receiver.deliveries, timeout=20, what="the callback")
    headers, body = receiver.deliveries[0]
    assert headers["Offload-Event"] == "job.failed"
    assert json.loads(body)["error"] == {"type": "RuntimeError", "message": "nope"}


@pytest.mark.integration
@pytest.mark.deployments("default", "cluster")
def test_private_callback_urls_are_refused_by_default(stack_factory):
    stack = stack_factory(workers=0, WEBHOOK_SECRET="s")
    for url in ("http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "http://[::1]/"):
        response = stack.post({"type": "noop", "callback_url": url})
        assert response.status_code == 422, url
        assert response.json()["errors"][0]["field"] == "callback_url"
