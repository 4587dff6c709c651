"""requeue_stranded (app/jobs/queue.py) on fakeredis, with the clock in the test's hands: a job
left on an intermediate list by a dead worker goes back to the front of its queue after the
grace period, and never sooner because of a sighting from an earlier stay on the list."""

from __future__ import annotations

import pytest

from app.jobs.engine import queue as queue_module
from app.jobs.engine.queue import requeue_stranded
from tests.conftest import submit

GRACE = 5


@pytest.fixture
def clock(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(queue_module.time, "time", lambda: now[0])
    return now


def _strand(job_queue, queue) -> str:
    """Take the first job off ``queue`` as a worker's dequeue does, and never start it."""
    return job_queue.connection.lmove(queue.key, queue.intermediate_queue_key, "LEFT", "RIGHT").decode()


def test_a_stranded_job_goes_back_to_the_front_after_the_grace_period(job_queue, settings, clock):
    stranded = submit(job_queue, settings, type="noop")["id"]
    later = submit(job_queue, settings, type="noop")["id"]
    queue = job_queue.queues["default"]
    assert _strand(job_queue, queue) == stranded
    assert requeue_stranded(queue, job_queue.connection, GRACE) == []  # first sighting
    clock[0] += GRACE - 1
    assert requeue_stranded(queue, job_queue.connection, GRACE) == []  # not yet
    clock[0] += 2
    assert requeue_stranded(queue, job_queue.connection, GRACE) == [stranded]
    assert queue.get_job_ids() == [stranded, later]
    assert job_queue.connection.llen(queue.intermediate_queue_key) == 0


def test_a_sighting_from_an_earlier_stay_does_not_count(job_queue, settings, clock):
    job_id = submit(job_queue, settings, type="noop")["id"]
    queue = job_queue.queues["default"]
    _strand(job_queue, queue)
    assert requeue_stranded(queue, job_queue.connection, GRACE) == []  # seen between dequeue and start
    job_queue.connection.lrem(queue.intermediate_queue_key, 1, job_id)  # ... then its worker started it
    job_queue.connection.rpush(queue.key, job_id)  # an hour later it is queued again (a retry)
    clock[0] += 3600
    _strand(job_queue, queue)  # and a live worker has just taken it
    assert requeue_stranded(queue, job_queue.connection, GRACE) == []  # a new stay: the grace starts now
    assert job_queue.connection.llen(queue.key) == 0
    clock[0] += GRACE
    assert requeue_stranded(queue, job_queue.connection, GRACE) == [job_id]  # truly stranded this time
