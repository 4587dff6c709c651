"""``POST /jobs`` with an ``Idempotency-Key`` is one round trip to Redis (issue 26, item 1): the
key is claimed by the submission's own script (``JobQueue.idempotency``), not by a ``SET NX`` of
its own first. Counted through the whole view, on a real Valkey, with the limiter off (its one
round trip is tests/web/test_ratelimit.py's)."""

from __future__ import annotations

import pytest

from app import create_app
from app.jobs import JobQueue
from app.settings import get_settings


@pytest.fixture
def client(clean_valkey, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "0")
    settings = get_settings()
    connection = clean_valkey.client()
    yield create_app(settings, job_queue=JobQueue(connection, settings)).test_client()
    connection.close()


def _post(client, key: str, text: str = "a b c"):
    return client.post("/jobs", json={"type": "count_words", "text": text}, headers={"Idempotency-Key": key})


def test_a_keyed_submission_its_replay_and_a_conflict_are_one_round_trip_each(client, trips):
    for warm in ("warm-1", "warm-2"):  # the script loaded, RQ's server version learnt
        assert _post(client, warm).status_code == 202
    trips.clear()
    first = _post(client, "k-1")
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    assert len(trips) == 1, f"{len(trips)} round trips for a POST /jobs with an Idempotency-Key (the key is the script's)"

    trips.clear()
    again = _post(client, "k-1")
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert len(trips) == 1, f"{len(trips)} round trips for a replay"

    trips.clear()
    other = _post(client, "k-1", text="another body")
    assert other.status_code == 422
    assert other.get_json()["errors"] == [{"field": "Idempotency-Key", "message": "already used with a different body"}]
    assert len(trips) == 1, f"{len(trips)} round trips for a key reused with another body"
