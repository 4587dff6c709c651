"""OffloadJob (app/jobs/job.py): a large text in a key of its own that goes with the job, and
jobs stored as JSON."""

from __future__ import annotations

import pytest

from app.jobs import Principal

from ..conftest import run_jobs, submit


def test_a_large_text_travels_in_a_key_of_its_own_and_goes_with_the_job(job_queue, settings):
    from app.jobs.engine.job import APART_FIELD, TEXT_INLINE_MAX_CHARS, OffloadJob
    from app.jobs.keys import text_key

    text = "ab cd\n" * (TEXT_INLINE_MAX_CHARS // 6 + 10)
    job_id = submit(job_queue, settings, type="count_words", text=text)["id"]
    job = OffloadJob.fetch(job_id, connection=job_queue.connection, serializer=job_queue.serializer)
    assert job.kwargs == {} and job.meta[APART_FIELD] == {"text": len(text)}  # not inside RQ's payload
    assert job_queue.connection.get(text_key(job_id)) == text.encode()
    assert text_key(job_id).startswith(job.key.rpartition(":job:")[0])  # same prefix, same hash tag
    small = submit(job_queue, settings, type="count_words", text="a b")["id"]
    assert not job_queue.connection.exists(text_key(small))
    run_jobs(job_queue)
    assert job_queue.get(job_id)["result"] == {"words": len(text.split()), "characters": len(text), "lines": len(text.splitlines())}
    assert not job_queue.connection.exists(text_key(job_id))  # finished: nothing can run it again
    assert job_queue.get(small)["result"]["words"] == 2


def test_a_job_whose_text_is_gone_fails_clearly_and_a_failed_one_keeps_it_for_a_retry(job_queue, settings):
    from app.jobs.engine.job import TEXT_INLINE_MAX_CHARS
    from app.jobs.keys import text_key

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


@pytest.mark.integration
def test_jobs_are_stored_as_json_not_pickle(stack, clean_valkey):
    job_id = stack.post({"type": "count_words", "text": "json please"}).json()["id"]
    stack.wait_for(job_id)
    raw = clean_valkey.client().hget(f"rq:job:{job_id}", "data")
    import json
    import zlib

    decoded = json.loads(zlib.decompress(raw))
    assert decoded[0] == "app.tasks.words.count_words_job"  # the task's function, shown by RQ; never imported
    assert decoded[3] == {"text": "json please"}
