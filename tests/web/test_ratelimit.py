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
