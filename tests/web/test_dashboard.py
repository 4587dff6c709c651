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


def _banner(html: str) -> dict[str, str | bool]:
    """The banner's parts as the page shows them: each part's text, and whether it is hidden."""
    import re

    start = html.index('<div id="offload-banner"')
    banner = html[start : html.index("<script", start)]
    parts: dict[str, str | bool] = {"home": re.search(r'id="offload-home"[^>]*href="([^"]*)"', banner).group(1)}
    for name in ("unavailable", "paused", "waiting"):
        tag = re.search(rf'<div id="offload-{name}"[^>]*>', banner).group(0)
        parts[f"{name}_hidden"] = " hidden" in tag
        body = banner[banner.index(tag) + len(tag) : banner.index("</div>", banner.index(tag))]
        parts[name] = " ".join(re.sub(r"<[^>]+>", "", body).split())
    return parts


def _rq_info_workers(stack) -> str:
    """``rq info``'s worker lines, as an operator runs it against the stack's Redis."""
    import subprocess
    import sys
    from pathlib import Path

    rq = str(Path(sys.executable).with_name("rq"))
    done = subprocess.run([rq, "info", "--only-workers", "--url", stack.valkey.url], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.deployments("default", "forking")
def test_the_dashboard_and_rq_info_show_what_offload_holds_back(stack):
    """Issue 25: rq-dashboard and ``rq info`` showed queued jobs and idle workers with no hint that
    offload had paused the queue or that jobs waited for a concurrency slot, and the dashboard had
    no way back to offload's page."""
    stack.wait_for_workers(1)
    fresh = _banner(stack.get("/dashboard/").text)
    assert fresh["home"] == "/"
    assert fresh["paused_hidden"] and fresh["waiting_hidden"] and fresh["unavailable_hidden"]
    assert stack.get("/dashboard/offload-state.json").json() == {
        "available": True, "paused": [], "waiting": [], "waiting_total": 0,
    }  # fmt: skip
    assert "offload paused" not in _rq_info_workers(stack)

    # Paused: rq info's worker line says so (the worker looks every maintenance pass, 1 s here).
    assert stack.session_post("/queues/default/pause").status_code == 200
    waiting_job = stack.post({"type": "count_words", "text": "held back"}).json()["id"]
    info = wait_until(lambda: "offload paused: default" in (out := _rq_info_workers(stack)) and out, timeout=20,
                      what="rq info to show the pause")  # fmt: skip
    assert "idle (offload paused: default)" in info, info
    workers = stack.get("/dashboard/0/data/workers.json").json()["workers"]
    assert workers[0]["state"] == "idle (offload paused: default)"

    # Jobs waiting for a concurrency slot are on no queue: only the banner counts them.
    limited = [
        stack.post({"type": "sleep", "seconds": 2, "queue": "high", "concurrency_key": "report:acme", "concurrency_limit": 1}).json()["id"]
        for _ in range(3)
    ]
    state = stack.get("/dashboard/offload-state.json").json()
    assert state["paused"] == ["default"] and state["waiting_total"] == 2, state
    assert state["waiting"] == [{"kind": "key", "key": "report:acme", "owner": None, "limit": 1, "active": 1, "waiting": 2}]
    banner = _banner(stack.get("/dashboard/0/view/queues").text)
    assert not banner["paused_hidden"] and banner["paused"].startswith("Paused by offload: default.")
    assert not banner["waiting_hidden"], banner
    assert banner["waiting"].startswith("2 job(s) wait for a concurrency slot")
    assert "report:acme: 2 waiting, 1 of 1 running or queued" in banner["waiting"]
    assert stack.get(f"/jobs/{waiting_job}").json()["status"] == "queued"

    # Resumed: the held job runs, and rq info's worker line is plain again.
    assert stack.session_post("/queues/default/resume").status_code == 200
    assert stack.wait_for(waiting_job)["status"] == "finished"
    for job_id in limited:
        assert stack.wait_for(job_id)["status"] == "finished"
    wait_until(lambda: "offload paused" not in _rq_info_workers(stack), timeout=20, what="rq info to drop the pause")
    after = _banner(stack.get("/dashboard/").text)
    assert after["paused_hidden"] and after["waiting_hidden"]
