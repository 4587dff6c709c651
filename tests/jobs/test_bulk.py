"""Bulk actions (app/jobs/bulk.py) on fakeredis, jobs run in-process: retry failed jobs, cancel
queued ones, delete finished ones, by filter and in pages; what is not in the right state is left
alone. The same on real processes with workers running: tests/web/test_bulk.py."""

from __future__ import annotations

import pytest

from app.jobs import Principal
from app.jobs.admin.bulk import BulkActions
from app.jobs.errors import JobNotFound
from app.jobs.keys import JOB_INDEX_KEY
from app.jobs.reading.search import JobFilter

from ..conftest import queued_count, run_jobs, submit

ADMIN = Principal(None, True)


def run_all(actions, action, job_filter, limit, **kwargs):
    total, cursor, requests = {"matched": 0, "done": 0, "skipped": 0}, None, 0
    while True:
        outcome = actions.run(action, ADMIN, job_filter, limit=limit, cursor=cursor, **kwargs)
        requests += 1
        for key, value in outcome.as_dict().items():
            total[key] += value
        cursor = outcome.next
        if cursor is None:
            return total, requests


def test_retry_failed_jobs_by_filter_in_pages(job_queue, settings):
    failed = [submit(job_queue, settings, type="fail", message="boom")["id"] for _ in range(7)]
    high = submit(job_queue, settings, type="fail", message="boom", queue="high")["id"]
    finished = submit(job_queue, settings, type="count_words", text="a b")["id"]
    run_jobs(job_queue)
    actions = BulkActions(job_queue.connection)

    total, requests = run_all(actions, "retry", JobFilter(queue="default", error_type="RuntimeError"), limit=3)
    assert total == {"matched": 7, "done": 7, "skipped": 0} and requests == 3
    assert {job_queue.get(job_id)["status"] for job_id in failed} == {"queued"}
    assert job_queue.get(high)["status"] == "failed" and job_queue.get(finished)["status"] == "finished"
    assert queued_count(job_queue) == 7
    run_jobs(job_queue)
    assert {job_queue.get(job_id)["attempts"] for job_id in failed} == {2}  # each ran once more
    # Again, nothing queued twice: the second pass retries them once each.
    assert run_all(actions, "retry", JobFilter(), limit=100)[0]["done"] == 8


def test_cancel_queued_and_delete_finished(job_queue, settings):
    queued = [submit(job_queue, settings, type="count_words", text="x", metadata={"batch": "a"})["id"] for _ in range(4)]
    other = submit(job_queue, settings, type="count_words", text="x", metadata={"batch": "b"})["id"]
    actions = BulkActions(job_queue.connection)
    outcome = actions.run("cancel", ADMIN, JobFilter(metadata={"batch": "a"}))
    assert outcome.as_dict() == {"matched": 4, "done": 4, "skipped": 0} and outcome.next is None
    assert {job_queue.get(job_id)["status"] for job_id in queued} == {"canceled"}
    assert queued_count(job_queue) == 1
    run_jobs(job_queue)
    assert job_queue.get(other)["status"] == "finished"

    outcome = actions.run("delete", ADMIN, JobFilter())  # finished ones by default
    assert outcome.as_dict() == {"matched": 1, "done": 1, "skipped": 0}
    with pytest.raises(JobNotFound):
        job_queue.get(other)
    assert job_queue.connection.zscore(JOB_INDEX_KEY, other) is None
    assert actions.run("delete", ADMIN, JobFilter(statuses=frozenset({"canceled"}))).done == 4
    assert job_queue.connection.zcard(JOB_INDEX_KEY) == 0


def test_an_action_takes_only_its_statuses(job_queue):
    actions = BulkActions(job_queue.connection)
    with pytest.raises(ValueError, match="retry takes"):
        actions.run("retry", ADMIN, JobFilter(statuses=frozenset({"queued"})))
    with pytest.raises(ValueError, match="delete takes"):
        actions.run("delete", ADMIN, JobFilter(statuses=frozenset({"started"})))


def test_a_cancel_loses_to_a_worker_that_took_the_job(job_queue, settings):
    job_id = submit(job_queue, settings, type="count_words", text="x")["id"]
    queue = job_queue.queues["default"]
    job_queue.connection.lmove(queue.key, queue.intermediate_queue_key, "LEFT", "RIGHT")  # as a dequeue does
    outcome = BulkActions(job_queue.connection).run("cancel", ADMIN, JobFilter())
    assert outcome.as_dict() == {"matched": 1, "done": 0, "skipped": 1}
    assert job_queue.get(job_id)["status"] == "queued"


def test_a_scan_budget_answers_a_cursor(job_queue, settings):
    for _ in range(5):
        submit(job_queue, settings, type="fail", message="x")
    run_jobs(job_queue)
    total, _requests = run_all(BulkActions(job_queue.connection), "retry", JobFilter(), limit=100, scan_budget=1)
    assert total["done"] == 5


def test_a_bulk_retry_keeps_the_single_retrys_rules_for_dependencies(job_queue, settings):
    parent = submit(job_queue, settings, type="fail", message="no")["id"]
    child = submit(job_queue, settings, type="count_words", text="x", depends_on=[parent])["id"]
    run_jobs(job_queue)
    assert job_queue.get(parent)["status"] == "failed"
    assert job_queue.get(child)["error"]["type"] == "DependencyFailed"  # failed with its parent
    actions = BulkActions(job_queue.connection)
    # The child's parent has not finished: it is skipped, as POST /jobs/{id}/retry refuses it (409).
    outcome = actions.run("retry", ADMIN, JobFilter(id_prefix=child))
    assert outcome.as_dict() == {"matched": 1, "done": 0, "skipped": 1}
    assert job_queue.get(child)["status"] == "failed"
    assert actions.run("retry", ADMIN, JobFilter(id_prefix=parent)).done == 1
    assert job_queue.get(parent)["status"] == "queued"
