"""Per-minute series (app/jobs/timeseries.py): the bucket math, the writes riding the callers'
pipelines, and ``GET /stats/timeseries`` on fakeredis and on real processes (issue 18, item 6)."""

from __future__ import annotations

import time

import pytest

from app.jobs.admin import timeseries
from app.jobs.running.counters import record_outcome
from app.jobs.keys import KEY_PREFIX, timeseries_key

from ..conftest import assert_problem, run_jobs


def test_minutes_and_window():
    assert timeseries.minute_of(0) == 0 and timeseries.minute_of(59.999) == 0 and timeseries.minute_of(60) == 1
    assert timeseries.window(3600 + 30, 3) == [58, 59, 60]  # minute 60 is the current one
    assert len(timeseries.window(time.time(), 60)) == 60
    assert timeseries_key(61) == f"{KEY_PREFIX}:ts:61"


def test_series_from_buckets():
    buckets = [
        {b"enqueued:default": b"3", b"finished:default": b"2", b"runtime_sum:default": b"1.5", b"runtime_count:default": b"2"},
        {},
        {"failed:low": "1", "runtime_sum:low": "0.25", "runtime_count:low": "1"},
    ]
    body = timeseries.series([10, 11, 12], buckets, ["high", "default", "low"])
    assert body["minutes"] == 3 and body["step_seconds"] == 60
    assert body["times"] == ["1970-01-01T00:10:00Z", "1970-01-01T00:11:00Z", "1970-01-01T00:12:00Z"]
    assert body["queues"]["default"] == {
        "enqueued": [3, 0, 0], "finished": [2, 0, 0], "failed": [0, 0, 0], "mean_run_seconds": [0.75, None, None],
    }  # fmt: skip
    assert body["queues"]["low"]["failed"] == [0, 0, 1] and body["queues"]["low"]["mean_run_seconds"] == [None, None, 0.25]
    assert body["queues"]["high"]["finished"] == [0, 0, 0]


def test_count_rides_the_pipeline_and_expires(fake_redis):
    at = 1_800_000_000.0
    with fake_redis.pipeline() as pipe:
        timeseries.count(pipe, "finished", "default", at=at, seconds=0.5)
        timeseries.count(pipe, "finished", "default", at=at + 1, seconds=1.5)
        assert not fake_redis.exists(timeseries_key(timeseries.minute_of(at)))  # nothing sent yet
        pipe.execute()
    key = timeseries_key(timeseries.minute_of(at))
    assert 0 < fake_redis.ttl(key) <= timeseries.RETENTION_SECONDS
    body = timeseries.read(fake_redis, ["default"], 2, now=at + 60)
    assert body["queues"]["default"]["finished"] == [2, 0]
    assert body["queues"]["default"]["mean_run_seconds"] == [1.0, None]


def test_record_outcome_counts_in_the_callers_pipeline(client, job_queue, fake_redis):
    job_id = client.post("/jobs", json={"type": "noop", "queue": "low"}).get_json()["id"]
    run_jobs(job_queue)
    job = job_queue.queues["low"].fetch_job(job_id)
    before = timeseries.read(fake_redis, ["low"], 2)["queues"]["low"]["finished"]
    with fake_redis.pipeline() as pipe:
        record_outcome(fake_redis, job, "finished", pipeline=pipe)
        assert timeseries.read(fake_redis, ["low"], 2)["queues"]["low"]["finished"] == before  # not sent
        pipe.execute()
    assert sum(timeseries.read(fake_redis, ["low"], 2)["queues"]["low"]["finished"]) == sum(before) + 1


def test_timeseries_endpoint_counts_jobs(client, job_queue):
    for _ in range(3):
        client.post("/jobs", json={"type": "noop"})
    client.post("/jobs", json={"type": "fail", "message": "x", "queue": "low"})
    run_jobs(job_queue)
    answer = client.get("/stats/timeseries?minutes=5")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["minutes"] == 5 and len(body["times"]) == 5 and set(body["queues"]) == {"high", "default", "low"}
    default, low = body["queues"]["default"], body["queues"]["low"]
    assert sum(default["enqueued"]) == 3 and sum(default["finished"]) == 3 and sum(default["failed"]) == 0
    assert sum(low["failed"]) == 1 and sum(low["finished"]) == 0
    assert any(value is not None for value in default["mean_run_seconds"])
    assert len(client.get("/stats/timeseries").get_json()["times"]) == 60


def test_timeseries_endpoint_refuses_bad_minutes(client):
    for value in ("0", "121", "x", "-1", "1.5", "²", ""):
        problem = assert_problem(client.get(f"/stats/timeseries?minutes={value}"), 422)
        assert problem["errors"][0]["field"] == "minutes"


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_jobs_run_by_real_workers_show_up_in_the_series(stack):
    ids = [stack.post({"type": "noop"}).json()["id"] for _ in range(3)]
    ids.append(stack.post({"type": "fail", "message": "x", "queue": "low"}).json()["id"])
    assert [stack.wait_for(job_id)["status"] for job_id in ids] == ["finished"] * 3 + ["failed"]
    body = stack.get("/stats/timeseries?minutes=10").json()
    default, low = body["queues"]["default"], body["queues"]["low"]
    assert (sum(default["enqueued"]), sum(default["finished"]), sum(default["failed"])) == (3, 3, 0)
    assert (sum(low["enqueued"]), sum(low["finished"]), sum(low["failed"])) == (1, 0, 1)
    assert any(value is not None and value >= 0 for value in default["mean_run_seconds"])
