"""A team's own tasks through the whole job layer, in process (fakeredis): submitted with their
model's validation and their defaults, run through the one context, ended as their exceptions and
results say. tests/user_tasks.py holds the tasks; tests/worker/test_user_tasks.py runs them on real
processes."""

from __future__ import annotations

import json

import pytest

from app.jobs import catalog
from app.jobs.engine.job import APART_FIELD, TEXT_INLINE_MAX_CHARS, OffloadJob
from app.jobs.keys import text_key
from offload.tasks import RESERVED_FIELDS

from ..conftest import assert_problem, queued_count, run_jobs


def test_the_reserved_fields_are_the_servers_job_options():
    assert RESERVED_FIELDS == {*catalog.schemas.JobOptions.model_fields, "type"}


def test_a_user_task_is_validated_by_its_model_and_refused_with_its_fields_named(client, job_queue):
    body = assert_problem(client.post("/jobs", json={"type": "typed_echo", "count": -1, "color": "pink"}), 422)
    assert {error["field"] for error in body["errors"]} == {"count", "color"}
    body = assert_problem(client.post("/jobs", json={"type": "reverse_text", "text": "abc", "nope": 1}), 422)
    assert [error["field"] for error in body["errors"]] == ["nope"]  # unknown fields refused, by name
    assert queued_count(job_queue) == 0


def test_a_user_task_runs_with_its_defaults_and_returns_its_result(client, job_queue):
    answer = client.post("/jobs", json={"type": "crunch", "seconds": 0})
    assert answer.status_code == 202, answer.get_json()
    job = answer.get_json()
    assert job["queue"] == "low"  # @task(queue="low"): the task's default
    stored = OffloadJob.fetch(job["id"], connection=job_queue.connection, serializer=job_queue.serializer)
    assert stored.timeout == 90 and stored.meta["max_retries"] == 2
    assert stored.func_name == "tests.user_tasks.crunch"
    overridden = client.post("/jobs", json={"type": "crunch", "seconds": 0, "queue": "high", "max_retries": 0}).get_json()
    assert overridden["queue"] == "high" and overridden["max_retries"] == 0
    run_jobs(job_queue)
    done = client.get(f"/jobs/{job['id']}").get_json()
    assert done["status"] == "finished" and done["result"] == {"steps": 1, "attempt": 1, "note_words": 0}
    assert done["progress"] == {"done": 1, "total": 1}


def test_a_long_text_of_any_task_is_kept_apart_and_put_back(client, job_queue):
    note = "word " * (TEXT_INLINE_MAX_CHARS // 5 + 10)
    job_id = client.post("/jobs", json={"type": "crunch", "seconds": 0, "note": note}).get_json()["id"]
    stored = OffloadJob.fetch(job_id, connection=job_queue.connection, serializer=job_queue.serializer)
    assert "note" not in stored.kwargs and stored.meta[APART_FIELD] == {"note": len(note)}
    assert job_queue.connection.get(text_key(job_id, "note")) == note.encode()
    run_jobs(job_queue)
    assert client.get(f"/jobs/{job_id}").get_json()["result"]["note_words"] == len(note.split())
    assert not job_queue.connection.exists(text_key(job_id, "note"))


def test_a_long_text_over_the_limit_is_a_413_for_any_task(client, settings):
    too_long = "x" * (settings.max_text_bytes + 1)
    body = assert_problem(client.post("/jobs", json={"type": "crunch", "seconds": 0, "note": too_long}), 413)
    assert body["errors"][0]["field"] == "note"


def test_the_file_of_a_user_tasks_upload_field_comes_as_a_form_part(client, job_queue):
    answer = client.post(
        "/jobs",
        data={"type": "crunch", "seconds": "0", "max_retries": "1", "note": (__import__("io").BytesIO(b"one two three"), "n.txt")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 202, answer.get_json()
    run_jobs(job_queue)
    assert client.get(f"/jobs/{answer.get_json()['id']}").get_json()["result"]["note_words"] == 3
    refused = client.post("/jobs", data={"type": "reverse_text", "text": "abc"}, content_type="multipart/form-data")
    assert assert_problem(refused, 422)["errors"][0]["field"] == "type"  # no upload field: JSON only
    bad = client.post("/jobs", data={"type": "crunch", "seconds": "soon"}, content_type="multipart/form-data")
    assert assert_problem(bad, 422)["errors"] == [{"field": "seconds", "message": "must be a number"}]


@pytest.mark.parametrize(
    ("outcome", "error_type", "attempts"),
    [("permanent", "PermanentFailure", 1), ("raise", "RuntimeError", 3), ("big_result", "ResultTooLarge", 1), ("not_json", "InvalidResult", 1)],
)
def test_how_a_task_ends_decides_its_retries(client, job_queue, outcome, error_type, attempts):
    job_id = client.post("/jobs", json={"type": "finish_as", "outcome": outcome}).get_json()["id"]
    for _ in range(attempts):
        _run_retries_now(job_queue)
    done = client.get(f"/jobs/{job_id}").get_json()
    assert done["status"] == "failed" and done["error"]["type"] == error_type, done
    assert done["attempts"] == attempts


def test_retry_later_sets_the_next_retrys_delay(client, job_queue):
    job_id = client.post("/jobs", json={"type": "finish_as", "outcome": "retry_later", "after": 42}).get_json()["id"]
    run_jobs(job_queue)
    job = OffloadJob.fetch(job_id, connection=job_queue.connection, serializer=job_queue.serializer)
    assert job.get_status() == "scheduled"
    scheduled_at = job_queue.queues["default"].scheduled_job_registry.get_scheduled_time(job_id)
    delay = (scheduled_at - job.ended_at).total_seconds()
    assert 41 <= delay <= 43, delay


def test_a_job_of_a_task_this_worker_lacks_fails_naming_it_and_the_worker_goes_on(client, job_queue):
    job_id = client.post("/jobs", json={"type": "reverse_text", "text": "abc", "max_retries": 0}).get_json()["id"]
    after = client.post("/jobs", json={"type": "count_words", "text": "a b"}).get_json()["id"]
    task = catalog.registry.get("reverse_text")
    catalog.registry.remove("reverse_text")  # a worker of the previous release: it never had it
    try:
        run_jobs(job_queue)
    finally:
        catalog.registry.add(task)
    failed = client.get(f"/jobs/{job_id}").get_json()
    assert failed["status"] == "failed" and failed["error"]["type"] == "UnknownTask"
    assert "no task 'reverse_text'" in failed["error"]["message"] and "OFFLOAD_TASKS" in failed["error"]["message"]
    assert client.get(f"/jobs/{after}").get_json()["status"] == "finished"


def test_tasks_are_described_from_their_registration(client, settings):
    listed = client.get("/tasks").get_json()["tasks"]
    types = [task["type"] for task in listed]
    assert types == sorted(types) and {"count_words", "send_email", "reverse_text", "crunch"} <= set(types)
    assert settings.webhook_secret is None and "http_request" not in types  # it signs with WEBHOOK_SECRET: not served
    assert "webhook" not in types  # internal: queued by offload, never by a client
    crunch = client.get("/tasks/crunch").get_json()
    assert crunch["description"].startswith("Crunch for a while")
    assert crunch["defaults"] == {
        "queue": "low", "timeout_seconds": 90, "max_retries": 2, "result_ttl_seconds": settings.result_ttl_seconds,
        "concurrency_key": None, "concurrency_limit": None,
    }  # fmt: skip
    assert crunch["args_schema"]["properties"]["note"]["x-offload-upload"] is True
    assert crunch["long_text_fields"] == crunch["upload_fields"] == ["note"]
    assert crunch["example"] == {"seconds": 1} and crunch["links"] == {"self": "/tasks/crunch"}
    assert client.get("/tasks/count_words").get_json()["result_schema"]["properties"]["words"]["type"] == "integer"
    assert_problem(client.get("/tasks/webhook"), 404)
    assert_problem(client.get("/tasks/nope"), 404)


def test_the_document_describes_every_task_from_the_registry(client):
    document = client.get("/openapi.json").get_json()
    schemas_ = document["components"]["schemas"]
    mapping = schemas_["JobRequest"]["discriminator"]["mapping"]
    assert {"reverse_text", "typed_echo", "crunch", "count_words"} <= set(mapping)
    crunch = schemas_["CrunchRequest"]
    assert crunch["description"].startswith("Crunch for a while")
    assert crunch["properties"]["queue"]["default"] == "low" and crunch["properties"]["timeout_seconds"]["default"] == 90
    assert "maxLength" in crunch["properties"]["note"]  # a long text: MAX_TEXT_BYTES, said
    form = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {branch["$ref"].rsplit("/", 1)[1] for branch in form["schema"]["oneOf"]} >= {"CountWordsForm", "CrunchForm"}
    examples = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert examples["crunch"]["value"] == {"type": "crunch", "seconds": 1}


def test_batches_and_schedules_take_user_tasks(client, job_queue):
    batch = client.post("/jobs/batch", json={"jobs": [{"type": "reverse_text", "text": "ab"}, {"type": "typed_echo", "count": 2}]})
    assert batch.status_code == 202, batch.get_json()
    refused = client.post("/jobs/batch", json={"jobs": [{"type": "typed_echo", "count": "two"}]})
    assert "jobs.0.count" in json.dumps(refused.get_json())
    schedule = client.post("/schedules", json={"job": {"type": "reverse_text", "text": "tick"}, "every_seconds": 60})
    assert schedule.status_code == 201, schedule.get_json()
    bad = client.post("/schedules", json={"job": {"type": "reverse_text"}, "every_seconds": 60})
    assert "job.text" in json.dumps(bad.get_json())
    run_jobs(job_queue)
    listed = client.get("/jobs?type=reverse_text").get_json()["jobs"]
    assert any(job["result"] == {"reversed": "ba"} for job in listed)


def _run_retries_now(job_queue) -> None:
    """Run what is queued, then move every scheduled retry to its queue (as if its time came)."""
    run_jobs(job_queue)
    for queue in job_queue.queues.values():
        registry = queue.scheduled_job_registry
        for job_id in registry.get_job_ids():
            registry.remove(job_id)
            job = OffloadJob.fetch(job_id, connection=job_queue.connection, serializer=job_queue.serializer)
            queue._enqueue_job(job)


def test_a_tasks_concurrency_key_is_made_from_its_fields_unless_the_submission_gives_one(client, job_queue):
    first = client.post("/jobs", json={"type": "partner_call", "account": "acme"}).get_json()
    assert first["concurrency_key"] == "partner:acme" and first["concurrency_limit"] == 1
    second = client.post("/jobs", json={"type": "partner_call", "account": "acme"}).get_json()
    assert second["status"] == "queued" and second["concurrency_key"] == "partner:acme"
    own = client.post("/jobs", json={"type": "partner_call", "account": "acme", "concurrency_key": "mine", "concurrency_limit": 3}).get_json()
    assert own["concurrency_key"] == "mine" and own["concurrency_limit"] == 3
    run_jobs(job_queue)
    assert all(client.get(f"/jobs/{job['id']}").get_json()["status"] == "finished" for job in (first, second, own))


def test_dependencies_search_and_bulk_actions_take_user_tasks(client, job_queue):
    batch = client.post("/jobs/batch", json={"jobs": [
        {"type": "finish_as", "outcome": "permanent"}, {"type": "reverse_text", "text": "ab", "depends_on": ["$0"]},
    ]}).get_json()  # fmt: skip
    failing, dependent = (item["job"]["id"] for item in batch["results"])
    run_jobs(job_queue)
    assert client.get(f"/jobs/{dependent}").get_json()["error"]["type"] == "DependencyFailed"
    found = client.get("/jobs?type=finish_as&status=failed&error_type=PermanentFailure").get_json()["jobs"]
    assert [job["id"] for job in found] == [failing]
    retried = client.post("/jobs/bulk", json={"action": "retry", "filter": {"type": "finish_as", "status": "failed"}})
    assert retried.status_code == 200 and retried.get_json()["done"] == 1, retried.get_json()
    assert client.get(f"/jobs/{failing}").get_json()["status"] == "queued"


def test_a_task_requiring_a_setting_is_served_only_where_it_is_set(monkeypatch, job_queue):
    from app import create_app
    from app.settings import get_settings

    monkeypatch.setenv("WEBHOOK_SECRET", "s" * 32)
    get_settings.cache_clear()
    signed = create_app(get_settings(), job_queue=job_queue).test_client()
    assert "http_request" in [task["type"] for task in signed.get("/tasks").get_json()["tasks"]]
    assert "http_request" in signed.get("/openapi.json").get_json()["components"]["schemas"]["JobRequest"]["discriminator"]["mapping"]
    monkeypatch.delenv("WEBHOOK_SECRET")
    get_settings.cache_clear()
    unsigned = create_app(get_settings(), job_queue=job_queue).test_client()
    refused = unsigned.post("/jobs", json={"type": "http_request", "url": "https://example.com/"})
    assert assert_problem(refused, 422)["errors"][0]["field"] == "type"
    assert_problem(unsigned.get("/tasks/http_request"), 404)
