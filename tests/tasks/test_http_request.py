"""The ``http_request`` task (app/tasks/http_request.py), run as a plain function with
``offload.testing.run`` against a real HTTP server on loopback: what the service receives
(signed), what each kind of answer makes of the job (a result, a retry, a failure), and what
the arguments model refuses at submission."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.settings import Settings
from app.tasks import webhook
from app.tasks.http_request import (
    MAX_RESULT_BODY_BYTES,
    HttpRequestArgs,
    HttpRequestFailed,
    http_request,
    retry_after,
)
from offload.tasks import PermanentFailure, RetryLater
from offload.testing import LocalContext, run

from ..conftest import free_port

SECRET = "whsec-http-request-test"
TOKEN = "Bearer tok-sup3r-s3cret"  # a header value that must never show in an error


def make_settings(**overrides) -> Settings:
    values = {"webhook_secret": SECRET, "allow_private_callbacks": True} | overrides
    return Settings(**values)


def context(settings: Settings | None = None, **kwargs) -> LocalContext:
    return LocalContext(http_request, settings=settings if settings is not None else make_settings(), **kwargs)


# --- a real service -------------------------------------------------------------------------


class Service:
    """An HTTP server on loopback answering every method from ``answer`` (status, headers,
    body; ``delay`` seconds first; ``drip`` seconds between the bytes of its head), recording
    each request as (method, path, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.answer: dict = {"status": 200}
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                service.requests.append((self.command, self.path, dict(self.headers), body))
                answer = service.answer
                time.sleep(answer.get("delay", 0))
                content = answer.get("body", b"")
                head = f"HTTP/1.1 {answer['status']} {answer.get('reason', 'Whatever')}\r\n"
                for name, value in answer.get("headers", []):
                    head += f"{name}: {value}\r\n"
                head += f"Content-Length: {len(content)}\r\nConnection: close\r\n\r\n"
                try:
                    if answer.get("drip"):
                        for byte in head.encode():
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(answer["drip"])
                    else:
                        self.wfile.write(head.encode())
                    if self.command != "HEAD":
                        self.wfile.write(content)
                except OSError:  # the client gave up (a timeout test)
                    pass
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/tasks/reindex?shop=42&sig=q-s3cret"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service():
    server = Service()
    yield server
    server.close()


def assert_discreet(exc: BaseException) -> None:
    """An error never shows the secret, a header's value or the URL's path and query."""
    text = str(exc)
    for secret in (SECRET, TOKEN, "tok-sup3r-s3cret", "q-s3cret", "shop=42", "/tasks/reindex"):
        assert secret not in text, text


# --- success, signed ------------------------------------------------------------------------


def test_sends_the_request_signed_and_returns_status_headers_and_body(service):
    service.answer = {"status": 201, "reason": "Created", "headers": [("X-Order", "42"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
                      "body": '{"ok": true, "word": "déjà"}'.encode()}  # fmt: skip
    body = '{"shop": 42}'
    result = run(
        http_request,
        context(job_id="job-7", attempt=2),
        url=service.url,
        headers={"Authorization": TOKEN, "Content-Type": "application/json"},
        body=body,
    )
    [(method, path, headers, received)] = service.requests
    assert (method, path, received) == ("POST", "/tasks/reindex?shop=42&sig=q-s3cret", body.encode())
    assert headers["Authorization"] == TOKEN and headers["Content-Type"] == "application/json"
    assert headers["Offload-Delivery"] == "job-7" and headers["Offload-Attempt"] == "2"
    assert headers["Offload-Event"] == "http_request"
    assert headers["Host"] == f"127.0.0.1:{service.port}"
    # What a service in any language does: HMAC-SHA256 of "<t>.<METHOD> <url>\n<body>", fresh.
    signature = headers["Offload-Signature"]
    t, v1 = (part.split("=", 1)[1] for part in signature.split(","))
    expected = hmac.new(SECRET.encode(), f"{t}.POST {service.url}\n".encode() + received, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, expected) and abs(time.time() - int(t)) < 60
    assert webhook.verify_request(SECRET, "POST", service.url, received, signature)
    assert not webhook.verify_request("another-secret", "POST", service.url, received, signature)
    assert not webhook.verify_request(SECRET, "PUT", service.url, received, signature)
    assert not webhook.verify_request(SECRET, "POST", service.url.replace("shop=42", "shop=43"), received, signature)
    # Never a callback's signature: a client cannot have offload sign a made-up job resource.
    assert not webhook.verify(SECRET, received, signature)
    assert result["status"] == 201
    assert result["headers"]["x-order"] == "42" and result["headers"]["set-cookie"] == "a=1, b=2"
    assert all(name == name.lower() for name in result["headers"])
    assert result["body"] == '{"ok": true, "word": "déjà"}' and result["body_truncated"] is False
    assert 0 < result["elapsed_ms"] < 5000
    json.dumps(result)  # a job's result is JSON


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "PATCH", "DELETE"])
def test_sends_each_method(service, method):
    service.answer = {"status": 200, "body": b"hello"}
    body = "" if method in ("GET", "HEAD") else "payload"
    result = run(http_request, context(), url=service.url, method=method, body=body)
    [(seen, _, headers, received)] = service.requests
    assert seen == method and received == body.encode()
    assert webhook.verify_request(SECRET, method, service.url, received, headers["Offload-Signature"])
    assert result["body"] == ("" if method == "HEAD" else "hello")


def test_content_type_and_user_agent_default_but_the_request_may_set_them(service):
    run(http_request, context(), url=service.url, body="plain words")
    run(http_request, context(), url=service.url, body="{}", headers={"content-type": "application/json", "user-agent": "shop/2"})
    run(http_request, context(), url=service.url)
    first, second, third = (headers for _, _, headers, _ in service.requests)
    assert first["Content-Type"] == "text/plain; charset=utf-8" and first["User-Agent"] == "offload-http-request/1"
    assert second["content-type"] == "application/json" and second["user-agent"] == "shop/2"
    assert "Content-Type" not in second and "User-Agent" not in second  # the request's own, not twice
    assert "Content-Type" not in third and third["Content-Length"] == "0"


# --- answers that are not 2xx --------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_a_busy_or_failing_service_is_retried_with_the_jobs_backoff(service, status):
    service.answer = {"status": status, "reason": "Busy", "body": b"try later"}
    with pytest.raises(HttpRequestFailed, match=f"POST http://127.0.0.1:{service.port} answered {status} Busy") as caught:
        run(http_request, context(), url=service.url, headers={"Authorization": TOKEN})
    assert not isinstance(caught.value, (PermanentFailure, RetryLater))
    assert_discreet(caught.value)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_honoured(service, status):
    service.answer = {"status": status, "headers": [("Retry-After", "7")]}
    with pytest.raises(RetryLater, match=f"answered {status}") as caught:
        run(http_request, context(), url=service.url, headers={"Authorization": TOKEN})
    assert caught.value.after == 7
    assert_discreet(caught.value)


def test_retry_after_as_an_http_date_is_honoured(service):
    when = datetime.now(UTC) + timedelta(seconds=120)
    service.answer = {"status": 429, "headers": [("Retry-After", format_datetime(when, usegmt=True))]}
    with pytest.raises(RetryLater) as caught:
        run(http_request, context(), url=service.url)
    assert 110 <= caught.value.after <= 121


def test_retry_after_is_bounded_to_an_hour(service):
    service.answer = {"status": 503, "headers": [("Retry-After", "86400")]}
    with pytest.raises(RetryLater) as caught:
        run(http_request, context(), url=service.url)
    assert caught.value.after == 3600


def test_an_unreadable_retry_after_leaves_the_jobs_backoff(service):
    service.answer = {"status": 503, "headers": [("Retry-After", "soon")]}
    with pytest.raises(HttpRequestFailed, match="answered 503"):
        run(http_request, context(), url=service.url)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0), ("120", 120), (" 30 ", 30), ("999999", 3600), ("Wed, 21 Oct 2015 07:28:00 GMT", 0),
     ("Thu, 01 Jan 2099 00:00:00 GMT", 3600), ("Sun, 06 Nov 1994 08:49:37 GMT", 0)],
)  # fmt: skip
def test_retry_after_reads_seconds_and_http_dates(value, seconds):
    assert retry_after(value) == seconds


def test_retry_after_of_an_http_date_counts_from_now():
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("Tue, 01 Jan 2030 12:01:30 GMT", now=now.timestamp()) == 90


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "٣", "Mon, 99 Foo 2015", "12 GMT"])
def test_retry_after_that_cannot_be_read_is_none(value):
    assert retry_after(value) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_a_4xx_answer_fails_the_job_without_retry(service, status):
    service.answer = {"status": status, "reason": "Nope", "headers": [("Retry-After", "5")]}
    with pytest.raises(PermanentFailure, match=f"answered {status} Nope") as caught:
        run(http_request, context(), url=service.url, headers={"Authorization": TOKEN})
    assert_discreet(caught.value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_fails_the_job(service, status):
    elsewhere = Service()
    try:
        service.answer = {"status": status, "headers": [("Location", elsewhere.url)]}
        with pytest.raises(PermanentFailure, match=f"answered {status}.*redirects are not followed"):
            run(http_request, context(), url=service.url)
        assert len(service.requests) == 1 and elsewhere.requests == []
    finally:
        elsewhere.close()


# --- no answer ------------------------------------------------------------------------------


def test_a_slow_service_times_out_and_is_retried(service):
    service.answer = {"status": 200, "delay": 3}
    started = time.monotonic()
    with pytest.raises(HttpRequestFailed, match="no complete answer within 1 s") as caught:
        run(http_request, context(), url=service.url, request_timeout_seconds=1)
    assert time.monotonic() - started < 2.5
    assert_discreet(caught.value)


def test_the_timeout_bounds_the_whole_request_not_each_read(service):
    """A service dripping its answer a byte every 0.2 s never lets one read wait a second,
    yet the attempt ends after one second all the same."""
    service.answer = {"status": 200, "drip": 0.2}
    started = time.monotonic()
    with pytest.raises(HttpRequestFailed, match="no complete answer within 1 s"):
        run(http_request, context(), url=service.url, request_timeout_seconds=1)
    assert time.monotonic() - started < 2.5


def test_nobody_listening_is_retried():
    url = f"http://127.0.0.1:{free_port()}/x?sig=q-s3cret"
    with pytest.raises(HttpRequestFailed, match="the request failed: ConnectionRefusedError") as caught:
        run(http_request, context(), url=url, headers={"Authorization": TOKEN})
    assert not isinstance(caught.value, PermanentFailure)
    assert_discreet(caught.value)


# --- the body of the answer -----------------------------------------------------------------


def test_a_long_body_is_cut_to_64_kib_and_said_so(service):
    service.answer = {"status": 200, "body": b"a" * (MAX_RESULT_BODY_BYTES + 1000)}
    result = run(http_request, context(), url=service.url)
    assert result["body"] == "a" * MAX_RESULT_BODY_BYTES and result["body_truncated"] is True


def test_a_body_of_exactly_64_kib_is_whole(service):
    service.answer = {"status": 200, "body": b"b" * MAX_RESULT_BODY_BYTES}
    result = run(http_request, context(), url=service.url)
    assert len(result["body"]) == MAX_RESULT_BODY_BYTES and result["body_truncated"] is False


def test_a_character_cut_by_the_bound_is_dropped_not_garbled(service):
    service.answer = {"status": 200, "body": b"a" * (MAX_RESULT_BODY_BYTES - 1) + "é".encode() * 10}
    result = run(http_request, context(), url=service.url)
    assert result["body"] == "a" * (MAX_RESULT_BODY_BYTES - 1) and result["body_truncated"] is True


def test_a_body_that_is_not_utf8_is_decoded_with_replacements(service):
    service.answer = {"status": 200, "body": b"ok \xff\xfe end"}
    assert run(http_request, context(), url=service.url)["body"] == "ok \ufffd\ufffd end"


# --- the SSRF guard -------------------------------------------------------------------------


def test_a_private_address_is_refused_unless_allowed(service):
    with pytest.raises(PermanentFailure, match="non-public address") as caught:
        run(http_request, context(make_settings(allow_private_callbacks=False)), url=service.url)
    assert service.requests == []
    assert_discreet(caught.value)
    run(http_request, context(make_settings(allow_private_callbacks=True)), url=service.url)
    assert len(service.requests) == 1


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1/x", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"],
)  # fmt: skip
def test_a_private_literal_address_is_refused_at_submission(url):
    strict = {"settings": make_settings(allow_private_callbacks=False)}
    with pytest.raises(ValidationError, match="non-public address") as caught:
        HttpRequestArgs.model_validate({"url": url}, context=strict)
    assert caught.value.errors()[0]["loc"] == ("url",)
    HttpRequestArgs.model_validate({"url": url}, context={"settings": make_settings(allow_private_callbacks=True)})


class Resolver:
    """Stands in for DNS: ``answers[name]`` is a list of addresses for each lookup in turn."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def getaddrinfo(self, host, port, *args, **kwargs):
        self.asked.append(host)
        addresses = self.answers[host].pop(0)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]


def test_the_address_judged_is_the_one_connected_to_so_dns_rebinding_cannot_reach_inside(service, monkeypatch):
    """The name resolves to a public address when judged and to loopback right after (a
    rebinding name): the request goes to the public one, and the service on loopback sees nothing."""
    resolver = Resolver({"rebind.example": [["93.184.215.14"], ["127.0.0.1"], ["127.0.0.1"]]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    with pytest.raises(HttpRequestFailed):
        run(
            http_request,
            context(make_settings(allow_private_callbacks=False)),
            url=f"http://rebind.example:{service.port}/x",
            request_timeout_seconds=1,
        )
    assert resolver.asked == ["rebind.example"] and service.requests == []


def test_send_connects_to_the_pinned_address_and_names_the_host(service, monkeypatch):
    def no_dns(*args, **kwargs):
        raise AssertionError("send must not resolve a pinned target's name again")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    target = webhook.Target("http", "api.example", service.port, "/p?q=1",
                            ((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", service.port)),))  # fmt: skip
    answer = webhook.send(target, "GET", {}, b"", timeout=5, max_body=100)
    assert answer.status == 200
    [(_, path, headers, _)] = service.requests
    assert path == "/p?q=1" and headers["Host"] == f"api.example:{service.port}"


def test_a_name_that_does_not_resolve_is_retried(monkeypatch):
    def nowhere(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nowhere)
    with pytest.raises(HttpRequestFailed, match="does not resolve"):
        run(http_request, context(make_settings(allow_private_callbacks=False)), url="https://api.example/x")


# --- HTTPS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for ``localhost`` (openssl), and a file to trust it by."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture
def tls_service(service, certificate):
    key, cert = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    service.server.socket = context.wrap_socket(service.server.socket, server_side=True)
    return service


def test_https_checks_the_certificate_against_the_name_while_connecting_to_the_pinned_address(tls_service, certificate):
    trusted = ssl.create_default_context(cafile=str(certificate[1]))
    port = tls_service.port
    pinned = ((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),)
    answer = webhook.send(webhook.Target("https", "localhost", port, "/", pinned), "GET", {}, b"", timeout=5, max_body=10, context=trusted)
    assert answer.status == 200
    with pytest.raises(ssl.SSLCertVerificationError):  # same address, another name: the certificate does not match
        webhook.send(webhook.Target("https", "other.example", port, "/", pinned), "GET", {}, b"", timeout=5, max_body=10, context=trusted)


def test_the_task_speaks_https_and_refuses_an_untrusted_certificate(tls_service, certificate, monkeypatch):
    url = f"https://localhost:{tls_service.port}/secure"
    with pytest.raises(HttpRequestFailed, match="SSLCertVerificationError"):
        run(http_request, context(), url=url)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[1]))  # what the default context trusts
    assert run(http_request, context(), url=url)["status"] == 200


# --- no secret, canceled --------------------------------------------------------------------


def test_without_a_webhook_secret_nothing_is_sent(service):
    with pytest.raises(PermanentFailure, match="needs WEBHOOK_SECRET"):
        run(http_request, context(make_settings(webhook_secret=None)), url=service.url)
    with pytest.raises(PermanentFailure, match="needs WEBHOOK_SECRET"):
        run(http_request, LocalContext(http_request), url=service.url)  # no settings at all
    assert service.requests == []


def test_without_a_webhook_secret_submission_is_refused():
    with pytest.raises(ValidationError, match=r"not enabled on this server \(no WEBHOOK_SECRET\)") as caught:
        HttpRequestArgs.model_validate({"url": "https://api.example/x"}, context={"settings": make_settings(webhook_secret=None)})
    assert caught.value.errors()[0]["loc"] == ("url",)


def test_a_canceled_job_sends_nothing(service):
    ctx = context()
    ctx.cancel_requested = True
    with pytest.raises(PermanentFailure, match="canceled"):
        run(http_request, ctx, url=service.url)
    assert service.requests == []


# --- the arguments model --------------------------------------------------------------------


def test_defaults_and_the_example():
    args = HttpRequestArgs.model_validate({"url": "https://api.example/x"})
    assert (args.method, args.headers, args.body, args.request_timeout_seconds) == ("POST", {}, "", 30)
    assert http_request.example and HttpRequestArgs.model_validate(dict(http_request.example))
    assert http_request.max_retries == 5 and http_request.description.startswith("Send an HTTP request")


@pytest.mark.parametrize(
    "fields",
    [{"method": "OPTIONS"}, {"method": "post"}, {"request_timeout_seconds": 0}, {"request_timeout_seconds": 301},
     {"request_timeout_seconds": True}, {"request_timeout_seconds": "5"}, {"body": 5}, {"headers": []},
     {"headers": {"X-N": 5}}, {"timeout_seconds": 5}, {"unknown": 1}],
)  # fmt: skip
def test_bad_fields_are_refused(fields):
    with pytest.raises(ValidationError):
        HttpRequestArgs.model_validate({"url": "https://api.example/x"} | fields)


@pytest.mark.parametrize(
    ("headers", "message"),
    [({"Host": "evil.example"}, "Host cannot be set: offload writes"), ({"content-length": "5"}, "cannot be set"),
     ({"Transfer-Encoding": "chunked"}, "cannot be set"), ({"Connection": "close"}, "cannot be set"),
     ({"Upgrade": "h2c"}, "cannot be set"), ({"TE": "trailers"}, "cannot be set"), ({"Expect": "100-continue"}, "cannot be set"),
     ({"Proxy-Authorization": TOKEN}, "cannot be set"), ({"Offload-Signature": "t=1,v1=00"}, "offload's own"),
     ({"offload-delivery": "x"}, "offload's own"), ({"Offload-Anything": "x"}, "offload's own"),
     ({"X-Token": TOKEN + "\r\nX-Injected: 1"}, "printable ASCII"), ({"X-Token": TOKEN + "\n"}, "printable ASCII"),
     ({"X-Token": TOKEN + "\x00"}, "printable ASCII"), ({"X-Token": TOKEN + "é"}, "printable ASCII"),
     ({"X-Token": "a" * 8193}, "at most 8192 characters"), ({"Bad Name": "x"}, "'Bad Name' is not a header name"),
     ({"X:Colon": "x"}, "not a header name"), ({"": "x"}, "not a header name"), ({"X-Ünï": "x"}, "not a header name"),
     ({"X-A": "1", "x-a": "2"}, "given twice"), ({f"X-{i}": "v" for i in range(51)}, "at most 50"),
     ({f"X-{i}": "v" * 8000 for i in range(5)}, "at most 32768 bytes")],
)  # fmt: skip
def test_headers_that_cannot_be_sent_are_refused_naming_the_field_but_never_the_value(headers, message):
    with pytest.raises(ValidationError, match=message) as caught:
        HttpRequestArgs.model_validate({"url": "https://api.example/x", "headers": headers})
    assert caught.value.errors()[0]["loc"][0] == "headers"
    assert "tok-sup3r-s3cret" not in str(caught.value)


def test_a_get_or_head_has_no_body():
    for method in ("GET", "HEAD"):
        with pytest.raises(ValidationError, match=f"a {method} request has no body"):
            HttpRequestArgs.model_validate({"url": "https://api.example/x", "method": method, "body": "x"})
    HttpRequestArgs.model_validate({"url": "https://api.example/x", "method": "DELETE", "body": "x"})


def test_the_body_is_bounded_by_max_text_bytes():
    tight = {"settings": make_settings(max_text_bytes=10)}
    HttpRequestArgs.model_validate({"url": "https://api.example/x", "body": "é" * 5}, context=tight)
    with pytest.raises(ValidationError, match="at most 10 bytes of UTF-8") as caught:
        HttpRequestArgs.model_validate({"url": "https://api.example/x", "body": "é" * 5 + "x"}, context=tight)
    assert caught.value.errors()[0]["type"] == "too_large"  # the server answers 413 for it
    with pytest.raises(ValidationError, match="at most 1048576 bytes"):  # no settings: MAX_TEXT_BYTES's default
        HttpRequestArgs.model_validate({"url": "https://api.example/x", "body": "x" * (1024 * 1024 + 1)})
    with pytest.raises(ValidationError, match="unpaired surrogates"):
        HttpRequestArgs.model_validate({"url": "https://api.example/x", "body": "\ud800"})


@pytest.mark.parametrize(
    "url",
    ["http://[::1", "http://[::1]x/", "http://[v1.fe]/", "http://[fe80::1%25eth0]/", "http://a b/", "http://a\x00b/",
     "http://host\r\n.example/", "http://exämple.com/", "https://example.com/ä", "ftp://example.com/", "example.com/x",
     "//example.com/", "http://", "https:///x", "http://user:pw@example.com/", "http://user@example.com/",
     "http://example.com:99999/", "http://example.com:0/", "http://example.com:port/", "http://exa$mple.com/",
     "http://example.com/#frag", "javascript:alert(1)", "", "http://example.com/" + "a" * 2048],
)  # fmt: skip
def test_bad_urls_are_validation_errors(url):
    with pytest.raises(ValidationError) as caught:
        HttpRequestArgs.model_validate({"url": url}, context={"settings": make_settings()})
    assert caught.value.errors()[0]["loc"] == ("url",)


@pytest.mark.parametrize(
    "url",
    ["http://example.com", "https://api.example.com:8443/v1/tasks?x=1&y=%20", "http://my_service:8080/hook",
     "http://[2606:4700:4700::1111]/", "HTTPS://EXAMPLE.COM/", "http://93.184.215.14/", "http://xn--exmple-cua.com/"],
)  # fmt: skip
def test_good_urls_are_taken(url):
    assert HttpRequestArgs.model_validate({"url": url}, context={"settings": make_settings(allow_private_callbacks=False)}).url == url


URLISH = st.one_of(
    st.text(max_size=300),
    st.builds(lambda scheme, rest: scheme + rest, st.sampled_from(["http://", "https://", "HTTP://", "http:", "http://["]), st.text(max_size=200)),
    st.builds(lambda host, port, path: f"http://{host}:{port}/{path}", st.text(max_size=40), st.text(max_size=8), st.text(max_size=40)),
)  # fmt: skip


@given(url=URLISH, strict=st.booleans())
@hypothesis_settings(max_examples=400, deadline=None)
def test_any_string_as_url_is_taken_or_a_validation_error_never_another_exception(url, strict):
    settings = make_settings(allow_private_callbacks=not strict)
    try:
        HttpRequestArgs.model_validate({"url": url}, context={"settings": settings})
    except ValidationError as exc:
        assert exc.errors()[0]["loc"] == ("url",)
    else:  # what is taken, the worker's guard can judge without an exception of another kind
        try:
            webhook.check_url(url, allow_private=True)
        except webhook.CallbackRefused:  # pragma: no cover - would mean the model let a bad URL through
            pytest.fail(f"the model took {url!r}, which check_url refuses")
