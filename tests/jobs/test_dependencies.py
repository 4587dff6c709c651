"""``depends_on``: a job runs only after the jobs it names have finished; if one of them ends
without finishing, the dependent fails with ``DependencyFailed`` instead of waiting for ever.

On real processes (gunicorn, workers, Valkey), on both workers: the fast worker takes RQ's path
for a job with dependents (and catches a dependent added while the job ran), the forking worker
is RQ's own. Order is checked from the jobs' own timestamps, never by timing."""

from __future__ import annotations

import pytest

from ..conftest import wait_until

def _ok(response) -> dict:
    assert response.status_code == 202, response.text
    return response.json()


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    return response.json()


def _job_count(stack) -> int:
    return len(stack.get("/jobs?limit=200").json()["jobs"])


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_dependents_run_after_their_dependencies_in_order(stack_factory):
    stack = stack_factory(workers=2)
    first = _ok(stack.post({"type": "sleep", "seconds": 1}))
    second = _ok(stack.post({"type": "count_words", "text": "two words", "depends_on": [first["id"]]}))
    third = _ok(stack.post({"type": "noop", "depends_on": [second["id"], first["id"]]}))
    assert second["status"] == third["status"] == "deferred"
    assert second["depends_on"] == [first["id"]] and third["depends_on"] == [second["id"], first["id"]]
    assert stack.get(f"/jobs/{second['id']}").json()["status"] == "deferred"  # two workers idle, yet it waits
    done = {job["id"]: stack.wait_for(job["id"]) for job in (first, second, third)}
    assert {job["status"] for job in done.values()} == {"finished"}
    assert done[second["id"]]["result"]["words"] == 2
    assert done[first["id"]]["ended_at"] <= done[second["id"]]["started_at"]
    assert done[second["id"]]["ended_at"] <= done[third["id"]]["started_at"]


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_a_failed_dependency_fails_its_dependents_and_theirs(stack_factory):
    stack = stack_factory(workers=1)
    failing = _ok(stack.post({"type": "fail", "message": "boom"}))
    child = _ok(stack.post({"type": "noop", "depends_on": [failing["id"]]}))
    grandchild = _ok(stack.post({"type": "noop", "depends_on": [child["id"]]}))
    assert stack.wait_for(failing["id"])["error"] == {"type": "RuntimeError", "message": "boom"}
    child_end = stack.wait_for(child["id"])
    assert child_end["status"] == "failed" and child_end["attempts"] == 0
    assert child_end["error"]["type"] == "DependencyFailed"
    assert failing["id"] in child_end["error"]["message"] and "failed" in child_end["error"]["message"]
    assert child_end["ended_at"] is not None
    grandchild_end = stack.wait_for(grandchild["id"])
    assert grandchild_end["status"] == "failed" and grandchild_end["error"]["type"] == "DependencyFailed"
    assert child["id"] in grandchild_end["error"]["message"]
    # A dependent cannot be retried while its dependency has not finished.
    retry = stack.session_post(f"/jobs/{child['id']}/retry")
    assert retry.status_code == 409 and failing["id"] in retry.json()["detail"]


@pytest.mark.integration
@pytest.mark.deployments("default", "forking")
def test_canceling_or_stopping_a_dependency_fails_its_dependents(stack_factory):
    stack = stack_factory(workers=1)
    scheduled = _ok(stack.post({"type": "noop", "delay_seconds": 600}))
    waiting = _ok(stack.post({"type": "noop", "depends_on": [scheduled["id"]]}))
    assert stack.session_post(f"/jobs/{scheduled['id']}/cancel").json()["status"] == "canceled"
    ended = stack.wait_for(waiting["id"])
    assert ended["error"]["type"] == "DependencyFailed" and "was canceled" in ended["error"]["message"]

    running = _ok(stack.post({"type": "sleep", "seconds": 30}))
    after = _ok(stack.post({"type": "noop", "depends_on": [running["id"]]}))
    wait_until(lambda: stack.get(f"/jobs/{running['id']}").json()["status"] == "started", what="the job to start")
    assert stack.session_post(f"/jobs/{running['id']}/cancel").status_code == 202
    assert stack.wait_for(running["id"])["status"] == "stopped"
    ended = stack.wait_for(after["id"])
    assert ended["error"]["type"] == "DependencyFailed" and "was stopped" in ended["error"]["message"]


@pytest.mark.integration
@pytest.mark.deployments("default", "forking")
def test_a_dependent_submitted_while_its_dependency_runs_waits_for_it(stack_factory):
    stack = stack_factory(workers=1)
    running = _ok(stack.post({"type": "sleep", "seconds": 1.5}))
    wait_until(lambda: stack.get(f"/jobs/{running['id']}").json()["status"] == "started", what="the job to start")
    late = _ok(stack.post({"type": "noop", "depends_on": [running["id"]]}))
    assert late["status"] == "deferred"
    done = stack.wait_for(late["id"])
    assert done["status"] == "finished"
    assert stack.get(f"/jobs/{running['id']}").json()["ended_at"] <= done["started_at"]


@pytest.mark.integration
@pytest.mark.deployments("default", "forking")
def test_a_dependency_that_has_finished_is_met_at_once(stack_factory):
    stack = stack_factory(workers=1)
    finished = stack.wait_for(_ok(stack.post({"type": "noop"}))["id"])
    assert finished["status"] == "finished"
    dependent = _ok(stack.post({"type": "count_words", "text": "a b c", "depends_on": [finished["id"]]}))
    assert dependent["status"] == "queued" and dependent["depends_on"] == [finished["id"]]
    assert stack.wait_for(dependent["id"])["result"]["words"] == 3


@pytest.mark.integration
@pytest.mark.deployments("default")
def test_unknown_failed_or_batch_only_dependencies_are_422_and_nothing_is_enqueued(stack_factory):
    stack = stack_factory(workers=1)
    failed = stack.wait_for(_ok(stack.post({"type": "fail"}))["id"])
    before = _job_count(stack)
    cases = [
        (["0123456789abcdef"], "no job with this id"),
        ([failed["id"]], "failed: it will never finish"),
        (["$0"], "POST /jobs/batch"),
        (["not an id!"], "pattern"),
    ]
    for depends_on, message in cases:
        body = assert_problem(stack.post({"type": "noop", "depends_on": depends_on}), 422)
        assert body["errors"][0]["field"].startswith("depends_on"), body
        assert message in body["errors"][0]["message"], body
    body = assert_problem(stack.post({"type": "noop", "depends_on": ["x"], "delay_seconds": 5}), 422)
    assert body["errors"][0]["field"] == "depends_on"
    assert _job_count(stack) == before


@pytest.mark.integration
@pytest.mark.deployments("default")
def test_another_clients_job_is_unknown_to_depends_on(stack_factory):
    stack = stack_factory(workers=0, API_KEYS="shop:client:s3cret,other:client:0th3r,ops:admin:t0ps3cret")
    theirs = _ok(stack.post({"type": "noop"}, headers={"Authorization": "Bearer 0th3r"}))
    body = assert_problem(stack.post({"type": "noop", "depends_on": [theirs["id"]]}, headers={"Authorization": "Bearer s3cret"}), 422)
    assert body["errors"] == [{"field": "depends_on.0", "message": "no job with this id (unknown, expired, or another client's)"}]
    admin = _ok(stack.post({"type": "noop", "depends_on": [theirs["id"]]}, headers={"Authorization": "Bearer t0ps3cret"}))
    assert admin["status"] == "deferred"


@pytest.mark.integration
@pytest.mark.deployments("default")
def test_dependents_of_a_job_abandoned_by_a_killed_worker_fail_too(stack_factory):
    """A worker SIGKILLed mid-job: maintenance fails the job (no retries left), and with it its dependents."""
    stack = stack_factory(workers=1)
    doomed = _ok(stack.post({"type": "sleep", "seconds": 60}))
    dependent = _ok(stack.post({"type": "noop", "depends_on": [doomed["id"]]}))
    wait_until(lambda: stack.get(f"/jobs/{doomed['id']}").json()["status"] == "started", what="the job to start")
    stack.workers[0].kill()
    stack.workers[0].wait(10)
    stack.start_worker()
    assert stack.wait_for(doomed["id"], timeout=60)["error"]["type"] == "WorkerDied"
    ended = stack.wait_for(dependent["id"], timeout=60)
    assert ended["status"] == "failed" and ended["error"]["type"] == "DependencyFailed"


def test_depends_on_in_a_form_is_the_field_repeated(client):
    first = client.post("/jobs", json={"type": "noop"}).get_json()["id"]
    second = client.post("/jobs", json={"type": "noop"}).get_json()["id"]
    answer = client.post(
        "/jobs", data={"file": "one two", "depends_on": [first, second]}, content_type="multipart/form-data"
    )
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["status"] == "deferred" and answer.get_json()["depends_on"] == [first, second]
