"""End to end with real processes: gunicorn, worker subprocesses, a Valkey server and an
SMTP server, all talking over TCP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


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


def test_email_arrives_at_the_smtp_server(stack, smtp):
    response = stack.post(
        {"type": "send_email", "to": "Alice@Example.com", "subject": "Your report", "body": "It is ready.\nBye."}
    )
    assert response.status_code == 202, response.text
    body = stack.wait_for(response.json()["id"])
    assert body["status"] == "finished", body
    result = body["result"]
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["From"] == "offload@example.test"
    assert message["To"] == "Alice@example.com"
    assert message["Subject"] == "Your report"
    assert message.get_content().replace("\r\n", "\n").strip() == "It is ready.\nBye."
    assert message["Message-ID"] == result["message_id"]
    assert result["accepted"] == ["Alice@example.com"]
    assert smtp.envelopes[0] == ("offload@example.test", ["Alice@example.com"])


def test_smtp_refusal_fails_the_job_with_an_smtp_error(stack, smtp):
    smtp.fail_with = "554 5.7.1 rejected for testing"
    job_id = stack.post({"type": "send_email", "to": "a@example.com", "body": "x", "max_retries": 0}).json()["id"]
    body = stack.wait_for(job_id)
    assert body["status"] == "failed"
    assert body["error"]["type"] == "SmtpError"
    assert "554" in body["error"]["message"]


def test_wait_returns_as_soon_as_the_job_ends(stack):
    job_id = stack.post({"type": "sleep", "seconds": 1.0}).json()["id"]
    started = time.monotonic()
    body = stack.get(f"/jobs/{job_id}?wait=20").json()
    elapsed = time.monotonic() - started
    assert body["status"] == "finished"
    assert elapsed < 6, elapsed  # far less than the 20 s asked for: the worker's event woke it


def test_wait_gives_up_after_n_seconds(stack_factory):
    stack = stack_factory(workers=0)
    job_id = stack.post({"type": "count_words", "text": "x"}).json()["id"]
    started = time.monotonic()
    response = stack.get(f"/jobs/{job_id}?wait=1")
    elapsed = time.monotonic() - started
    assert response.json()["status"] == "queued"
    assert response.headers["Retry-After"]
    assert 0.9 <= elapsed < 4, elapsed


def test_worker_refuses_a_function_that_is_not_an_offload_task(stack, clean_valkey, tmp_path):
    """A job written to Redis by anyone, naming any importable function, runs nothing."""
    from rq import Queue
    from rq.serializers import JSONSerializer

    marker = tmp_path / "ran"
    queue = Queue("default", connection=clean_valkey.client(), serializer=JSONSerializer)
    job = queue.enqueue_call("os.mkdir", args=[str(marker)])
    wait_until(lambda: job.get_status(refresh=True) in ("failed", "finished"), what="the worker to take the job")
    assert job.get_status() == "failed"
    assert "is not an offload task" in job.latest_result().exc_string
    assert not marker.exists()
    # And the worker is still serving.
    assert stack.wait_for(stack.post({"type": "count_words", "text": "still here"}).json()["id"])["status"] == "finished"


def test_jobs_are_stored_as_json_not_pickle(stack, clean_valkey):
    job_id = stack.post({"type": "count_words", "text": "json please"}).json()["id"]
    stack.wait_for(job_id)
    raw = clean_valkey.client().hget(f"rq:job:{job_id}", "data")
    import json
    import zlib

    decoded = json.loads(zlib.decompress(raw))
    assert decoded[0] == "app.tasks.count_words"
    assert decoded[3] == {"text": "json please"}


def test_priority_queues_are_served_high_first(stack_factory):
    stack = stack_factory(workers=0)
    low = stack.post({"type": "noop", "queue": "low"}).json()["id"]
    default = stack.post({"type": "noop"}).json()["id"]
    high = stack.post({"type": "noop", "queue": "high"}).json()["id"]
    stack.start_worker("--burst")
    stack.workers[-1].wait(30)
    started = {job: stack.get(f"/jobs/{job}").json()["started_at"] for job in (low, default, high)}
    assert started[high] < started[default] < started[low]


def test_worker_warm_shutdown_finishes_the_job(stack):
    job_id = stack.post({"type": "sleep", "seconds": 2}).json()["id"]
    wait_until(lambda: stack.get(f"/jobs/{job_id}").json()["status"] == "started", what="the job to start")
    worker = stack.workers[0]
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert stack.get(f"/jobs/{job_id}").json()["status"] == "finished"


def test_worker_waits_for_redis_and_reconnects(stack_factory, clean_valkey):
    stack = stack_factory(workers=1)
    assert stack.wait_for(stack.post({"type": "noop"}).json()["id"])["status"] == "finished"
    clean_valkey.stop()  # graceful: AOF flushed
    time.sleep(2)
    assert stack.workers[0].poll() is None, "the worker must survive Redis going away"
    response = stack.post({"type": "noop"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert stack.get("/readyz").status_code == 503
    clean_valkey.start()
    wait_until(lambda: stack.get("/readyz").status_code == 200, what="readyz to recover")
    job_id = stack.post({"type": "count_words", "text": "back again"}).json()["id"]
    assert stack.wait_for(job_id, timeout=40)["status"] == "finished"


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


def test_make_run_dev_stack_starts_and_stops_cleanly(tmp_path):
    """``python -m app.devstack`` (what ``make run`` execs) with embedded Valkey and SMTP sink."""
    port, redis_port, smtp_port = free_port(), free_port(), free_port()
    env = {
        key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "SMTP_URL")
    } | {"PORT": str(port), "DEV_REDIS_PORT": str(redis_port), "DEV_SMTP_PORT": str(smtp_port),
         "VAR_DIR": str(tmp_path / "var"), "WORKER_COUNT": "2"}  # fmt: skip
    log = open(tmp_path / "stack.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "app.devstack"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ok(f"{base}/readyz"), timeout=30, what="the dev stack")
        job = requests.post(
            f"{base}/jobs", json={"type": "send_email", "to": "dev@example.com", "subject": "s", "body": "b"}, timeout=5
        ).json()
        done = requests.get(f"{base}/jobs/{job['id']}?wait=20", timeout=30).json()
        assert done["status"] == "finished", done
        mail = wait_until(lambda: list((tmp_path / "var" / "mail").glob("*.eml")), what="an .eml file")
        assert b"Subject: s" in mail[0].read_bytes()
        assert list((tmp_path / "var" / "valkey").rglob("*.aof*")), "AOF must be on"
        workers = wait_until(
            lambda: len(_workers(base)) == 2 and _workers(base), timeout=20, what="two workers in the dashboard"
        )
        assert len(workers) == 2
        # A crashed process is restarted, as compose's restart policy does: Valkey and a worker.
        config = str(tmp_path / "var" / "supervisord.conf")
        for program in ("valkey", "worker:worker-0"):
            pid = _supervised_pid(config, program)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: _supervised_pid(config, program) not in (0, pid), timeout=30, what=f"{program} restarted")
        wait_until(lambda: _ok(f"{base}/readyz"), timeout=30, what="Redis back")
        job = requests.post(f"{base}/jobs", json={"type": "count_words", "text": "after the crash"}, timeout=5).json()
        assert requests.get(f"{base}/jobs/{job['id']}?wait=20", timeout=30).json()["status"] == "finished"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        log.close()
    assert code == 0, (tmp_path / "stack.log").read_text()
    output = (tmp_path / "stack.log").read_text()
    for name in ("valkey", "smtp", "worker-0", "worker-1", "web"):
        assert f"stopped: {name}" in output, name
    assert not _ok(f"{base}/healthz")


def _supervised_pid(config: str, program: str) -> int:
    supervisorctl = str(Path(sys.executable).with_name("supervisorctl"))
    out = subprocess.run([supervisorctl, "-c", config, "pid", program], capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() else 0


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _workers(base: str) -> list:
    try:
        return requests.get(f"{base}/dashboard/0/data/workers.json", timeout=2).json()["workers"]
    except (requests.RequestException, ValueError, KeyError):
        return []
