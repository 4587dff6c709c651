"""JobQueue (app/jobs/store.py) on fakeredis, jobs run in-process by RQ's SimpleWorker:
submit, cancel, retry, owners, listing, scheduling, the retry policy; and, against a real
server, that a submission waits for REDIS_WAIT_REPLICAS replicas."""

from __future__ import annotations

import pytest

from app.jobs import Principal
from app.jobs.running.callbacks import retry_policy
from app.jobs.errors import JobNotFound, JobStateConflict

from ..conftest import run_jobs, submit


def test_cancel_queued_then_retry(job_queue, settings):
    job_id = submit(job_queue, settings, type="count_words", text="a b")["id"]
    assert job_queue.cancel(job_id, Principal(None, True))["status"] == "canceled"
    with pytest.raises(JobStateConflict):
        job_queue.cancel(job_id, Principal(None, True))
    assert job_queue.retry(job_id, Principal(None, True))["status"] == "queued"
    run_jobs(job_queue)
    assert job_queue.get(job_id)["result"]["words"] == 2
    with pytest.raises(JobStateConflict):
        job_queue.retry(job_id, Principal(None, True))


def test_retry_failed_job(job_queue, settings):
    job_id = submit(job_queue, settings, type="fail", message="no")["id"]
    run_jobs(job_queue)
    assert job_queue.get(job_id)["status"] == "failed"
    assert job_queue.retry(job_id, Principal(None, True))["status"] == "queued"


def test_owner_scoping(job_queue, settings):
    job_id = submit(job_queue, settings, owner="shop", type="count_words", text="x")["id"]
    assert job_queue.get(job_id, Principal("shop", False))["id"] == job_id
    assert job_queue.get(job_id, Principal("ops", True))["id"] == job_id
    with pytest.raises(JobNotFound):
        job_queue.get(job_id, Principal("other", False))


def test_list_pages_newest_first_without_repeats(job_queue, settings):
    ids = [submit(job_queue, settings, type="count_words", text=f"job {n}")["id"] for n in range(23)]
    seen, cursor = [], None
    while True:
        page, cursor = job_queue.list(Principal(None, True), limit=5, cursor=cursor)
        seen += [job["id"] for job in page]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_scheduled_job_is_scheduled(job_queue, settings):
    resource = submit(job_queue, settings, type="count_words", text="later", delay_seconds=60)
    assert resource["status"] == "scheduled"


def test_retry_policy_is_exponential_with_jitter_and_capped(settings):
    policy = retry_policy(settings, 8)
    base, cap = settings.retry_backoff_base_seconds, settings.retry_backoff_max_seconds
    assert policy.max == 8
    for attempt, interval in enumerate(policy.intervals):
        expected = min(cap, base * 2**attempt)
        assert 0.8 * expected - 1 <= interval <= 1.2 * expected + 1
    assert retry_policy(settings, 0) is None


def test_list_pages_through_thousands_while_jobs_come_and_go(job_queue, settings):
    ids = [submit(job_queue, settings, type="noop")["id"] for _ in range(1500)]
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = job_queue.list(Principal(None, True), limit=200, cursor=cursor)
        seen += [job["id"] for job in page]
        pages += 1
        if pages == 2:  # newer jobs arriving meanwhile do not disturb the pages after the cursor
            submit(job_queue, settings, type="noop")
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert len(set(seen)) == 1500 and pages == 8


@pytest.mark.integration
def test_submit_waits_for_the_replicas_asked_for(clean_valkey, settings):
    """JobQueue.submit calls connections.wait_for_replicas: with REDIS_WAIT_REPLICAS=1 and a
    server that has no replica, no submission is confirmed (NotReplicated, a 503 in the API);
    the failover test's WAIT-1 case (tests/ha/test_sentinel.py) relies on it."""
    from app.connections import NotReplicated
    from app.jobs import JobQueue

    client = clean_valkey.client()
    waiting = settings.model_copy(update={"redis_wait_replicas": 1, "redis_wait_timeout": 0.2})
    assert waiting.redis_wait_replicas_effective == 1
    with pytest.raises(NotReplicated, match="0 of 1 replicas"):
        submit(JobQueue(client, waiting), waiting, type="noop")
    assert submit(JobQueue(client, settings), settings, type="noop")["status"] == "queued"  # not asked: no WAIT
