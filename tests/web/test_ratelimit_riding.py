"""A submission's rate-limit windows ride its own script (issue 26, items 1 and 2): a limited
``POST /jobs`` with an ``Idempotency-Key`` is one round trip to Redis in all, where the limiter's
script and the submission's took two; and what a client sees is what Flask-Limiter gives it: the
same counts and expiries in the same keys, the same 429, nothing written over a limit, and every
request counted, including one refused for its own reasons before its job could be written.

The job store and the limits on the same real Valkey, made from ``REDIS_URL`` as ``make run``
makes them (``create_app(settings)``): that is where the windows ride.
"""

from __future__ import annotations

import pytest

from app import create_app
from app.settings import get_settings

QUEUE = "rq:queue:default"


@pytest.fixture
def served(monkeypatch, valkey):
    """A client of an app whose jobs and limits are both on ``valkey``, and that Valkey."""

    def make(submit: str = "10/second;200/minute"):
        monkeypatch.setenv("REDIS_URL", valkey.url)
        monkeypatch.setenv("RATE_LIMIT_ENABLED", "1")
        monkeypatch.setenv("RATE_LIMIT_SUBMIT", submit)
        monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
        valkey.client().flushall()
        return create_app(get_settings()).test_client(), valkey.client()

    return make


def _post(client, key: str | None = None, body: dict | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/jobs", json=body or {"type": "noop"}, headers=headers)


def _counts(connection) -> tuple[int, int]:
    (second,) = connection.keys("LIMITS:LIMITER/*/10/1/second")
    (minute,) = connection.keys("LIMITS:LIMITER/*/200/1/minute")
    return int(connection.get(second)), int(connection.get(minute))


def test_a_limited_keyed_submission_is_one_round_trip_in_all(served, trips):
    client, connection = served()
    for warm in ("warm-1", "warm-2"):  # the scripts loaded, RQ's server version learnt
        assert _post(client, warm).status_code == 202
    trips.clear()
    answer = _post(client, "k-1")
    assert answer.status_code == 202
    assert len(trips) == 1, f"{len(trips)} round trips for a limited POST /jobs with an Idempotency-Key"
    # ... and both windows were counted in it, as the limiter counts them, with its headers
    assert _counts(connection) == (3, 3)
    assert answer.headers["RateLimit-Policy"] == "10;w=1"
    assert answer.headers["RateLimit"].startswith("limit=10, remaining=7, reset=")
    trips.clear()
    replay = _post(client, "k-1")
    assert replay.headers["Idempotent-Replayed"] == "true" and len(trips) == 1
    assert _counts(connection) == (4, 4)  # a replay is a request: counted


def test_the_counts_and_expiries_are_flask_limiters(served):
    """As tests/web/test_ratelimit.py's ``test_the_one_trip_count_is_the_same_as_flask_limiters``
    for a limiter of its own: the second window counts every request, the minute window none the
    second refused, and each key expires with its window; the refused wrote nothing."""
    client, connection = served()
    codes = [_post(client).status_code for _ in range(13)]
    assert codes.count(202) == 10 and codes[-3:] == [429] * 3
    assert _counts(connection) == (13, 10)
    (second,) = connection.keys("LIMITS:LIMITER/*/10/1/second")
    (minute,) = connection.keys("LIMITS:LIMITER/*/200/1/minute")
    assert 0 < connection.ttl(second) <= 1 and 55 <= connection.ttl(minute) <= 60
    assert connection.llen(QUEUE) == 10


def test_over_the_limit_nothing_is_written_and_the_429_is_the_limiters(served):
    client, connection = served("3/minute")
    answers = [_post(client, f"k-{i}") for i in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    for answer, remaining in zip(answers, (2, 1, 0, 0), strict=True):
        assert answer.headers["RateLimit-Policy"] == "3;w=60"
        assert answer.headers["RateLimit"].startswith(f"limit=3, remaining={remaining}, reset=")
    refused = answers[3]
    assert refused.mimetype == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    body = refused.get_json()
    assert body["status"] == 429 and body["rate_limit"]["limit"] == "3 per 1 minute"
    assert body["rate_limit"]["applies_to"] == "POST /jobs" and body["rate_limit"]["setting"] == "RATE_LIMIT_SUBMIT"
    assert connection.llen(QUEUE) == 3  # the refused job was not written ...
    assert connection.zcard("rq:offload:jobs") == 3
    # ... nor its Idempotency-Key's answer (three keys, three answers)
    assert len(connection.keys("rq:offload:idempotency:*")) == 3


def test_a_request_refused_before_its_job_is_written_is_counted_all_the_same(served):
    """A 422 ends the request before the submission's script runs: its windows are counted after
    the view, so invalid requests spend the budget as they do with Flask-Limiter, and one over the
    limit is answered 429, not 422."""
    client, connection = served("3/minute")
    invalid = {"type": "count_words"}  # no text
    assert [_post(client, body=invalid).status_code for _ in range(3)] == [422, 422, 422]
    answer = _post(client)
    assert answer.status_code == 429 and answer.get_json()["rate_limit"]["limit"] == "3 per 1 minute"
    assert _post(client, body=invalid).status_code == 429  # over the limit, the 429 comes first
    assert connection.llen(QUEUE) == 0
    (window,) = connection.keys("LIMITS:LIMITER/*/3/1/minute")
    assert int(connection.get(window)) == 5


def test_a_submission_that_cannot_be_one_script_counts_its_windows_first(served, trips):
    """A job with a ``concurrency_limit`` is written in a MULTI/EXEC (RQ's limiter runs a script of
    its own): its windows are counted in a round trip of their own before it, and over the limit
    nothing is written."""
    client, connection = served("2/minute")
    body = {"type": "noop", "concurrency_key": "tenant-1", "concurrency_limit": 1}
    assert [_post(client, body=body).status_code for _ in range(3)] == [202, 202, 429]
    (window,) = connection.keys("LIMITS:LIMITER/*/2/1/minute")
    assert int(connection.get(window)) == 3
    assert connection.zcard("rq:offload:jobs") == 2


def test_limits_kept_elsewhere_are_counted_by_the_limiter_itself(monkeypatch, valkey, trips):
    """With the limits on a store of their own (``rate_limit_storage``), the windows cannot ride:
    the limiter counts them in its own round trip, as before."""
    from app.jobs import JobQueue

    monkeypatch.setenv("RATE_LIMIT_ENABLED", "1")
    monkeypatch.setenv("RATE_LIMIT_SUBMIT", "10/second;200/minute")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    valkey.client().flushall()
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(valkey.client(), settings), rate_limit_storage=valkey.url).test_client()
    for warm in ("warm-1", "warm-2"):
        _post(client, warm)
    trips.clear()
    assert _post(client, "k-1").status_code == 202
    assert len(trips) == 2
    assert _counts(valkey.client()) == (3, 3)


def test_a_limited_keyed_batch_is_one_round_trip_and_nothing_is_written_over_the_limit(served, trips):
    """``POST /jobs/batch`` the same way: its key claimed and its windows counted by the batch's
    own script (its key took a ``SET NX`` of its own and its windows the limiter's script)."""
    client, connection = served("3/minute")
    batch = {"jobs": [{"type": "noop"}, {"type": "noop"}]}
    assert client.post("/jobs/batch", json=batch, headers={"Idempotency-Key": "warm"}).status_code == 202
    trips.clear()
    first = client.post("/jobs/batch", json=batch, headers={"Idempotency-Key": "b-1"})
    assert first.status_code == 202 and len(trips) == 1, f"{len(trips)} round trips for a keyed, limited batch"
    assert first.headers["RateLimit"].startswith("limit=3, remaining=1")
    trips.clear()
    again = client.post("/jobs/batch", json=batch, headers={"Idempotency-Key": "b-1"})
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert len(trips) == 1
    refused = client.post("/jobs/batch", json=batch, headers={"Idempotency-Key": "b-2"})
    assert refused.status_code == 429 and refused.get_json()["rate_limit"]["limit"] == "3 per 1 minute"
    assert connection.llen(QUEUE) == 4  # two batches of two: the refused one wrote nothing,
    assert len(connection.keys("rq:offload:idempotency:*")) == 2  # not even its key's answer
