"""The dashboard (app/web/dashboard.py, rq-dashboard) with real processes: queues, workers and
jobs read with the JSON serializer. Its guard (admin key, same-origin POST) is in test_auth.py."""

from __future__ import annotations

import pytest

from ..conftest import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.deployments("default", "forking", "cluster")
def test_dashboard_shows_queues_and_workers_with_json_serializer(stack):
    job_id = stack.post({"type": "count_words", "text": "dash board"}).json()["id"]
    stack.wait_for(job_id)
    page = stack.get("/dashboard/")
    assert page.status_code == 200 and "RQ dashboard" in page.text
    queues = stack.get("/dashboard/0/data/queues.json").json()["queues"]
    assert {"high", "default", "low"} <= {queue["name"] for queue in queues}
    workers = wait_until(lambda: stack.get("/dashboard/0/data/workers.json").json()["workers"], what="a worker")
    assert set(workers[0]["queues"]) == {"high", "default", "low"}
    job = stack.get(f"/dashboard/0/data/job/{job_id}.json").json()
    assert job["id"] == job_id and job["status"] == "finished"
    assert "count_words" in job["description"]
    finished = stack.get("/dashboard/0/data/jobs/default/finished/8/asc/1.json").json()
    assert job_id in {entry["id"] for entry in finished["jobs"]}
    # A busy worker's current job is read with the JSON serializer too.
    busy = stack.post({"type": "sleep", "seconds": 3}).json()["id"]
    wait_until(lambda: stack.get(f"/jobs/{busy}").json()["status"] == "started", what="the job to start")
    response = stack.get("/dashboard/0/data/workers.json")
    assert response.status_code == 200
    assert response.json()["workers"][0]["current_job"]["job_id"] == busy
    assert stack.get("/dashboard/0/view/workers").status_code == 200
