"""Idempotency-Key (app/jobs/idempotency.py): replays, conflicts, keys in flight, and racing
identical requests against real processes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from ..conftest import assert_problem, queued_count


def test_idempotent_replay_returns_the_first_answer(client, job_queue):
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/jobs", json={"type": "count_words", "text": "a b"}, headers=headers)
    again = client.post("/jobs", json={"text": "a b", "type": "count_words"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert queued_count(job_queue) == 1


def test_idempotency_key_with_a_different_body_is_422(client, job_queue):
    headers = {"Idempotency-Key": "order-43"}
    assert client.post("/jobs", json={"type": "count_words", "text": "a"}, headers=headers).status_code == 202
    body = assert_problem(client.post("/jobs", json={"type": "count_words", "text": "b"}, headers=headers), 422)
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert queued_count(job_queue) == 1


def test_idempotency_key_in_flight_is_409_and_keys_are_kept_a_day(client, job_queue):
    from app.jobs.submitting.idempotency import claim_idempotency_key

    claim = claim_idempotency_key(job_queue.connection, None, "order-44", {"type": "count_words", "text": "a"})
    response = client.post("/jobs", json={"type": "count_words", "text": "a"}, headers={"Idempotency-Key": "order-44"})
    assert_problem(response, 409)
    assert response.headers["Retry-After"]
    assert queued_count(job_queue) == 0
    done = client.post("/jobs", json={"type": "count_words", "text": "z"}, headers={"Idempotency-Key": "order-45"})
    assert done.status_code == 202
    ttls = [job_queue.connection.ttl(key) for key in job_queue.connection.keys("rq:offload:idempotency:*")]
    assert claim.key.encode() in job_queue.connection.keys("rq:offload:idempotency:*")
    assert max(ttls) >= 24 * 3600


def test_idempotency_key_too_long_is_400(client, job_queue):
    response = client.post("/jobs", json={"type": "count_words", "text": "a"}, headers={"Idempotency-Key": "k" * 256})
    assert_problem(response, 400)
    assert queued_count(job_queue) == 0


@pytest.mark.integration
def test_racing_identical_requests_make_exactly_one_job(stack, clean_valkey):
    headers = {"Idempotency-Key": "race-1"}
    body = {"type": "count_words", "text": "same body"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: stack.post(body, headers=headers), range(8)))
    codes = sorted(response.status_code for response in responses)
    ids = {response.json()["id"] for response in responses if response.status_code == 202}
    assert len(ids) == 1, ids
    assert set(codes) <= {202, 409}
    assert all(r.headers.get("Retry-After") for r in responses if r.status_code == 409)
    client = clean_valkey.client()
    assert client.zcard("rq:offload:jobs") == 1
