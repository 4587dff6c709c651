"""Per-key concurrency and fair shares (app/jobs/concurrency.py) on fakeredis: who waits, who is
queued, and that every job still runs. The limit across real worker processes is in
tests/worker/test_concurrency.py."""

from __future__ import annotations

import pytest

from app.jobs.access import Principal
from app.jobs.admin.bulk import BulkActions
from app.jobs.running.concurrency import scoped_key
from app.jobs.reading.search import JobFilter
from app.jobs.store import JobQueue
from app.settings import get_settings
from app.web import create_app
from tests.conftest import assert_problem, queued_count, run_jobs, submit


def _status(job_queue, job_id: str) -> str:
    return job_queue.connection.hget(f"rq:job:{job_id}", "status").decode()


def test_jobs_over_the_limit_wait_off_the_queue_and_all_run_in_turn(job_queue, settings):
    ids = [submit(job_queue, settings, type="noop", concurrency_key="mail:example.com", concurrency_limit=2)["id"] for _ in range(5)]
    assert queued_count(job_queue) == 2  # the other three wait for a slot, on no queue
    assert [_status(job_queue, i) for i in ids] == ["queued", "queued", "rate_limited", "rate_limited", "rate_limited"]
    waiting = job_queue.get(ids[4])
    assert waiting["status"] == "queued"  # the contract's status for a job waiting its turn
    assert waiting["concurrency_key"] == "mail:example.com" and waiting["concurrency_limit"] == 2
    run_jobs(job_queue)
    assert [_status(job_queue, i) for i in ids] == ["finished"] * 5
    assert queued_count(job_queue) == 0


def test_a_key_is_the_clients_own(job_queue, settings):
    submit(job_queue, settings, owner="alice", type="noop", concurrency_key="k", concurrency_limit=1)
    submit(job_queue, settings, owner="alice", type="noop", concurrency_key="k", concurrency_limit=1)
    bob = submit(job_queue, settings, owner="bob", type="noop", concurrency_key="k", concurrency_limit=1)["id"]
    assert queued_count(job_queue) == 2  # alice's first, and bob's: alice's key does not hold bob back
    assert _status(job_queue, bob) == "queued"
    assert scoped_key("a:b", "c") != scoped_key("a", "b:c")


def test_the_fair_share_lets_another_client_in_ahead_of_a_backlog(fake_redis, settings, monkeypatch):
    monkeypatch.setenv("FAIR_SHARE", "2")
    get_settings.cache_clear()
    settings = get_settings()
    assert settings.fair_share == 2
    job_queue = JobQueue(fake_redis, settings)
    big = [submit(job_queue, settings, owner="big", type="noop")["id"] for _ in range(20)]
    small = submit(job_queue, settings, owner="small", type="noop")["id"]
    queue = job_queue.queues["default"]
    assert queue.get_job_ids() == [big[0], big[1], small]  # behind two of big's, not behind twenty
    anonymous = submit(job_queue, settings, type="noop")["id"]  # no API key: no share to keep
    assert queue.get_job_ids()[-1] == anonymous
    run_jobs(job_queue)
    assert {_status(job_queue, i) for i in [*big, small, anonymous]} == {"finished"}


def test_canceling_a_waiting_job_takes_it_out_of_line(job_queue, settings):
    first, second, third = (
        submit(job_queue, settings, type="noop", concurrency_key="k", concurrency_limit=1)["id"] for _ in range(3)
    )
    job_queue.cancel(second, Principal(None, True))
    assert _status(job_queue, second) == "canceled"
    run_jobs(job_queue)
    assert (_status(job_queue, first), _status(job_queue, second), _status(job_queue, third)) == ("finished", "canceled", "finished")


def test_bulk_cancel_takes_waiting_jobs_and_bulk_retry_puts_them_back_in_line(job_queue, settings):
    ids = [submit(job_queue, settings, type="noop", concurrency_key="k", concurrency_limit=1)["id"] for _ in range(4)]
    admin = Principal(None, True)
    actions = BulkActions(job_queue.connection)
    outcome = actions.run("cancel", admin, JobFilter())
    assert outcome.done == 4
    assert {_status(job_queue, i) for i in ids} == {"canceled"}
    run_jobs(job_queue)  # maintenance frees the slot the canceled queued job held
    retried = actions.run("retry", admin, JobFilter(statuses=frozenset({"canceled"})))
    assert retried.done == 4
    assert queued_count(job_queue) == 1  # the limit holds for retried jobs too
    run_jobs(job_queue)
    assert {_status(job_queue, i) for i in ids} == {"finished"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"concurrency_limit": 2}, "concurrency_limit"),
        ({"concurrency_key": "k", "concurrency_limit": 0}, "concurrency_limit"),
        ({"concurrency_key": "k", "concurrency_limit": 1001}, "concurrency_limit"),
        ({"concurrency_key": "has space"}, "concurrency_key"),
        ({"concurrency_key": ""}, "concurrency_key"),
        ({"concurrency_key": "x" * 201}, "concurrency_key"),
    ],
)
def test_bad_concurrency_fields_are_422_and_write_nothing(client, job_queue, fields, field):
    body = assert_problem(client.post("/jobs", json={"type": "noop", **fields}), 422)
    assert [error["field"] for error in body["errors"]] == [field]
    assert queued_count(job_queue) == 0


def test_jobs_waiting_for_a_slot_count_against_the_depth_limit(fake_redis, monkeypatch):
    monkeypatch.setenv("MAX_QUEUE_DEPTH", "3")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    get_settings.cache_clear()
    settings = get_settings()
    app = create_app(settings, job_queue=JobQueue(fake_redis, settings))
    client = app.test_client()
    body = {"type": "noop", "concurrency_key": "k", "concurrency_limit": 1}
    assert [client.post("/jobs", json=body).status_code for _ in range(4)] == [202] * 4  # 1 queued, 3 waiting
    refused = assert_problem(client.post("/jobs", json=body), 503)
    assert "concurrency key k" in refused["detail"] and refused.get("status") == 503
    assert client.post("/jobs", json={"type": "noop"}).status_code == 202  # the queue itself has room
