"""A job's attempts and its callback in its trace (app/jobs/tracing.py), with an in-process worker
on fakeredis and a real HTTP receiver for the callback."""

from __future__ import annotations

import logging

import pytest

from app import logs, tracing
from app.jobs import catalog
from app.jobs.engine.job import OffloadJob
from app.jobs.running.tracing import delivery_meta, start_attempt
from app.settings import get_settings

from ..conftest import run_jobs
from ..receiver import Receiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SUBMISSION = tracing.SpanContext(TRACE, "00f067aa0ba902b7", tracestate="congo=t61rcWkgMzE")


class _Records(logging.Handler):
    """Every record logged while installed on the root logger, through offload's filter."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(logs.ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records():
    handler = _Records()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _submit(job_queue, settings, trace: dict | None, **fields) -> str:
    spec = catalog.request_adapter(True).validate_python(fields, context={"settings": settings})
    return job_queue.submit(spec, owner=None, extra_meta={"trace": trace} if trace else None)["id"]


def test_an_attempt_is_a_new_span_under_the_submission(fake_redis):
    job = OffloadJob(connection=fake_redis)
    job.meta = {"trace": tracing.to_meta(SUBMISSION)}
    parent, span = start_attempt(job)
    assert parent == SUBMISSION
    assert span.trace_id == TRACE and span.span_id != SUBMISSION.span_id and span.tracestate == SUBMISSION.tracestate


def test_a_job_stored_without_a_trace_gets_one_of_its_own(fake_redis):
    job = OffloadJob(connection=fake_redis)
    job.meta = {}
    parent, span = start_attempt(job)
    assert parent is None and len(span.trace_id) == 32


def test_every_line_logged_while_a_job_runs_carries_its_trace_and_attempt_span(job_queue, settings, records):
    job_id = _submit(job_queue, settings, tracing.to_meta(SUBMISSION), type="count_words", text="a b c")
    run_jobs(job_queue)
    assert job_queue.get(job_id)["status"] == "finished"
    # From the worker taking it (its dequeue line is logged before) to its end.
    taken = [record.getMessage().startswith("Worker") and job_id in record.getMessage() for record in records]
    during = records[taken.index(True) + 1 :]
    during = [record for record in during if getattr(record, "job_id", None) == job_id]
    assert len(during) >= 3  # RQ's "handling success", "Successfully completed", "Job OK"...
    spans = {(record.trace_id, record.span_id) for record in during}
    assert len(spans) == 1 and next(iter(spans))[0] == TRACE
    assert next(iter(spans))[1] != SUBMISSION.span_id
    assert tracing.current.get() is None


def test_two_attempts_are_two_spans_of_the_same_trace(job_queue, settings, records):
    job_id = _submit(job_queue, settings, tracing.to_meta(SUBMISSION), type="fail", message="no", max_retries=1)
    job = OffloadJob.fetch(job_id, connection=job_queue.connection, serializer=job_queue.serializer)
    job.retry_intervals = [0]
    job.save()
    run_jobs(job_queue)
    run_jobs(job_queue)
    assert job_queue.get(job_id)["attempts"] == 2
    traced = [record for record in records if getattr(record, "job_id", None) == job_id and hasattr(record, "trace_id")]
    spans, traces = {record.span_id for record in traced}, {record.trace_id for record in traced}
    assert traces == {TRACE} and len(spans) == 2


def test_the_callback_is_delivered_in_the_jobs_trace_under_its_last_attempt(
    job_queue, settings, records, receiver, monkeypatch
):
    monkeypatch.setenv("WEBHOOK_SECRET", "s")
    monkeypatch.setenv("ALLOW_PRIVATE_CALLBACKS", "1")
    get_settings.cache_clear()
    job_id = _submit(
        job_queue, settings, tracing.to_meta(SUBMISSION), type="count_words", text="a", callback_url=receiver.url
    )
    run_jobs(job_queue)  # the job, then (on the high queue) its delivery
    run_jobs(job_queue)
    assert len(receiver.deliveries) == 1
    headers = {name.lower(): value for name, value in receiver.deliveries[0][0].items()}  # urllib sends "Traceparent"
    attempt = {record.span_id for record in records if getattr(record, "job_id", None) == job_id and hasattr(record, "span_id")}
    assert len(attempt) == 1
    delivery = [job for job in _jobs(job_queue) if job.meta.get("for_job") == job_id][0]
    assert delivery.meta["trace"] == {
        "trace_id": TRACE, "parent_id": attempt.pop(), "sampled": True, "tracestate": "congo=t61rcWkgMzE",
    }  # fmt: skip
    sent = tracing.parse_traceparent(headers["traceparent"])
    assert sent.trace_id == TRACE and sent.sampled
    assert headers["tracestate"] == "congo=t61rcWkgMzE"
    # The POST is a span of its own, under the delivery's attempt (whose lines carry that attempt).
    delivery_attempts = {
        record.span_id for record in records if getattr(record, "job_id", None) == delivery.id and hasattr(record, "span_id")
    }
    assert len(delivery_attempts) == 1 and sent.span_id not in delivery_attempts


def test_a_callback_queued_outside_any_attempt_goes_under_the_jobs_parent(fake_redis):
    job = OffloadJob(connection=fake_redis)
    job.meta = {"trace": tracing.to_meta(SUBMISSION)}
    assert delivery_meta(job) == tracing.to_meta(SUBMISSION)
    token = tracing.current.set(tracing.new_root())  # another trace's span: not this job's attempt
    try:
        assert delivery_meta(job) == tracing.to_meta(SUBMISSION)
    finally:
        tracing.current.reset(token)
    job.meta = {}
    assert delivery_meta(job) is None


def _jobs(job_queue) -> list[OffloadJob]:
    keys = [key.decode() for key in job_queue.connection.scan_iter("rq:job:*") if key.count(b":") == 2]
    fetch = OffloadJob.fetch
    return [fetch(key.rsplit(":", 1)[1], connection=job_queue.connection, serializer=job_queue.serializer) for key in keys]


def test_each_tick_of_a_schedule_starts_a_trace_of_its_own(fake_redis, settings, job_queue):
    from app.jobs.contract.schedule_schemas import ScheduleRequest
    from app.jobs.scheduling.schedules import ScheduleStore
    from app.jobs.scheduling.ticker import ScheduleTicker

    from .test_schedules import T0, set_next

    store = ScheduleStore(fake_redis, settings)
    body = {"job": {"type": "noop"}, "every_seconds": 10}
    schedule = store.create(ScheduleRequest.model_validate(body, context={"settings": settings}), owner=None)
    ticker = ScheduleTicker(fake_redis, settings)
    set_next(store, schedule["id"], T0 + 10, anchor=T0)
    first = ticker.claim(schedule["id"], now=T0 + 10.01)
    set_next(store, schedule["id"], T0 + 20, anchor=T0)
    second = ticker.claim(schedule["id"], now=T0 + 20.01)
    traces = [_stored(job_queue, job_id)["trace"] for job_id in (first, second)]
    assert traces[0]["trace_id"] != traces[1]["trace_id"]
    assert all(trace["parent_id"] is None and trace["sampled"] for trace in traces)  # roots: no submission span
    assert job_queue.get(first)["trace_id"] == traces[0]["trace_id"]


def _stored(job_queue, job_id: str) -> dict:
    return OffloadJob.fetch(job_id, connection=job_queue.connection, serializer=job_queue.serializer).meta
