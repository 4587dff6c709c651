"""``/schedules`` (app/web/schedules.py): over HTTP on fakeredis, the answers and problems; on the real
stack (gunicorn, two workers, Valkey, the SMTP sink), one job per tick and the jobs' owner.

The one-job-per-tick test reads every execution outside Redis too: a ``send_email`` job's
Message-ID is ``<job id@...>`` and the job id is ``<schedule id>-<tick>``, so the SMTP sink holds
one message per tick run, whatever Redis says."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from datetime import datetime

import pytest
import requests

from app import create_app
from app.jobs import JobQueue
from app.jobs.keys import SCHEDULE_DUE_KEY, SCHEDULE_INDEX_KEY
from app.settings import get_settings

from ..conftest import assert_problem, wait_until

JOB = {"type": "count_words", "text": "tick tock"}


def create(client, **fields):
    return client.post("/schedules", json={"job": JOB, "every_seconds": 60, **fields})


def nothing_stored(connection) -> bool:
    return connection.zcard(SCHEDULE_INDEX_KEY) == 0 and connection.zcard(SCHEDULE_DUE_KEY) == 0


# --- over HTTP, on fakeredis ---------------------------------------------------------------------


def test_create_then_get_list_patch_delete(client):
    response = create(client, name="nightly")
    assert response.status_code == 201, response.text
    schedule = response.get_json()
    assert response.headers["Location"] == f"/schedules/{schedule['id']}" == schedule["links"]["self"]
    assert schedule["job"] == JOB and schedule["every_seconds"] == 60 and schedule["cron"] is None
    assert schedule["enabled"] and schedule["next_run_at"] and schedule["last_job_id"] is None
    assert client.get(schedule["links"]["self"]).get_json() == schedule

    listed = client.get("/schedules").get_json()
    assert [s["id"] for s in listed["schedules"]] == [schedule["id"]] and listed["next"] is None

    paused = client.patch(schedule["links"]["self"], json={"enabled": False})
    assert paused.status_code == 200 and paused.get_json()["next_run_at"] is None
    cron = client.patch(
        schedule["links"]["self"],
        data=json.dumps({"cron": "0 3 * * *", "enabled": True}),
        content_type="application/merge-patch+json",
    ).get_json()
    assert cron["cron"] == "0 3 * * *" and cron["every_seconds"] is None
    assert cron["next_run_at"].endswith("T03:00:00.000Z")

    deleted = client.delete(schedule["links"]["self"])
    assert deleted.status_code == 204 and deleted.data == b""
    assert_problem(client.get(schedule["links"]["self"]), 404)
    assert_problem(client.delete(schedule["links"]["self"]), 404)


def test_pages_follow_next(client):
    ids = [create(client).get_json()["id"] for _ in range(5)]
    seen, url = [], "/schedules?limit=2"
    while url:
        page = client.get(url).get_json()
        seen += [s["id"] for s in page["schedules"]]
        url = page["next"]
    assert seen == list(reversed(ids))


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"job": JOB}, {"cron"}),  # no cadence: the error names the field to give
        ({"job": JOB, "every_seconds": 5, "cron": "* * * * *"}, {"cron"}),  # both
        ({"job": JOB, "every_seconds": 0}, {"every_seconds"}),
        ({"job": JOB, "every_seconds": 1.5}, {"every_seconds"}),
        ({"job": JOB, "every_seconds": 366 * 86400 + 1}, {"every_seconds"}),
        ({"job": JOB, "cron": "* * * *"}, {"cron"}),
        ({"job": JOB, "cron": "0 0 30 2 *"}, {"cron"}),
        ({"job": JOB, "every_seconds": 5, "enabled": "yes"}, {"enabled"}),
        ({"job": JOB, "every_seconds": 5, "name": ""}, {"name"}),
        ({"job": JOB, "every_seconds": 5, "color": "red"}, {"color"}),
        ({"every_seconds": 5}, {"job"}),
        ({"job": [], "every_seconds": 5}, {"job"}),
        ({"job": {"type": "nope"}, "every_seconds": 5}, {"job.type"}),
        ({"job": {"type": "send_email", "to": "not an address", "body": "x"}, "every_seconds": 5}, {"job.to"}),
        ({"job": {"type": "send_email", "to": "a@example.com"}, "every_seconds": 5}, {"job.body"}),  # issue 25: not "job"
        ({"job": {**JOB, "delay_seconds": 5}, "every_seconds": 5}, {"job.delay_seconds"}),
        ({"job": {**JOB, "run_at": "2030-01-01T00:00:00Z"}, "every_seconds": 5}, {"job.run_at"}),
        ({"job": {**JOB, "callback_url": "https://example.com/hook"}, "every_seconds": 5}, {"job.callback_url"}),
        ({"job": {"type": "count_words"}, "cron": "nope"}, {"job.text", "cron"}),  # every error at once
    ],
)
def test_a_bad_schedule_is_422_and_nothing_is_stored(client, job_queue, body, fields):
    problem = assert_problem(client.post("/schedules", json=body), 422)
    assert {error["field"] for error in problem["errors"]} == fields, problem["errors"]
    assert nothing_stored(job_queue.connection)


def test_malformed_bodies_are_4xx_and_nothing_is_stored(client, job_queue, settings):
    assert_problem(client.post("/schedules", data="{", content_type="application/json"), 400)
    assert_problem(client.post("/schedules", data="[]", content_type="application/json"), 400)
    form = client.post("/schedules", data={"job": "x"}, content_type="multipart/form-data")
    assert assert_problem(form, 415) and form.headers["Accept-Post"] == "application/json"
    huge = {"job": {"type": "count_words", "text": "x" * (settings.max_text_bytes + 1)}, "every_seconds": 5}
    assert assert_problem(client.post("/schedules", json=huge), 413)["errors"][0]["field"] == "job.text"
    assert nothing_stored(job_queue.connection)


def test_bad_changes_are_4xx_and_change_nothing(client):
    schedule = create(client).get_json()
    url = schedule["links"]["self"]
    for body in ({"enabled": None}, {"cron": "* * * * *", "every_seconds": 5}, {"every_seconds": -1}, {"job": JOB}):
        assert_problem(client.patch(url, json=body), 422)
    patch_form = client.patch(url, data="enabled=0", content_type="application/x-www-form-urlencoded")
    assert assert_problem(patch_form, 415) and "application/merge-patch+json" in patch_form.headers["Accept-Patch"]
    assert_problem(client.patch("/schedules/" + "0" * 32, json={"enabled": False}), 404)
    assert_problem(client.get("/schedules/../jobs"), 404)
    assert client.get(url).get_json() == schedule


def test_the_schedule_limit_is_409(monkeypatch, fake_redis):
    monkeypatch.setenv("MAX_SCHEDULES", "1")
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()
    assert create(client).status_code == 201
    assert "limit of 1 schedules" in assert_problem(create(client), 409)["detail"]
    assert fake_redis.zcard(SCHEDULE_INDEX_KEY) == 1


def test_list_limit_and_cursor_are_checked(client):
    for query in ("limit=0", "limit=201", "limit=x", "limit=²", "cursor=!!"):
        assert_problem(client.get(f"/schedules?{query}"), 422)


def test_with_keys_a_client_sees_only_its_own_schedules(monkeypatch, fake_redis):
    monkeypatch.setenv("API_KEYS", "shop:client:s3cret,blog:client:b1og,ops:admin:t0ps3cret")
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()
    shop, blog, ops = ({"Authorization": f"Bearer {secret}"} for secret in ("s3cret", "b1og", "t0ps3cret"))
    assert client.post("/schedules", json={"job": JOB, "every_seconds": 5}).status_code == 401
    url = client.post("/schedules", json={"job": JOB, "every_seconds": 5}, headers=shop).get_json()["links"]["self"]
    for call in (client.get, client.delete):
        assert_problem(call(url, headers=blog), 404)
    assert_problem(client.patch(url, json={"enabled": False}, headers=blog), 404)
    assert client.get("/schedules", headers=blog).get_json()["schedules"] == []
    assert len(client.get("/schedules", headers=ops).get_json()["schedules"]) == 1
    assert client.patch(url, json={"enabled": False}, headers=ops).status_code == 200
    assert client.get(url, headers=shop).get_json()["enabled"] is False


def test_the_document_describes_every_schedules_route(app, client):
    document = client.get("/openapi.json").get_json()
    routes = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("schedules.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (path, method) for path, item in document["paths"].items() if path.startswith("/schedules") for method in item
    } - {(path, "parameters") for path in document["paths"]}
    assert documented == routes and len(routes) == 5
    job = document["components"]["schemas"]["JobResource"]
    assert "schedule_id" in job["required"]


# --- on real processes ---------------------------------------------------------------------------


def _moment(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _jobs_of(stack, schedule_id: str) -> list[dict]:
    jobs, url = [], "/jobs?limit=200"
    while url:
        page = stack.get(url).json()
        jobs += [job for job in page["jobs"] if job["schedule_id"] == schedule_id]
        url = page["next"]
    return jobs


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.deployments("default", "forking", "cluster")
def test_a_one_second_schedule_runs_each_tick_once_with_two_workers(stack_factory, smtp):
    stack = stack_factory(workers=2)
    body = {"every_seconds": 1, "job": {"type": "send_email", "to": "ticks@example.com", "subject": "tick", "body": "t"}}
    created = stack.session_post("/schedules", json=body)
    assert created.status_code == 201, created.text
    schedule = created.json()
    wait_until(lambda: len(smtp.messages) >= 8, timeout=40, what="eight ticks' emails")
    paused = requests.patch(f"{stack.base}{schedule['links']['self']}", json={"enabled": False}, timeout=10)
    assert paused.status_code == 200 and paused.json()["enabled"] is False, paused.text

    wait_until(
        lambda: (jobs := _jobs_of(stack, schedule["id"])) and all(job["status"] == "finished" for job in jobs),
        timeout=30,
        what="every job of the schedule to finish",
    )
    jobs = sorted(_jobs_of(stack, schedule["id"]), key=lambda job: job["id"])
    ticks = [int(job["id"].rpartition("-")[2]) for job in jobs]
    first = int(_moment(schedule["created_at"])) + 1  # anchored on the second it was created

    # Once per tick: the job id is the tick; one enqueue per job (the counter /metrics reads is bumped
    # in the claim's transaction); one attempt per job; one email per job at the SMTP server.
    assert all(job["id"] == f"{schedule['id']}-{tick}" for job, tick in zip(jobs, ticks, strict=True))
    metrics = stack.get("/metrics").text
    enqueued = re.search(r'^offload_jobs_total\{event="enqueued",type="send_email"\} (\S+)$', metrics, re.M)
    assert enqueued and float(enqueued.group(1)) == len(jobs), metrics
    assert all(job["attempts"] == 1 for job in jobs)
    sent = Counter(message["Message-ID"].strip("<>").partition("@")[0] for message in smtp.messages)
    assert sent == Counter(job["id"] for job in jobs), sent

    # Every tick from the first on, unless a claim came more than a period late (then the schedule
    # goes on at the next tick after the claim: one catch-up run, never a burst).
    assert ticks[0] == first and len(ticks) >= 8
    claimed_at = [_moment(job["created_at"]) for job in jobs]
    gaps = [(later, at) for (tick, later, at) in zip(ticks, ticks[1:], claimed_at, strict=False) if later - tick != 1]
    assert all(at >= later - 1 - 0.001 for later, at in gaps), gaps  # (created_at has whole milliseconds)

    late = [at - tick for tick, at in zip(ticks, claimed_at, strict=True)]
    logs = stack.logs()
    per_worker = [log.read_text().count(" started job ") for log in sorted(stack.tmp.glob("worker-*.log"))]
    print(
        f"\nschedule: {len(ticks)} ticks, {len(gaps)} gaps, claimed after the tick by "
        f"p50 {statistics.median(late) * 1000:.0f} ms, max {max(late) * 1000:.0f} ms; claims per worker {per_worker}"
    )
    assert "Traceback" not in logs


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_schedules_jobs_belong_to_its_owner(stack_factory):
    stack = stack_factory(workers=1, API_KEYS="shop:client:s3cret,blog:client:b1og,ops:admin:t0ps3cret")
    shop, blog, ops = ({"Authorization": f"Bearer {secret}"} for secret in ("s3cret", "b1og", "t0ps3cret"))
    created = stack.session_post("/schedules", json={"job": JOB, "every_seconds": 1}, headers=shop)
    assert created.status_code == 201, created.text
    url = created.json()["links"]["self"]

    def last_job() -> str | None:
        return stack.get(url, headers=shop).json()["last_job_id"]

    job_id = wait_until(last_job, timeout=30, what="the schedule's first job")
    requests.patch(f"{stack.base}{url}", json={"enabled": False}, headers=shop, timeout=10).raise_for_status()
    job = stack.get(f"/jobs/{job_id}?wait=10", headers=shop).json()
    assert job["status"] == "finished" and job["schedule_id"] == created.json()["id"]
    assert job["result"] == {"words": 2, "characters": 9, "lines": 1}
    assert stack.get(f"/jobs/{job_id}", headers=blog).status_code == 404
    assert stack.get(url, headers=blog).status_code == 404
    assert stack.get(f"/jobs/{job_id}", headers=ops).status_code == 200
    assert job_id in [j["id"] for j in stack.get("/jobs", headers=shop).json()["jobs"]]
