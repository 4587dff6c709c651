"""/healthz, /readyz and the request id (app/web/health.py); a lost Redis is a fast 503."""

from __future__ import annotations

from ..conftest import assert_problem


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32
    # A hostile value is replaced, not echoed.
    assert client.get("/healthz", headers={"X-Request-ID": "a b<script>"}).headers["X-Request-ID"] != "a b<script>"


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_redis_down_is_a_fast_503(settings):
    import time

    from app import create_app
    from app.connections import connect
    from app.jobs import JobQueue

    dead = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(dead, job_queue=JobQueue(connect(dead), dead))
    client = app.test_client()
    started = time.monotonic()
    response = client.post("/jobs", json={"type": "count_words", "text": "x"})
    elapsed = time.monotonic() - started
    body = assert_problem(response, 503)
    assert int(response.headers["Retry-After"]) > 0
    assert "127.0.0.1:1" not in body["detail"]
    assert elapsed < 2.0, elapsed
    assert_problem(client.get("/readyz"), 503)
    assert_problem(client.get("/jobs/abc"), 503)
    assert client.get("/healthz").status_code == 200
