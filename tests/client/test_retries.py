"""Which calls the client retries, and how long it waits: on scripted answers (httpx's
MockTransport) and one closed port, so every case is exact and nothing really sleeps."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from offload import Client, Conflict, ConnectionFailed, Job, RateLimited, ServerError, ServiceUnavailable
from offload.errors import retry_after

from .conftest import job_json


def problem(status: int, retry: str | None = None, **extra) -> httpx.Response:
    headers = {"Retry-After": retry} if retry is not None else {}
    body = {"type": "about:blank", "title": "Refused", "status": status, "detail": "try later", **extra}
    return httpx.Response(status, json=body, headers={**headers, "Content-Type": "application/problem+json"})


def scripted(*answers: httpx.Response) -> tuple[Client, list[httpx.Request], list[float]]:
    """A client whose server answers these, in order; it records requests and sleeps."""
    requests: list[httpx.Request] = []
    slept: list[float] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return queue.pop(0)

    client = Client("http://offload.test", transport=httpx.MockTransport(handle), sleep=slept.append)
    return client, requests, slept


def test_a_read_is_retried_after_retry_after():
    client, requests, slept = scripted(problem(429, "2"), problem(503, "1"), httpx.Response(200, json=job_json()))
    assert client.get("j1").id == "j1"
    assert slept == [2.0, 1.0] and len(requests) == 3


def test_retries_are_bounded_and_the_last_problem_is_raised():
    client, requests, slept = scripted(*[problem(503, "3", request_id="r-1")] * 3)
    with pytest.raises(ServiceUnavailable) as caught:
        client.get("j1")
    assert len(requests) == 3 and slept == [3.0, 3.0]
    assert caught.value.retry_after == 3 and caught.value.request_id == "r-1" and caught.value.title == "Refused"


def test_a_retry_after_longer_than_allowed_is_raised_at_once():
    client, requests, slept = scripted(problem(429, "3600"))
    with pytest.raises(RateLimited):
        client.get("j1")
    assert slept == [] and len(requests) == 1


def test_a_submission_is_retried_with_the_same_idempotency_key():
    client, requests, slept = scripted(problem(409, "1"), problem(503, "2"), httpx.Response(202, json=job_json()))
    assert client.submit("count_words", text="a b").id == "j1"
    assert slept == [1.0, 2.0]
    keys = {request.headers["Idempotency-Key"] for request in requests}
    assert len(keys) == 1 and all(len(key) == 36 for key in keys)


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.submit("count_words", text="a", idempotency_key=False),
        lambda client: client.cancel("j1"),
        lambda client: client.retry("j1"),
    ],
    ids=["submit-without-key", "cancel", "retry"],
)
def test_calls_that_are_not_safe_to_repeat_are_not_retried(call):
    client, requests, slept = scripted(problem(503, "1"))
    with pytest.raises(ServiceUnavailable):
        call(client)
    assert len(requests) == 1 and slept == []
    assert "Idempotency-Key" not in requests[0].headers


def test_a_state_conflict_is_not_retried():
    client, requests, slept = scripted(problem(409))  # no Retry-After: the job's state, not a key in flight
    with pytest.raises(Conflict):
        client.submit("count_words", text="a")
    assert len(requests) == 1 and slept == []


def test_an_error_page_that_is_not_a_problem_still_raises_typed():
    client, _, _ = scripted(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ServerError) as caught:
        client.cancel("j1")
    assert caught.value.status == 502 and "Bad Gateway" in caught.value.detail


def test_an_unreachable_server_is_retried_then_raised_for_reads_only():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        slept: list[float] = []
        with Client(f"http://127.0.0.1:{port}", sleep=slept.append) as client:
            with pytest.raises(ConnectionFailed, match="ConnectError") as caught:
                client.get("j1")
            assert caught.value.status is None and slept == [0.5, 1.0]
            slept.clear()
            with pytest.raises(ConnectionFailed):
                client.cancel("j1")
            assert slept == []


def test_retry_after_as_an_http_date():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = retry_after(httpx.Response(503, headers={"Retry-After": later}))
    assert seconds is not None and 25 < seconds <= 30
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None


def test_the_api_key_is_sent_as_bearer_and_ids_are_quoted():
    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json=job_json())

    with Client("http://offload.test/", api_key="s3cret", transport=httpx.MockTransport(handle)) as client:
        client.get("a/b?c")
    assert requests[0].headers["Authorization"] == "Bearer s3cret"
    assert requests[0].url.raw_path == b"/jobs/a%2Fb%3Fc"


def test_a_newer_servers_fields_are_kept():
    data = job_json(status="finished", batch_id="b1", depends_on=["j0"], shiny={"new": True})
    job = Job.from_dict(data)
    assert job.batch_id == "b1" and job.depends_on == ["j0"] and job.extra == {"shiny": {"new": True}}
    assert job.to_dict() == data
