"""API keys (app/web/auth.py): who may submit, see, cancel and retry which jobs, and who may open the dashboard."""

from __future__ import annotations

import base64

import pytest

from app import create_app
from app.settings import get_settings

CLIENT, OTHER, ADMIN = "shop-s3cret", "blog-s3cret", "ops-t0ps3cret"


@pytest.fixture
def keyed_client(monkeypatch, fake_redis):
    from app.jobs import JobQueue

    monkeypatch.setenv("API_KEYS", f"shop:client:{CLIENT},blog:client:{OTHER},ops:admin:{ADMIN}")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    settings = get_settings()
    return create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def test_jobs_need_a_key(keyed_client):
    response = keyed_client.post("/jobs", json={"type": "noop"})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    bad = keyed_client.get("/jobs", headers=bearer("wrong"))
    assert bad.status_code == 401 and "invalid_token" in bad.headers["WWW-Authenticate"]
    assert keyed_client.get("/healthz").status_code == 200


def test_a_client_sees_only_its_own_jobs(keyed_client):
    job_id = keyed_client.post("/jobs", json={"type": "noop"}, headers=bearer(CLIENT)).get_json()["id"]
    assert keyed_client.get(f"/jobs/{job_id}", headers=bearer(CLIENT)).status_code == 200
    assert keyed_client.get(f"/jobs/{job_id}", headers=bearer(OTHER)).status_code == 404
    assert keyed_client.post(f"/jobs/{job_id}/cancel", headers=bearer(OTHER)).status_code == 404
    assert keyed_client.post(f"/jobs/{job_id}/retry", headers=bearer(OTHER)).status_code == 404
    assert keyed_client.get("/jobs", headers=bearer(OTHER)).get_json()["jobs"] == []
    assert [job["id"] for job in keyed_client.get("/jobs", headers=bearer(CLIENT)).get_json()["jobs"]] == [job_id]
    assert keyed_client.get(f"/jobs/{job_id}", headers=bearer(ADMIN)).status_code == 200
    assert len(keyed_client.get("/jobs", headers=bearer(ADMIN)).get_json()["jobs"]) == 1


def test_the_same_idempotency_key_is_separate_per_client(keyed_client):
    body, key = {"type": "noop"}, {"Idempotency-Key": "k1"}
    first = keyed_client.post("/jobs", json=body, headers=bearer(CLIENT) | key).get_json()["id"]
    second = keyed_client.post("/jobs", json=body, headers=bearer(OTHER) | key).get_json()["id"]
    assert first != second


def test_dashboard_needs_an_admin_key(keyed_client):
    anonymous = keyed_client.get("/dashboard/")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    client_key = base64.b64encode(f"any:{CLIENT}".encode()).decode()
    assert keyed_client.get("/dashboard/", headers={"Authorization": f"Basic {client_key}"}).status_code == 403
    admin = base64.b64encode(f"any:{ADMIN}".encode()).decode()
    assert keyed_client.get("/dashboard/", headers={"Authorization": f"Basic {admin}"}).status_code == 200
    # Past the guard (the dashboard's own Redis connection is not the fake one here: 503).
    assert keyed_client.get("/dashboard/0/data/queues.json", headers=bearer(ADMIN)).status_code not in (401, 403)
    # JSON endpoints and POST actions are guarded too.
    assert keyed_client.get("/dashboard/0/data/queues.json").status_code == 401
    assert keyed_client.post("/dashboard/requeue/default").status_code == 401
    # So is what the dashboard's offload banner reads (the paused queues, every client's waiting keys).
    assert keyed_client.get("/dashboard/offload-state.json").status_code == 401
    assert keyed_client.get("/dashboard/offload-state.json", headers=bearer(CLIENT)).status_code == 403
    state = keyed_client.get("/dashboard/offload-state.json", headers=bearer(ADMIN))
    assert state.status_code == 200 and state.get_json()["available"] is True


def test_secrets_never_appear_in_answers(keyed_client):
    for response in (
        keyed_client.get("/jobs", headers=bearer("wrong")),
        keyed_client.get("/dashboard/", headers=bearer(CLIENT)),
    ):
        text = response.get_data(as_text=True)
        assert CLIENT not in text and ADMIN not in text and OTHER not in text


def test_dashboard_actions_need_post_from_the_same_origin(keyed_client):
    basic = {"Authorization": "Basic " + base64.b64encode(f"any:{ADMIN}".encode()).decode()}
    # rq-dashboard itself serves requeue-all over GET: refused.
    assert keyed_client.get("/dashboard/requeue/default", headers=basic).status_code == 405
    # A browser POST from another site carries the Basic credentials too: refused.
    cross = keyed_client.post("/dashboard/requeue/default", headers=basic | {"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    no_origin = keyed_client.post("/dashboard/job/abc/delete", headers=basic)
    assert no_origin.status_code == 403
    evil = keyed_client.post("/dashboard/job/abc/delete", headers=basic | {"Origin": "https://evil.example"})
    assert evil.status_code == 403
    # From the dashboard's own page (or a script with a Bearer key): past the guard.
    same = keyed_client.post("/dashboard/job/abc/delete", headers=basic | {"Sec-Fetch-Site": "same-origin"})
    assert same.status_code not in (401, 403, 405)
    origin = keyed_client.post("/dashboard/job/abc/delete", headers=basic | {"Origin": "http://localhost"})
    assert origin.status_code not in (401, 403, 405)
    assert keyed_client.post("/dashboard/job/abc/delete", headers=bearer(ADMIN)).status_code not in (401, 403, 405)
