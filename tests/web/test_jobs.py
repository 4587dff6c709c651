"""The job routes (app/web/jobs.py): answers, headers and every kind of bad input on fakeredis,
and one round trip over HTTP with real processes."""

from __future__ import annotations

import json

import pytest

from app.jobs.keys import JOB_INDEX_KEY

from ..conftest import assert_problem, queued_count, run_jobs


def test_submit_count_words_answers_202_with_location_and_retry_after(client, job_queue):
    response = client.post("/jobs", json={"type": "count_words", "text": "one two  three\nfour"})
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == f"/jobs/{body['id']}"
    assert int(response.headers["Retry-After"]) >= 1
    assert body["status"] == "queued" and body["type"] == "count_words" and body["queue"] == "default"
    assert body["links"] == {"self": f"/jobs/{body['id']}", "cancel": f"/jobs/{body['id']}/cancel"}
    assert set(body) == {
        "id", "type", "status", "queue", "created_at", "enqueued_at", "started_at", "ended_at", "attempts",
        "max_retries", "progress", "result", "error", "metadata", "schedule_id", "depends_on", "batch_id",
        "concurrency_key", "concurrency_limit", "trace_id", "links",
    }  # fmt: skip
    assert queued_count(job_queue) == 1


def test_links_offer_only_the_actions_the_status_allows_and_the_server_agrees(client, job_queue):
    """Issue 25: ``links`` offered ``cancel`` on ended jobs and never ``retry``. Each job's links
    name exactly the actions its status allows, and the server accepts exactly those."""

    def submit(**fields) -> str:
        return client.post("/jobs", json={"max_retries": 0, **fields}).get_json()["id"]

    finished = submit(type="count_words", text="done")
    failed = submit(type="fail", message="x")
    canceled = submit(type="noop")
    assert client.post(f"/jobs/{canceled}/cancel").status_code == 202
    run_jobs(job_queue)
    queued = submit(type="noop")
    scheduled = submit(type="noop", delay_seconds=600)
    deferred = submit(type="noop", depends_on=[submit(type="noop", delay_seconds=600)])
    expected = {
        queued: ("queued", {"cancel"}), scheduled: ("scheduled", {"cancel"}), deferred: ("deferred", {"cancel"}),
        finished: ("finished", set()), failed: ("failed", {"retry"}), canceled: ("canceled", {"retry"}),
    }  # fmt: skip
    listed = {job["id"]: job["links"] for job in client.get("/jobs?limit=200").get_json()["jobs"]}
    for job_id, (status, actions) in expected.items():
        body = client.get(f"/jobs/{job_id}").get_json()
        assert body["status"] == status
        wanted = {"self": f"/jobs/{job_id}"} | {action: f"/jobs/{job_id}/{action}" for action in actions}
        assert body["links"] == listed[job_id] == wanted, status
        for action in {"cancel", "retry"} - actions:  # not offered: the server refuses it
            assert_problem(client.post(f"/jobs/{job_id}/{action}"), 409)
    for job_id, (status, actions) in expected.items():
        for action in actions:  # offered: the server takes it, and the answer's links follow
            answer = client.post(f"/jobs/{job_id}/{action}")
            assert answer.status_code == 202, (status, answer.get_data(as_text=True))
            after = answer.get_json()
            assert set(after["links"]) == {"self", "retry" if after["status"] == "canceled" else "cancel"}, after


def test_job_runs_and_status_shows_result(client, job_queue):
    text = "alpha beta\ngamma  delta epsilon\n"
    job_id = client.post("/jobs", json={"type": "count_words", "text": text, "metadata": {"order": 7}}).get_json()["id"]
    run_jobs(job_queue)
    response = client.get(f"/jobs/{job_id}")
    body = response.get_json()
    assert response.status_code == 200
    assert body["status"] == "finished"
    assert body["result"] == {"words": len(text.split()), "characters": len(text), "lines": 2}
    assert body["metadata"] == {"order": 7}
    assert body["attempts"] == 1
    assert body["ended_at"].endswith("Z") and body["started_at"] <= body["ended_at"]
    assert "Retry-After" not in response.headers


def test_failed_job_shows_error(client, job_queue):
    job_id = client.post("/jobs", json={"type": "fail", "message": "it broke"}).get_json()["id"]
    run_jobs(job_queue)
    body = client.get(f"/jobs/{job_id}").get_json()
    assert body["status"] == "failed"
    assert body["error"] == {"type": "RuntimeError", "message": "it broke"}
    assert body["result"] is None


@pytest.mark.parametrize(
    ("data", "content_type", "status", "field"),
    [
        ("{not json", "application/json", 400, None),
        ("[1, 2]", "application/json", 400, None),
        ('"a string"', "application/json", 400, None),
        ("NaN", "application/json", 400, None),
        ("{}", "application/json", 422, "type"),
        ('{"type": "resize_image"}', "application/json", 422, "type"),
        ('{"type": "count_words"}', "application/json", 422, "text"),
        ('{"type": "count_words", "text": 12}', "application/json", 422, "text"),
        ('{"type": "count_words", "text": ""}', "application/json", 422, "text"),
        ('{"type": "count_words", "text": "x", "colour": "red"}', "application/json", 422, "colour"),
        ('{"type": "count_words", "text": "x", "queue": "urgent"}', "application/json", 422, "queue"),
        ('{"type": "count_words", "text": "x", "timeout_seconds": "5"}', "application/json", 422, "timeout_seconds"),
        ('{"type": "count_words", "text": "x", "max_retries": -1}', "application/json", 422, "max_retries"),
        ('{"type": "count_words", "text": "x", "max_retries": 99}', "application/json", 422, "max_retries"),
        ('{"type": "count_words", "text": "x", "delay_seconds": 5, "run_at": "2030-01-01T00:00:00Z"}',
         "application/json", 422, "run_at"),
        ('{"type": "count_words", "text": "x", "run_at": "2030-01-01T00:00:00"}', "application/json", 422, "run_at"),
        ('{"type": "count_words", "text": "x", "metadata": [1]}', "application/json", 422, "metadata"),
        ('{"type": "count_words", "text": "x", "callback_url": "ftp://x"}', "application/json", 422, "callback_url"),
        ('{"type": "send_email", "body": "hi"}', "application/json", 422, "to"),
        ('{"type": "send_email", "to": "not-an-address", "body": "hi"}', "application/json", 422, "to"),
        ('{"type": "send_email", "to": "a@example.com\\r\\nBcc: b@example.com", "body": "hi"}',
         "application/json", 422, "to"),
        ('{"type": "send_email", "to": "a@example.com", "subject": "Hi\\r\\nBcc: b@example.com", "body": "x"}',
         "application/json", 422, "subject"),
        ('{"type": "send_email", "to": "a@example.com", "subject": "Hi\\nthere", "body": "x"}',
         "application/json", 422, "subject"),
        ('{"type": "send_email", "to": "a@example.com", "body": 5}', "application/json", 422, "body"),
        ("type=count_words&text=hello", "application/x-www-form-urlencoded", 415, None),
        ("hello", "text/plain", 415, None),
    ],
)  # fmt: skip
def test_bad_input_gets_a_problem_and_enqueues_nothing(client, job_queue, data, content_type, status, field):
    response = client.post("/jobs", data=data, content_type=content_type)
    body = assert_problem(response, status)
    if field is not None:
        assert field in {error["field"] for error in body["errors"]}, body
        assert all(error["message"] for error in body["errors"])
    assert queued_count(job_queue) == 0
    assert job_queue.connection.zcard(JOB_INDEX_KEY) == 0


def test_missing_content_type_is_415(client, job_queue):
    response = client.post("/jobs", data=b'{"type": "count_words", "text": "x"}')
    assert_problem(response, 415)
    assert queued_count(job_queue) == 0


def test_non_utf8_body_is_400(client, job_queue):
    response = client.post("/jobs", data=b'{"type": "count_words", "text": "\xff\xfe"}', content_type="application/json")
    assert_problem(response, 400)
    assert queued_count(job_queue) == 0


def test_text_over_the_limit_is_413(client, job_queue, settings):
    text = "a" * (settings.max_text_bytes + 1)
    response = client.post("/jobs", json={"type": "count_words", "text": text})
    body = assert_problem(response, 413)
    assert body["errors"][0]["field"] == "text"
    assert queued_count(job_queue) == 0


def test_text_at_the_limit_is_accepted(client, settings):
    # Multi-byte characters count as their UTF-8 size.
    text = "é" * (settings.max_text_bytes // 2)
    assert client.post("/jobs", json={"type": "count_words", "text": text}).status_code == 202
    assert_problem(client.post("/jobs", json={"type": "count_words", "text": text + "é"}), 413)


def test_body_over_request_limit_is_413(client, job_queue, settings):
    data = json.dumps({"type": "count_words", "text": "a" * (settings.max_request_bytes + 10)})
    assert_problem(client.post("/jobs", data=data, content_type="application/json"), 413)
    assert queued_count(job_queue) == 0


def test_metadata_over_4_kib_is_422(client, job_queue):
    response = client.post("/jobs", json={"type": "count_words", "text": "x", "metadata": {"k": "v" * 5000}})
    assert assert_problem(response, 422)["errors"][0]["field"] == "metadata"
    assert queued_count(job_queue) == 0


@pytest.mark.parametrize("job_id", ["does-not-exist", "bad%20id", "x" * 65, "a.b"])
def test_unknown_or_malformed_job_id_is_404(client, job_id):
    assert_problem(client.get(f"/jobs/{job_id}"), 404)


def test_expired_job_is_404(client, job_queue):
    job_id = client.post("/jobs", json={"type": "count_words", "text": "x"}).get_json()["id"]
    job_queue.connection.delete(f"rq:job:{job_id}")  # what Redis does when the result TTL runs out
    assert_problem(client.get(f"/jobs/{job_id}"), 404)


def test_job_of_another_function_in_redis_is_404(client, job_queue):
    """Jobs not created by offload (no offload type) are not offload's to show."""
    job = job_queue.queues["default"].enqueue_call("os.getcwd")
    assert_problem(client.get(f"/jobs/{job.id}"), 404)


def test_unknown_route_and_wrong_method_are_problems(client):
    assert_problem(client.get("/nope"), 404)
    response = client.delete("/jobs")
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_multipart_count_words(client, job_queue):
    data = {"file": (__import__("io").BytesIO("one two\nthree".encode()), "words.txt"), "queue": "high"}
    response = client.post("/jobs", data=data, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["queue"] == "high"
    run_jobs(job_queue)
    assert client.get(f"/jobs/{body['id']}").get_json()["result"] == {"words": 3, "characters": 13, "lines": 2}


def test_multipart_rejects_non_utf8_file_and_other_types(client, job_queue):
    io = __import__("io")
    bad = client.post("/jobs", data={"file": (io.BytesIO(b"\xff\xfe\xfa"), "x.bin")}, content_type="multipart/form-data")
    assert assert_problem(bad, 422)["errors"][0]["field"] == "file"
    other = client.post(
        "/jobs",
        data={"type": "send_email", "file": (io.BytesIO(b"x"), "x.txt")},
        content_type="multipart/form-data",
    )
    assert_problem(other, 422)
    missing = client.post("/jobs", data={"queue": "low"}, content_type="multipart/form-data")
    assert assert_problem(missing, 422)["errors"][0]["field"] == "file"
    assert queued_count(job_queue) == 0


def test_list_filters_and_opaque_cursor(client, job_queue):
    for n in range(5):
        client.post("/jobs", json={"type": "count_words", "text": f"t{n}", "queue": "high" if n % 2 else "low"})
    client.post("/jobs", json={"type": "fail", "message": "x"})
    run_jobs(job_queue)
    failed = client.get("/jobs?status=failed").get_json()["jobs"]
    assert [job["type"] for job in failed] == ["fail"]
    high = client.get("/jobs?queue=high&type=count_words").get_json()["jobs"]
    assert len(high) == 2 and all(job["queue"] == "high" for job in high)
    page = client.get("/jobs?limit=2").get_json()
    assert len(page["jobs"]) == 2 and page["next"].startswith("/jobs?")
    rest = client.get(page["next"]).get_json()
    assert not {job["id"] for job in rest["jobs"]} & {job["id"] for job in page["jobs"]}
    for query in ("limit=0", "limit=201", "limit=x", "status=done", "queue=urgent", "cursor=nonsense!!", "cursor=Zm9v"):
        assert_problem(client.get(f"/jobs?{query}"), 422)


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_count_words_round_trip_over_http(stack):
    text = "the quick brown fox\njumps over\n\nthe lazy dog"
    response = stack.post({"type": "count_words", "text": text})
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert response.headers["Location"] == f"/jobs/{job_id}"
    body = stack.wait_for(job_id)
    assert body["status"] == "finished", body
    assert body["result"] == {"words": len(text.split()), "characters": len(text), "lines": len(text.splitlines())}
    assert body["attempts"] == 1


def test_a_browser_gets_a_small_page_for_an_error_and_an_api_client_problem_json(client):
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    page = client.get("/jobs/no-such-job", headers={"Accept": browser})
    assert page.status_code == 404 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "404 Not Found" in text and "no job with this id" in text and 'href="/"' in text
    assert page.headers["Vary"] == "Accept"
    for accept in ("*/*", "application/json", "application/problem+json", None):
        answer = client.get("/jobs/no-such-job", headers={"Accept": accept} if accept else {})
        assert answer.status_code == 404 and answer.mimetype == "application/problem+json", accept
    escaped = client.get("/tasks/<script>", headers={"Accept": browser}).get_data(as_text=True)
    assert "<script>" not in escaped and "&lt;script&gt;" in escaped
