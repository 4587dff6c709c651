"""``traceparent`` on ``POST /jobs`` and ``POST /jobs/batch`` (app/web/tracing.py), on fakeredis:
the job joins the caller's trace under the server's span, an invalid header starts a new trace
(never a 4xx), and the answer and ``GET /jobs/{id}`` say which trace."""

from __future__ import annotations

import logging
import re

import pytest

from app import tracing
from app.jobs.engine.job import OffloadJob

from ..jobs.test_tracing import _Records

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{CALLER_SPAN}-01"
ANSWER = re.compile(r"^00-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-(?P<flags>0[01])$")


def _post(client, headers=None, body=None):
    return client.post("/jobs", json=body or {"type": "count_words", "text": "a b c"}, headers=headers or {})


def _stored_trace(job_queue, job_id: str) -> dict:
    return OffloadJob.fetch(job_id, connection=job_queue.connection, serializer=job_queue.serializer).meta["trace"]


def test_a_job_joins_the_callers_trace_under_a_span_of_the_servers(client, job_queue):
    response = _post(client, {"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"})
    assert response.status_code == 202
    answer = ANSWER.match(response.headers["traceparent"])
    assert answer and answer["trace"] == TRACE and answer["flags"] == "01"
    assert answer["span"] != CALLER_SPAN  # the server's span, a child of the caller's
    job_id = response.get_json()["id"]
    assert response.get_json()["trace_id"] == TRACE
    assert client.get(f"/jobs/{job_id}").get_json()["trace_id"] == TRACE
    # The job's attempts will be children of the server's span, and the tracestate goes on with them.
    assert _stored_trace(job_queue, job_id) == {
        "trace_id": TRACE, "parent_id": answer["span"], "sampled": True, "tracestate": "congo=t61rcWkgMzE",
    }  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "not a traceparent"},
        {"traceparent": f"00-{'0' * 32}-{CALLER_SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},
        {"traceparent": TRACEPARENT.upper()},
        {"traceparent": f"ff-{TRACE}-{CALLER_SPAN}-01", "tracestate": "a=1"},
    ],
)
def test_no_valid_traceparent_starts_a_new_trace_and_is_never_refused(client, job_queue, headers):
    response = _post(client, headers)
    assert response.status_code == 202
    answer = ANSWER.match(response.headers["traceparent"])
    body = response.get_json()
    assert answer and answer["trace"] == body["trace_id"] != TRACE and answer["flags"] == "01"
    stored = _stored_trace(job_queue, body["id"])
    assert stored["parent_id"] == answer["span"] and "tracestate" not in stored


def test_each_submission_without_a_header_gets_its_own_trace(client):
    ids = {_post(client).get_json()["trace_id"] for _ in range(5)}
    assert len(ids) == 5


def test_an_unsampled_caller_gets_an_unsampled_answer(client, job_queue):
    response = _post(client, {"traceparent": f"00-{TRACE}-{CALLER_SPAN}-00"})
    assert ANSWER.match(response.headers["traceparent"])["flags"] == "00"
    assert _stored_trace(job_queue, response.get_json()["id"])["sampled"] is False


def test_a_refused_submission_still_answers_with_its_span(client):
    response = _post(client, {"traceparent": TRACEPARENT}, body={"type": "count_words"})
    assert response.status_code == 422
    assert ANSWER.match(response.headers["traceparent"])["trace"] == TRACE


def test_only_submissions_carry_traceparent(client):
    job_id = _post(client).get_json()["id"]
    assert "traceparent" not in client.get(f"/jobs/{job_id}", headers={"traceparent": TRACEPARENT}).headers
    assert "traceparent" not in client.get("/healthz").headers


def test_an_idempotent_replay_shows_the_first_jobs_trace(client):
    first = _post(client, {"traceparent": TRACEPARENT, "Idempotency-Key": "k1"})
    again = _post(client, {"Idempotency-Key": "k1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"] and again.get_json()["trace_id"] == TRACE


def test_every_job_of_a_batch_joins_the_callers_trace(client, job_queue):
    response = client.post(
        "/jobs/batch",
        json={"jobs": [{"type": "noop"}, {"type": "count_words", "text": "x"}]},
        headers={"traceparent": TRACEPARENT},
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    answer = ANSWER.match(response.headers["traceparent"])
    assert answer["trace"] == TRACE
    jobs = [result["job"] for result in response.get_json()["results"]]
    assert [job["trace_id"] for job in jobs] == [TRACE, TRACE]
    assert {_stored_trace(job_queue, job["id"])["parent_id"] for job in jobs} == {answer["span"]}



def test_the_submissions_log_lines_carry_its_span_which_ends_with_the_request(client):
    handler = _Records()
    logger = logging.getLogger("app.jobs.store")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        response = _post(client, {"traceparent": TRACEPARENT})
        client.get("/healthz")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    answer = ANSWER.match(response.headers["traceparent"])
    submitted = [record for record in handler.records if record.getMessage() == "job submitted"]
    assert [(record.trace_id, record.span_id) for record in submitted] == [(TRACE, answer["span"])]
    assert tracing.current.get() is None
