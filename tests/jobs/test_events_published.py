"""What workers announce on the job-events channel (app/jobs/running/events.py), on fakeredis with
the in-process worker: a job's start (``<id> started``), each progress save (``<id> progress``)
and its end (the id alone), and the ?wait= waiters that wake on them still return only a
terminal job or at their timeout, reading the job again only for a change that may end it."""

from __future__ import annotations

import threading

from app.jobs import ANONYMOUS
from app.jobs.keys import EVENTS_CHANNEL
from app.jobs.running.context import ProgressReporter
from app.tasks import sleep

from ..conftest import run_jobs, submit


def announcements(fake_redis):
    pubsub = fake_redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(EVENTS_CHANNEL)

    def read() -> list[str]:
        messages = []
        while (message := pubsub.get_message(timeout=0.01)) is not None:
            if message["type"] == "message":
                messages.append(message["data"].decode())
        return messages

    pubsub.get_message(timeout=1)  # the subscription's confirmation (None: ignored)
    return read


def test_a_job_announces_its_start_each_progress_save_and_its_end(fake_redis, job_queue, settings):
    read = announcements(fake_redis)
    job_id = submit(job_queue, settings, type="sleep", seconds=0.6)["id"]
    assert read() == []  # submitting announces nothing
    run_jobs(job_queue)
    messages = read()
    # Start, progress at ~0.25 s and ~0.5 s (saved at most 4 times a second), the last one, the end.
    assert messages[0] == f"{job_id} started" and messages[-1] == job_id
    assert set(messages[1:-1]) == {f"{job_id} progress"}
    assert len(messages) >= 4, messages
    resource = job_queue.get(job_id)
    assert resource["status"] == "finished" and resource["progress"] == {"done": 600, "total": 600}


def test_a_job_without_progress_announces_its_start_and_end(fake_redis, job_queue, settings):
    read = announcements(fake_redis)
    job_id = submit(job_queue, settings, type="noop")["id"]
    run_jobs(job_queue)
    assert read() == [f"{job_id} started", job_id]


def test_progress_is_saved_and_announced_in_one_round_trip(fake_redis, job_queue, settings):
    read = announcements(fake_redis)
    job_id = submit(job_queue, settings, type="sleep", seconds=1)["id"]
    job = job_queue.fetch(job_id, ANONYMOUS)
    sent = []
    original = fake_redis.pipeline

    def counting_pipeline(*args, **kwargs):
        sent.append("pipeline")
        return original(*args, **kwargs)

    fake_redis.pipeline = counting_pipeline  # type: ignore[method-assign]
    reporter = ProgressReporter(job)
    reporter(5, 10)  # too soon after the start: not saved
    reporter(10, 10)  # the last one always is
    assert sent == ["pipeline"] and read() == [f"{job_id} progress"]
    assert job_queue.get(job_id)["progress"] == {"done": 10, "total": 10}


def test_sleep_reports_milliseconds_slept():
    reports = []
    assert sleep(0.25, progress=lambda done, total: reports.append((done, total))) == {"slept": 0.25}
    assert reports[-1] == (250, 250) and all(total == 250 for _, total in reports)
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)


def test_wait_wakes_on_progress_but_returns_only_the_terminal_job(fake_redis, job_queue, settings):
    job_id = submit(job_queue, settings, type="sleep", seconds=0.6)["id"]
    answers = []
    waiter = threading.Thread(target=lambda: answers.append(job_queue.wait(job_id, ANONYMOUS, 20)))
    waiter.start()
    run_jobs(job_queue)
    waiter.join(30)
    assert answers and answers[0]["status"] == "finished"


def test_a_wait_reads_the_job_again_only_for_a_change_that_may_end_it(fake_redis, job_queue, settings, monkeypatch):
    """A ``?wait=`` answers an ended job only: a start or a progress report wakes it (the stream
    of ``GET /jobs/{id}/events`` reads the job for each) but it waits on without a read; the
    job's end is read at once. Reads counted with the periodic re-read pushed out of the test."""
    import time

    from app.jobs import store
    from app.jobs.running.events import publish_job_event

    monkeypatch.setattr(store, "REREAD_SECONDS", 60.0)
    job_id = submit(job_queue, settings, type="noop")["id"]
    reads = []
    original = job_queue.get
    monkeypatch.setattr(job_queue, "get", lambda *a, **k: reads.append(1) or original(*a, **k))
    answers = []
    waiter = threading.Thread(target=lambda: answers.append(job_queue.wait(job_id, ANONYMOUS, 30)))
    waiter.start()
    deadline = time.monotonic() + 10
    while not reads and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the listener subscribed
    for kind in ("started", "progress", "progress"):
        publish_job_event(fake_redis, job_id, kind=kind)
    time.sleep(0.3)
    assert len(reads) == 1 and waiter.is_alive()
    run_jobs(job_queue)  # its start ("started") and its end (the id)
    waiter.join(10)
    assert answers and answers[0]["status"] == "finished"
    assert len(reads) == 2  # the first, and once for the end: none for the starts and the progress
