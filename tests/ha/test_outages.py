"""What a Redis outage looks like to a client, Sentinel and Cluster troubles included: a 503
with Retry-After, never a 500 (no servers needed)."""

from __future__ import annotations

import pytest
import redis

from app.jobs import JobQueue
from app.settings import Settings


def test_a_lost_redis_is_a_503_with_rate_limits_on_not_a_500(monkeypatch):
    """Found by the failover test: the RateLimit headers are read from Redis after the view
    has answered, and a Redis error there turned the API's 503 into a 500."""
    from limits.storage import MemoryStorage

    from app import create_app
    from app.connections import connect

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # refuses at once
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "1")
    dead = Settings()
    app = create_app(dead, job_queue=JobQueue(connect(dead), dead), rate_limit_storage="memory://")

    def gone(*args, **kwargs):  # the limiter counted the hit; then its store went away
        raise redis.ConnectionError("Connection reset by peer")

    monkeypatch.setattr(MemoryStorage, "get_expiry", gone)  # read for the headers (fixed window, the default)
    response = app.test_client().post("/jobs", json={"type": "count_words", "text": "x"})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"]


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.SlotNotCoveredError("Slot 5210 is not covered by the cluster."),  # not a RedisError
        redis.exceptions.RedisClusterException("Redis Cluster cannot be connected."),  # not a RedisError
        redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
        redis.exceptions.MasterDownError("MASTERDOWN Link with MASTER is down"),
    ],
    ids=lambda error: type(error).__name__,
)
@pytest.mark.parametrize(
    ("method", "path", "call"),
    [("POST", "/jobs", "submit"), ("GET", "/jobs/abc", "get"), ("GET", "/jobs", "list"), ("POST", "/jobs/abc/cancel", "cancel")],
)
def test_a_redis_cluster_outage_is_a_503_with_retry_after_not_a_500(client, job_queue, monkeypatch, error, method, path, call):
    """redis-py raises some cluster troubles (a slot no node serves, no node reachable) as
    RedisClusterException, which is not a RedisError: they are answered as any Redis outage."""

    def down(*args, **kwargs):
        raise error

    monkeypatch.setattr(job_queue, call, down)
    response = client.open(path, method=method, json={"type": "count_words", "text": "x"} if call == "submit" else None)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "5"
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 503
