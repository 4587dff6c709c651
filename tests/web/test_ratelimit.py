"""Rate limits (app/web/ratelimit.py): 429 with Retry-After and RateLimit headers, per key."""

from __future__ import annotations

import pytest

from app import create_app
from app.jobs import JobQueue
from app.settings import get_settings


@pytest.fixture
def limited_client(monkeypatch, fake_redis):
    monkeypatch.setenv("RATE_LIMIT_SUBMIT", "3/minute")
    monkeypatch.setenv("RATE_LIMIT_READ", "100/second")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    settings = get_settings()
    queue = JobQueue(fake_redis, settings)
    return create_app(settings, job_queue=queue).test_client(), queue


def test_rate_limit_answers_429_with_retry_after_and_ratelimit_headers(limited_client):
    client, queue = limited_client
    answers = [client.post("/jobs", json={"type": "noop"}) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [202, 202, 202, 429]
    assert answers[0].headers["RateLimit-Policy"] == "3;w=60"
    assert answers[0].headers["RateLimit"].startswith("limit=3, remaining=2, reset=")
    breached = answers[3]
    assert breached.mimetype == "application/problem+json"
    assert 1 <= int(breached.headers["Retry-After"]) <= 61  # the window, rounded up to whole seconds
    assert breached.headers["RateLimit"].startswith("limit=3, remaining=0")
    assert breached.get_json()["status"] == 429
    assert sum(q.count for q in queue.queues.values()) == 3  # the refused one enqueued nothing
    # Reads have their own budget.
    assert client.get("/jobs").status_code == 200


def test_rate_limits_are_per_key(monkeypatch, fake_redis):
    monkeypatch.setenv("RATE_LIMIT_SUBMIT", "1/minute")
    monkeypatch.setenv("API_KEYS", "a:client:aaa,b:client:bbb")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()
    post = lambda key: client.post("/jobs", json={"type": "noop"}, headers={"Authorization": f"Bearer {key}"})  # noqa: E731
    assert post("aaa").status_code == 202
    assert post("aaa").status_code == 429
    assert post("bbb").status_code == 202


def test_429_says_which_limit_for_what_per_what_and_when_it_resets(limited_client):
    """Issue 16: the 429 said only "rate limit of 3 per 1 minute exceeded": not whether it was the
    submit or the read limit (RATE_LIMIT_SUBMIT is two limits by default), nor when it resets."""
    from datetime import UTC, datetime

    client, _ = limited_client
    for _ in range(3):
        client.post("/jobs", json={"type": "noop"})
    breached = client.post("/jobs", json={"type": "noop"})
    body = breached.get_json()
    retry_after = int(breached.headers["Retry-After"])
    assert body["rate_limit"]["limit"] == "3 per 1 minute"
    assert body["rate_limit"]["applies_to"] == "POST /jobs"
    assert body["rate_limit"]["per"] == "client address"
    assert body["rate_limit"]["setting"] == "RATE_LIMIT_SUBMIT"
    assert body["rate_limit"]["retry_after"] == retry_after
    reset_at = datetime.strptime(body["rate_limit"]["reset_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((reset_at - datetime.now(UTC)).total_seconds() - retry_after) <= 2
    assert "3 per 1 minute on POST /jobs" in body["detail"] and body["rate_limit"]["reset_at"] in body["detail"]


def test_anonymous_make_run_does_not_throttle_its_developer(monkeypatch):
    """Issue 16: fifty quick POSTs from one local client, then 429s. An anonymous dev stack (loopback
    only, one developer) turns limits off unless RATE_LIMIT_ENABLED says otherwise; with keys on they stay."""
    from app.dev import stack

    calls = {}
    monkeypatch.setattr(stack.os, "environ", dict(stack.os.environ))  # main() adds to it: keep ours clean
    monkeypatch.setattr(stack.os, "execv", lambda path, argv: calls.setdefault("argv", argv))
    for name in ("API_KEYS", "RATE_LIMIT_ENABLED", "REDIS_URL", "SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAR_DIR", str(__import__("tempfile").mkdtemp()))
    # Ports of its own: main() refuses to start on a port in use (another stack's, say).
    from ..conftest import free_port

    monkeypatch.setenv("PORT", str(free_port()))
    monkeypatch.setattr(stack, "DEV_REDIS_PORT", free_port())
    monkeypatch.setattr(stack, "DEV_SMTP_PORT", free_port())
    stack.main()
    assert stack.os.environ["RATE_LIMIT_ENABLED"] == "0"
    config = (stack.Path(stack.os.environ["VAR_DIR"]) / "supervisord.conf").read_text()
    assert 'RATE_LIMIT_ENABLED="0"' in config


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_every_strategy_counts_and_answers_alike_on_a_real_valkey(monkeypatch, valkey, strategy):
    """RATE_LIMIT_STRATEGY changes how ``limits`` counts, not what a client sees: the same
    remaining counts in the RateLimit headers, the same 429 (issue 15; the fixed window's
    headers are read in one pipelined round trip, the others through ``limits``)."""
    monkeypatch.setenv("RATE_LIMIT_SUBMIT", "3/minute")
    monkeypatch.setenv("RATE_LIMIT_STRATEGY", strategy)
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    connection = valkey.client()
    connection.flushall()
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(connection, settings), rate_limit_storage=valkey.url).test_client()
    answers = [client.post("/jobs", json={"type": "noop"}) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [202, 202, 202, 429]
    for answer, remaining in zip(answers, (2, 1, 0, 0), strict=True):
        assert answer.headers["RateLimit-Policy"] == "3;w=60"
        limit, left, reset = (part.strip() for part in answer.headers["RateLimit"].split(","))
        assert (limit, left) == ("limit=3", f"remaining={remaining}")
        assert 0 <= int(reset.removeprefix("reset=")) <= 61
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 61
    assert answers[3].get_json()["rate_limit"]["limit"] == "3 per 1 minute"
    assert connection.llen("rq:queue:default") == 3
    # under offload's prefix; the sliding window counter's keys are wrapped in a hash tag
    pattern = "LIMITS:{LIMITER/rq:offload:ratelimit/*" if strategy == "sliding-window-counter" else "LIMITS:LIMITER/rq:offload:ratelimit/*"
    assert connection.keys(pattern)


def test_the_fixed_window_is_the_default_strategy():
    assert get_settings().rate_limit_strategy == "fixed-window"


def _limiter_traffic(monkeypatch, valkey):
    """A client whose jobs are kept in fakeredis and whose rate limits alone are counted in the
    real Valkey, and a reader of what that Valkey received since the last read: the calls of each
    command (``INFO commandstats``, which counts a script's own commands too; the reader's left
    out) and the round trips (writes to a socket of that Valkey)."""
    import fakeredis
    import redis

    monkeypatch.setenv("RATE_LIMIT_SUBMIT", "10/second;200/minute")
    monkeypatch.setenv("RATE_LIMIT_READ", "100/second;5000/hour")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    valkey.client().flushall()
    settings = get_settings()
    jobs = JobQueue(fakeredis.FakeRedis(), settings)
    client = create_app(settings, job_queue=jobs, rate_limit_storage=valkey.url).test_client()
    reader = redis.Redis(port=valkey.port, single_connection_client=True)  # its own traffic is not counted
    sends = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):  # noqa: ANN001
        if self.port == valkey.port and self is not reader.connection:
            sends.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)

    def since_last() -> tuple[dict[str, int], int]:
        stats = reader.info("commandstats")
        calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat")}
        reader.config_resetstat()
        trips = len(sends)
        sends.clear()
        return calls, trips

    return client, since_last


def test_a_limited_request_costs_one_round_trip_and_one_command_for_both_windows(monkeypatch, valkey):
    """Issue 26, item 2: both windows of ``RATE_LIMIT_SUBMIT`` counted, and the RateLimit
    headers answered, in one script call. Flask-Limiter's own fixed window made one script call
    a window and offload read the reported window again for the headers: 4 commands in 3 round
    trips a request. Counted on a real Valkey that keeps nothing but the limits."""
    client, since_last = _limiter_traffic(monkeypatch, valkey)
    client.post("/jobs", json={"type": "noop"})  # the script is loaded (EVALSHA, NOSCRIPT, EVAL) once
    client.get("/jobs")
    since_last()
    answers = [client.post("/jobs", json={"type": "noop"}) for _ in range(5)]
    assert [a.status_code for a in answers] == [202] * 5
    calls, trips = since_last()
    # one script a request, nothing else sent (GET or TTL for the headers); in it, both windows
    assert (calls.get("evalsha"), trips, calls.get("incrby"), calls.get("ttl")) == (5, 5, 10, 10), calls
    assert set(calls) <= {"evalsha", "incrby", "ttl", "expire"}, calls
    assert answers[-1].headers["RateLimit"].startswith("limit=10, remaining=")
    reads = [client.get("/jobs") for _ in range(4)]
    assert all(r.status_code == 200 and r.headers["RateLimit"].startswith("limit=100, remaining=") for r in reads)
    calls, trips = since_last()
    assert (calls.get("evalsha"), trips) == (4, 4) and set(calls) <= {"evalsha", "incrby", "ttl", "expire"}, calls
    # A 429 too: the breached window's headers and Retry-After from the same reply.
    answers = []
    while len(answers) < 40 and (not answers or answers[-1].status_code != 429):
        answers.append(client.post("/jobs", json={"type": "noop"}))
    calls, trips = since_last()
    assert (calls.get("evalsha"), trips) == (len(answers), len(answers)), calls
    assert set(calls) <= {"evalsha", "incrby", "ttl", "expire"}, calls
    breached = answers[-1]
    assert breached.status_code == 429 and breached.headers["RateLimit"].startswith("limit=10, remaining=0")
    assert 1 <= int(breached.headers["Retry-After"]) <= 2


def test_the_one_trip_count_is_the_same_as_flask_limiters(monkeypatch, valkey):
    """The script keeps ``limits``' keys, counts and expiries: the minute window counts every
    request that passed the second window, and none refused by it (Flask-Limiter stops counting
    at the first breach), and each key expires with its window."""
    client, _ = _limiter_traffic(monkeypatch, valkey)
    codes = [client.post("/jobs", json={"type": "noop"}).status_code for _ in range(13)]
    assert codes.count(202) == 10 and codes[-3:] == [429] * 3
    connection = valkey.client()
    (second,) = connection.keys("LIMITS:LIMITER/*/10/1/second")
    (minute,) = connection.keys("LIMITS:LIMITER/*/200/1/minute")
    assert int(connection.get(second)) == 13  # as limits' incr: a refused hit still counts in its window
    assert int(connection.get(minute)) == 10
    assert 0 < connection.ttl(second) <= 1 and 55 <= connection.ttl(minute) <= 60


def test_the_limits_are_resolved_once_a_request_not_again_before_it(monkeypatch, fake_redis):
    """Flask-Limiter resolves a request's limits before every request (for app-wide limits) and
    again in the limited view. offload sets no app-wide limits, so the first is skipped
    (``_Limiter._check_request_limit``): once a request, and the view's limit still holds."""
    from flask_limiter._manager import LimitManager

    monkeypatch.setenv("RATE_LIMIT_SUBMIT", "2/minute")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()
    resolved = []
    original = LimitManager.resolve_limits
    monkeypatch.setattr(LimitManager, "resolve_limits", lambda self, *a, **k: resolved.append(a) or original(self, *a, **k))
    codes = [client.post("/jobs", json={"type": "noop"}).status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    assert len(resolved) == 3
    resolved.clear()
    assert client.get("/healthz").status_code == 200 and resolved == []
