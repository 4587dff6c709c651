"""``GET /jobs`` search parameters and ``POST /jobs/bulk`` (app/web/search.py, app/web/bulk.py):
over HTTP on fakeredis, the answers, problems and keys; on real processes (gunicorn, two workers,
Valkey), bulk retry and cancel racing the workers and each other, with every execution counted."""

from __future__ import annotations

import os
import threading

import pytest

from app import create_app
from app.jobs import JobQueue
from app.jobs.keys import JOB_INDEX_KEY
from app.settings import get_settings

from ..conftest import assert_problem, run_jobs, submit, wait_until

# --- over HTTP, on fakeredis ---------------------------------------------------------------------


def test_search_over_http(client, job_queue, settings):
    one = submit(job_queue, settings, type="count_words", text="a", metadata={"order": 1234})
    submit(job_queue, settings, type="count_words", text="b", metadata={"order": 7})
    failed = submit(job_queue, settings, type="fail", message="no")
    run_jobs(job_queue)
    found = client.get(f"/jobs?id_prefix={one['id'][:8]}").get_json()
    assert [job["id"] for job in found["jobs"]] == [one["id"]] and found["next"] is None
    assert found["jobs"][0]["links"]["self"] == f"/jobs/{one['id']}"
    by_meta = client.get("/jobs?metadata_key=order&metadata_value=1234").get_json()
    assert [job["id"] for job in by_meta["jobs"]] == [one["id"]]
    has_key = client.get("/jobs?metadata_key=order").get_json()["jobs"]
    assert len(has_key) == 2 and [job["id"] for job in client.get("/jobs?metadata_value=1234").get_json()["jobs"]] == [one["id"]]
    by_error = client.get("/jobs?error_type=RuntimeError&status=failed").get_json()
    assert [job["id"] for job in by_error["jobs"]] == [failed["id"]]
    assert client.get("/jobs?error_type=RuntimeError&status=finished").get_json()["jobs"] == []
    # Pages follow next, with the search parameters kept.
    assert_problem(client.get("/jobs?id_prefix=&limit=1"), 422)  # an empty prefix is not a prefix
    seen, url = [], "/jobs?metadata_key=order&metadata_value=7&limit=1"
    while url:
        body = client.get(url).get_json()
        seen += body["jobs"]
        url = body["next"]
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("id_prefix=a/b", {"id_prefix"}),
        ("id_prefix=" + "a" * 65, {"id_prefix"}),
        ("metadata_key=&metadata_value=1", {"metadata_key"}),
        ("metadata_key=k&metadata_value=" + "v" * 257, {"metadata_value"}),
        ("error_type=no%20spaces", {"error_type"}),
        ("error_type=X&limit=0", {"limit"}),
    ],
)
def test_bad_search_parameters_are_422(client, query, fields):
    problem = assert_problem(client.get(f"/jobs?{query}"), 422)
    assert {error["field"] for error in problem["errors"]} == fields


def test_bulk_over_http(client, job_queue, settings):
    ids = [submit(job_queue, settings, type="fail", message="x")["id"] for _ in range(5)]
    run_jobs(job_queue)
    first = client.post("/jobs/bulk", json={"action": "retry", "filter": {"error_type": "RuntimeError"}, "limit": 3})
    assert first.status_code == 200, first.text
    body = first.get_json()
    assert body == {"action": "retry", "matched": 3, "done": 3, "skipped": 0, "next": body["next"]} and body["next"]
    rest = client.post("/jobs/bulk", json={"action": "retry", "limit": 3, "cursor": body["next"]}).get_json()
    assert rest == {"action": "retry", "matched": 2, "done": 2, "skipped": 0, "next": None}
    assert {job_queue.get(job_id)["status"] for job_id in ids} == {"queued"}
    canceled = client.post("/jobs/bulk", json={"action": "cancel", "filter": {"type": "fail"}}).get_json()
    assert canceled["done"] == 5
    deleted = client.post("/jobs/bulk", json={"action": "delete", "filter": {"status": "canceled"}}).get_json()
    assert deleted["done"] == 5 and job_queue.connection.zcard(JOB_INDEX_KEY) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "action"),
        ({"action": "explode"}, "action"),
        ({"action": "retry", "filter": {"colour": "red"}}, "filter.colour"),
        ({"action": "retry", "filter": {"status": "queued"}}, "filter.status"),
        ({"action": "cancel", "filter": {"status": "failed"}}, "filter.status"),
        ({"action": "retry", "filter": {"status": "nope"}}, "filter.status"),
        ({"action": "retry", "limit": 0}, "limit"),
        ({"action": "retry", "limit": 10_001}, "limit"),
        ({"action": "retry", "cursor": "!!"}, "cursor"),
        ({"action": "retry", "filter": {"created_after": "2026-01-01T00:00:00"}}, "filter.created_after"),
        ({"action": "retry", "filter": {"metadata": {"k": 1}}}, "filter.metadata.k"),
        ({"action": "delete", "filter": {"created_before": 0}}, "filter.created_before"),
    ],
)
def test_bad_bulk_requests_are_422_and_touch_nothing(client, job_queue, settings, body, field):
    job_id = submit(job_queue, settings, type="fail", message="x")["id"]
    run_jobs(job_queue)
    problem = assert_problem(client.post("/jobs/bulk", json=body), 422)
    assert field in {error["field"] for error in problem["errors"]}, problem["errors"]
    assert job_queue.get(job_id)["status"] == "failed"


def test_a_missing_action_is_required_and_an_unknown_one_is_named_as_not_an_action(client):
    """Issue 25: an unknown action was reported as "required" although it was given."""
    missing = assert_problem(client.post("/jobs/bulk", json={"filter": {}}), 422)["errors"]
    assert missing == [{"field": "action", "message": "required: one of retry, cancel, delete"}]
    unknown = assert_problem(client.post("/jobs/bulk", json={"action": "explode"}), 422)["errors"]
    assert unknown == [{"field": "action", "message": "'explode' is not one of the actions: retry, cancel, delete"}]
    nested = assert_problem(client.post("/jobs/bulk", json={"action": "retry", "filter": {"status": "nope"}}), 422)
    assert [error["field"] for error in nested["errors"]] == ["filter.status"]


def test_an_integral_float_limit_is_an_integer_and_options_lists_post(client):
    answer = client.post("/jobs/bulk", json={"action": "delete", "limit": 412.0})
    assert answer.status_code == 200 and answer.get_json()["matched"] == 0
    assert_problem(client.post("/jobs/bulk", json={"action": "delete", "limit": 4.5}), 422)
    assert client.options("/jobs/bulk").headers["Allow"] == "POST, OPTIONS"


def test_malformed_bulk_bodies_are_4xx(client):
    assert_problem(client.post("/jobs/bulk", data="{", content_type="application/json"), 400)
    assert_problem(client.post("/jobs/bulk", data="[]", content_type="application/json"), 400)
    form = client.post("/jobs/bulk", data={"action": "retry"}, content_type="multipart/form-data")
    assert assert_problem(form, 415) and form.headers["Accept-Post"] == "application/json"


def test_bulk_is_admin_only_and_search_finds_own_jobs(monkeypatch, fake_redis):
    monkeypatch.setenv("API_KEYS", "shop:client:s3cret,blog:client:b1og,ops:admin:t0ps3cret")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()
    shop, blog, ops = ({"Authorization": f"Bearer {secret}"} for secret in ("s3cret", "b1og", "t0ps3cret"))
    job = {"type": "count_words", "text": "x", "metadata": {"k": "v"}}
    mine = client.post("/jobs", json=job, headers=shop).get_json()["id"]
    client.post("/jobs", json=job, headers=blog)
    found = client.get("/jobs?metadata_key=k&metadata_value=v", headers=shop).get_json()["jobs"]
    assert [item["id"] for item in found] == [mine]
    assert len(client.get("/jobs?metadata_key=k&metadata_value=v", headers=ops).get_json()["jobs"]) == 2

    assert_problem(client.post("/jobs/bulk", json={"action": "cancel"}), 401)
    forbidden = assert_problem(client.post("/jobs/bulk", json={"action": "cancel"}, headers=shop), 403)
    assert "admin" in forbidden["detail"]
    assert client.get(f"/jobs/{mine}", headers=shop).get_json()["status"] == "queued"
    assert client.post("/jobs/bulk", json={"action": "cancel"}, headers=ops).get_json()["done"] == 2


# --- on real processes ---------------------------------------------------------------------------


def _jobs(stack, query: str) -> list[dict]:
    jobs, url = [], f"/jobs?limit=200&{query}"
    while url:
        page = stack.get(url).json()
        jobs += page["jobs"]
        url = page["next"]
    return jobs


def _bulk_all(stack, body: dict, totals: list[dict]) -> None:
    cursor = None
    while True:
        response = stack.session_post("/jobs/bulk", json={**body, "cursor": cursor})
        assert response.status_code == 200, response.text
        answer = response.json()
        totals.append(answer)
        cursor = answer["next"]
        if cursor is None:
            return


def _prefix() -> str:
    """RQ's key prefix in the stack's processes (``{offload}`` on the cluster deployment)."""
    return os.environ.get("RQ_KEY_PREFIX", "rq")


def _settled(connection) -> bool:
    """Nothing queued, on an intermediate list or running."""
    busy, prefix = 0, _prefix()
    for name in ("high", "default", "low"):
        busy += connection.llen(f"{prefix}:queue:{name}") + connection.llen(f"{prefix}:queue:{name}:intermediate")
        busy += connection.zcard(f"{prefix}:wip:{name}")
    return busy == 0


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_bulk_retry_racing_workers_and_itself_runs_each_retry_once_and_loses_none(stack_factory):
    stack = stack_factory(workers=2)
    connection = stack.valkey.client()
    count = 300
    ids = [stack.post({"type": "fail", "message": "again"}).json()["id"] for _ in range(count)]
    wait_until(lambda: len(_jobs(stack, "type=fail&status=failed")) == count, timeout=60, what="every job to fail")

    # Two admins retry every failed job at once, in pages of 40, while two workers run them (and
    # fail them again, which makes them retryable again: a job may be retried more than once).
    totals: list[dict] = []
    threads = [
        threading.Thread(target=_bulk_all, args=(stack, {"action": "retry", "filter": {"type": "fail"}, "limit": 40}, totals))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    retried = sum(answer["done"] for answer in totals)
    assert retried >= count and all(a["matched"] == a["done"] + a["skipped"] for a in totals)

    wait_until(lambda: _settled(connection), timeout=60, what="the retried jobs to run")
    jobs = {job["id"]: job for job in _jobs(stack, "type=fail")}
    assert sorted(jobs) == sorted(ids)  # none lost
    assert {job["status"] for job in jobs.values()} == {"failed"}
    assert min(job["attempts"] for job in jobs.values()) >= 2  # each retried at least once
    # Each retry ran exactly once: the executions beyond the first are the retries done.
    assert sum(job["attempts"] for job in jobs.values()) == count + retried
    assert float(connection.hget(f"{_prefix()}:offload:metrics", "started:fail")) == count + retried


@pytest.mark.integration
@pytest.mark.timeout(180)
@pytest.mark.deployments("default", "cluster")
def test_two_bulk_retries_racing_with_workers_run_each_job_exactly_once(stack_factory):
    """Canceled jobs, retried by two admins at once while two workers run them: a retried job
    finishes and is never retryable again, so each must run exactly once and be counted once."""
    stack = stack_factory(workers=0)
    connection = stack.valkey.client()
    ids = [stack.post({"type": "count_words", "text": f"job {n}"}).json()["id"] for n in range(300)]
    canceled = stack.session_post("/jobs/bulk", json={"action": "cancel", "limit": 1000}).json()
    assert canceled["done"] == 300 and canceled["next"] is None
    for _ in range(2):
        stack.start_worker()
    totals: list[dict] = []
    body = {"action": "retry", "filter": {"status": "canceled"}, "limit": 30}
    threads = [threading.Thread(target=_bulk_all, args=(stack, body, totals)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    wait_until(lambda: _settled(connection), timeout=60, what="the retried jobs to run")
    jobs = {job["id"]: job for job in _jobs(stack, "type=count_words")}
    assert sorted(jobs) == sorted(ids)
    assert {job["status"] for job in jobs.values()} == {"finished"}
    assert {job["attempts"] for job in jobs.values()} == {1}  # each ran once
    assert sum(answer["done"] for answer in totals) == 300  # and was retried once
    assert float(connection.hget(f"{_prefix()}:offload:metrics", "started:count_words")) == 300


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_bulk_cancel_racing_workers_then_delete(stack_factory):
    stack = stack_factory(workers=2)
    connection = stack.valkey.client()
    ids = [stack.post({"type": "sleep", "seconds": 0.02, "metadata": {"run": "r1"}}).json()["id"] for _ in range(300)]
    totals: list[dict] = []
    threads = [
        threading.Thread(
            target=_bulk_all,
            args=(stack, {"action": "cancel", "filter": {"metadata": {"run": "r1"}}, "limit": 25}, totals),
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    wait_until(lambda: _settled(connection), timeout=60, what="the jobs not canceled to run")
    jobs = {job["id"]: job for job in _jobs(stack, "metadata_key=run&metadata_value=r1")}
    assert sorted(jobs) == sorted(ids)
    canceled = [job for job in jobs.values() if job["status"] == "canceled"]
    finished = [job for job in jobs.values() if job["status"] == "finished"]
    assert len(canceled) + len(finished) == len(ids)  # none lost, none left queued
    assert {job["attempts"] for job in canceled} <= {0} and {job["attempts"] for job in finished} == {1}
    assert sum(answer["done"] for answer in totals) == len(canceled) > 0

    outcome = stack.session_post("/jobs/bulk", json={"action": "delete", "filter": {"type": "sleep"}, "limit": 1000})
    assert outcome.json()["done"] == len(finished)
    assert all(stack.get(f"/jobs/{job['id']}").status_code == 404 for job in finished)
    assert stack.get(f"/jobs/{canceled[0]['id']}").status_code == 200
