"""JobQueue and OffloadJob on fakeredis, jobs run in-process by RQ's SimpleWorker."""

from __future__ import annotations

import pytest

from app import schemas
from app.queueing import JobNotFound, JobStateConflict, Principal, describe_exception

from .conftest import run_jobs


def submit(job_queue, settings, owner=None, **fields):
    spec = schemas.request_adapter(True).validate_python(fields, context={"settings": settings})
    return job_queue.submit(spec, owner=owner)


def test_unknown_function_is_refused_and_not_run(job_queue, tmp_path):
    marker = tmp_path / "made"
    job = job_queue.queues["default"].enqueue_call("os.mkdir", args=[str(marker)])
    run_jobs(job_queue)
    job.refresh()
    assert job.get_status() == "failed"
    assert "is not an offload task" in job.latest_result().exc_string
    assert not marker.exists()


def test_arguments_that_no_longer_validate_fail_clearly(job_queue, settings):
    job = job_queue.queues["default"].enqueue_call("app.tasks.count_words", kwargs={"text": ""})
    job.meta["type"] = "count_words"
    job.save_meta()
    run_jobs(job_queue)
    error = job_queue.get(job.id)["error"]
    assert error["type"] == "InvalidArgumentsError"
    assert "text" in error["message"]


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


def test_retry_policy_is_exponential_with_jitter_and_capped(job_queue):
    policy = job_queue.retry_policy(8)
    base, cap = job_queue.settings.retry_backoff_base_seconds, job_queue.settings.retry_backoff_max_seconds
    assert policy.max == 8
    for attempt, interval in enumerate(policy.intervals):
        expected = min(cap, base * 2**attempt)
        assert 0.8 * expected - 1 <= interval <= 1.2 * expected + 1
    assert job_queue.retry_policy(0) is None


def test_describe_exception():
    assert describe_exception("Traceback...\napp.tasks.SmtpError: server said 554") == {
        "type": "SmtpError",
        "message": "server said 554",
    }
    timeout = describe_exception("rq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (3 seconds)", 3)
    assert timeout["type"] == "JobTimeout" and "timed out" in timeout["message"]
    assert describe_exception("Work-horse terminated unexpectedly; waitpid returned 9")["type"] == "WorkerDied"
    assert describe_exception("Moved to FailedJobRegistry, due to AbandonedJobError, at x")["type"] == "WorkerDied"
    assert describe_exception("something odd happened")["type"] == "Error"


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


def test_a_large_text_travels_in_a_key_of_its_own_and_goes_with_the_job(job_queue, settings):
    from app.queueing import TEXT_FIELD, TEXT_INLINE_MAX_CHARS, OffloadJob, text_key

    text = "ab cd\n" * (TEXT_INLINE_MAX_CHARS // 6 + 10)
    job_id = submit(job_queue, settings, type="count_words", text=text)["id"]
    job = OffloadJob.fetch(job_id, connection=job_queue.connection, serializer=job_queue.serializer)
    assert job.kwargs == {} and job.meta[TEXT_FIELD] == len(text)  # not inside RQ's payload
    assert job_queue.connection.get(text_key(job_id)) == text.encode()
    assert text_key(job_id).startswith(job.key.rpartition(":job:")[0])  # same prefix, same hash tag
    small = submit(job_queue, settings, type="count_words", text="a b")["id"]
    assert not job_queue.connection.exists(text_key(small))
    run_jobs(job_queue)
    assert job_queue.get(job_id)["result"] == {"words": len(text.split()), "characters": len(text), "lines": len(text.splitlines())}
    assert not job_queue.connection.exists(text_key(job_id))  # finished: nothing can run it again
    assert job_queue.get(small)["result"]["words"] == 2


def test_a_job_whose_text_is_gone_fails_clearly_and_a_failed_one_keeps_it_for_a_retry(job_queue, settings):
    from app.queueing import TEXT_INLINE_MAX_CHARS, text_key

    text = "word " * (TEXT_INLINE_MAX_CHARS // 5 + 10)
    lost = submit(job_queue, settings, type="count_words", text=text, max_retries=0)["id"]
    job_queue.connection.delete(text_key(lost))
    canceled = submit(job_queue, settings, type="count_words", text=text, max_retries=0)["id"]
    job_queue.cancel(canceled, Principal(None, True))
    run_jobs(job_queue)
    failed = job_queue.get(lost)
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "MissingTextError" and "no longer in Redis" in failed["error"]["message"]
    assert job_queue.connection.exists(text_key(canceled))  # canceled: it may be retried
    assert job_queue.retry(canceled, Principal(None, True))["status"] == "queued"
    run_jobs(job_queue)
    assert job_queue.get(canceled)["result"]["words"] == len(text.split())
    job_queue.fetch(canceled).delete()
    assert not job_queue.connection.exists(text_key(canceled))
