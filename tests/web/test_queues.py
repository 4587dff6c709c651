"""``/queues`` (app/web/queues.py, app/jobs/queues_admin.py): depths, pause and resume, on fakeredis,
then on real processes with both worker classes: a paused queue takes jobs but no worker runs one,
also after a worker restart, and runs them once resumed (issue 18, item 1)."""

from __future__ import annotations

import pytest

from app import create_app
from app.jobs import JobQueue
from app.settings import get_settings

from ..conftest import assert_problem, run_jobs, wait_until

CLIENT, ADMIN = "shop-s3cret", "ops-t0ps3cret"


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def _queue(client, name: str, **kwargs) -> dict:
    return next(queue for queue in client.get("/queues", **kwargs).get_json()["queues"] if queue["name"] == name)


def test_queues_list_counts_and_links(client, job_queue):
    client.post("/jobs", json={"type": "noop"})
    client.post("/jobs", json={"type": "noop", "queue": "high", "delay_seconds": 60})
    client.post("/jobs", json={"type": "fail", "message": "x", "queue": "low"})
    run_jobs(job_queue)
    client.post("/jobs", json={"type": "noop"})
    queues = client.get("/queues").get_json()["queues"]
    assert [queue["name"] for queue in queues] == ["high", "default", "low"]
    by_name = {queue["name"]: queue for queue in queues}
    assert by_name["default"] == {
        "name": "default", "paused": False, "queued": 1, "scheduled": 0, "started": 0, "deferred": 0, "failed": 0,
        "workers": 0, "links": {"self": "/queues/default", "pause": "/queues/default/pause",
                                "resume": "/queues/default/resume"},
    }  # fmt: skip
    assert by_name["high"]["scheduled"] == 1 and by_name["low"]["failed"] == 1
    assert client.get("/queues/low").get_json() == by_name["low"]


def test_a_paused_queue_takes_jobs_that_no_worker_runs_until_resumed(client, job_queue):
    paused = client.post("/queues/default/pause")
    assert paused.status_code == 200 and paused.get_json()["paused"] is True
    assert client.post("/queues/default/pause").get_json()["paused"] is True  # idempotent
    waiting = client.post("/jobs", json={"type": "noop"}).get_json()["id"]
    other = client.post("/jobs", json={"type": "noop", "queue": "low"}).get_json()["id"]
    run_jobs(job_queue)  # the forking worker's dequeue script, in this process
    assert client.get(f"/jobs/{other}").get_json()["status"] == "finished"
    assert client.get(f"/jobs/{waiting}").get_json()["status"] == "queued"
    assert _queue(client, "default")["queued"] == 1
    resumed = client.post("/queues/default/resume")
    assert resumed.status_code == 200 and resumed.get_json()["paused"] is False
    run_jobs(job_queue)
    assert client.get(f"/jobs/{waiting}").get_json()["status"] == "finished"


def test_unknown_queue_is_404(client):
    for answer in (client.get("/queues/urgent"), client.post("/queues/urgent/pause"), client.post("/queues/urgent/resume")):
        assert "high, default, low" in assert_problem(answer, 404)["detail"]


@pytest.fixture
def keyed_client(monkeypatch, fake_redis):
    monkeypatch.setenv("API_KEYS", f"shop:client:{CLIENT},ops:admin:{ADMIN}")
    settings = get_settings()
    return create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()


def test_pause_and_resume_need_an_admin_key_and_reading_needs_any_key(keyed_client):
    assert_problem(keyed_client.get("/queues"), 401)
    assert keyed_client.get("/queues", headers=bearer(CLIENT)).status_code == 200
    for action in ("pause", "resume"):
        refused = keyed_client.post(f"/queues/default/{action}", headers=bearer(CLIENT))
        assert_problem(refused, 403)
        assert "insufficient_scope" in refused.headers["WWW-Authenticate"]
        assert_problem(keyed_client.post(f"/queues/default/{action}"), 401)
        assert_problem(keyed_client.post(f"/queues/urgent/{action}", headers=bearer(CLIENT)), 403)
    assert _queue(keyed_client, "default", headers=bearer(CLIENT))["paused"] is False
    assert keyed_client.post("/queues/default/pause", headers=bearer(ADMIN)).get_json()["paused"] is True
    assert _queue(keyed_client, "default", headers=bearer(CLIENT))["paused"] is True
    assert_problem(keyed_client.post("/queues/urgent/pause", headers=bearer(ADMIN)), 404)


def test_document_declares_the_queue_operations(keyed_client):
    document = keyed_client.get("/openapi.json").get_json()
    pause = document["paths"]["/queues/{name}/pause"]["post"]
    assert {"200", "401", "403", "404", "429", "503"} <= set(pause["responses"])
    assert document["paths"]["/queues"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/QueueList"
    }


# --- real processes ------------------------------------------------------------------------


def _wait_for(stack, job_id: str, headers: dict) -> dict:
    """``stack.wait_for`` with a key: ``?wait=`` until the job ends (or 30 s pass)."""
    for _ in range(6):
        body = stack.get(f"/jobs/{job_id}?wait=5", headers=headers).json()
        if body["status"] in ("finished", "failed", "canceled", "stopped"):
            break
    return body


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_pause_holds_jobs_across_a_worker_restart_and_resume_runs_them(stack_factory):
    stack = stack_factory(API_KEYS=f"shop:client:{CLIENT},ops:admin:{ADMIN}")
    admin, client = bearer(ADMIN), bearer(CLIENT)
    assert stack.session_post("/queues/default/pause", headers=client).status_code == 403
    assert stack.session_post("/queues/urgent/pause", headers=admin).status_code == 404
    paused = stack.session_post("/queues/default/pause", headers=admin)
    assert paused.status_code == 200 and paused.json()["paused"] is True

    held = stack.post({"type": "noop"}, headers=client).json()["id"]
    # The worker serves high, default, low in that order: a job on low that finishes proves
    # it has looked at default, found it paused and gone past it.
    passed = stack.post({"type": "noop", "queue": "low"}, headers=client).json()["id"]
    assert _wait_for(stack, passed, client)["status"] == "finished"
    assert stack.get(f"/jobs/{held}", headers=client).json()["status"] == "queued"
    default = next(q for q in stack.get("/queues", headers=client).json()["queues"] if q["name"] == "default")
    assert default["paused"] is True and default["queued"] == 1 and default["workers"] == 1

    # A new worker (the old one stopped) still honours the pause.
    worker = stack.workers[0]
    worker.terminate()
    worker.wait(30)
    stack.start_worker()
    again = stack.post({"type": "noop", "queue": "low"}, headers=client).json()["id"]
    assert _wait_for(stack, again, client)["status"] == "finished"
    assert stack.get(f"/jobs/{held}", headers=client).json()["status"] == "queued"

    resumed = stack.session_post("/queues/default/resume", headers=admin)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert _wait_for(stack, held, client)["status"] == "finished"
    assert stack.get("/queues/default", headers=client).json()["queued"] == 0


@pytest.mark.integration
@pytest.mark.deployments("default", "forking")
def test_a_delayed_job_moves_onto_a_paused_queue_and_waits_there(stack):
    assert stack.session_post("/queues/default/pause").json()["paused"] is True
    delayed = stack.post({"type": "noop", "delay_seconds": 1}).json()
    assert delayed["status"] == "scheduled"

    def moved() -> dict | None:
        default = stack.get("/queues/default").json()
        return default if default["scheduled"] == 0 and default["queued"] == 1 else None

    default = wait_until(moved, timeout=30, what="RQ's scheduler to move the job onto its queue")
    assert default["paused"] is True
    passed = stack.post({"type": "noop", "queue": "low"}).json()["id"]  # the worker is taking jobs
    assert stack.wait_for(passed)["status"] == "finished"
    assert stack.get(f"/jobs/{delayed['id']}").json()["status"] == "queued"
    stack.session_post("/queues/default/resume")
    assert stack.wait_for(delayed["id"])["status"] == "finished"


def test_concurrency_lists_a_clients_own_keys_and_every_key_for_an_admin(keyed_client):
    limited = {"type": "count_words", "text": "a b", "concurrency_key": "mail:example.com", "concurrency_limit": 1}
    for _ in range(3):
        assert keyed_client.post("/jobs", json=limited, headers=bearer(CLIENT)).status_code == 202
    assert keyed_client.post("/jobs", json={**limited, "concurrency_key": "ops"}, headers=bearer(ADMIN)).status_code == 202
    mine = keyed_client.get("/concurrency", headers=bearer(CLIENT)).get_json()["keys"]
    assert mine == [{"kind": "key", "key": "mail:example.com", "owner": "shop", "limit": 1, "active": 1, "waiting": 2}]
    every = keyed_client.get("/concurrency", headers=bearer(ADMIN)).get_json()["keys"]
    assert sorted(entry["key"] for entry in every) == ["mail:example.com", "ops"]
    assert_problem(keyed_client.get("/concurrency"), 401)
