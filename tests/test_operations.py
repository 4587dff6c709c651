"""Operating offload: rate limits, backpressure, metrics and logs (fakeredis and real processes)."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import pytest
import requests

from app import create_app
from app.queueing import JobQueue
from app.settings import get_settings

from .conftest import run_jobs


@pytest.fixture
def limited_client(monkeypatch, fake_redis):
    monkeypatch.setenv("RATE_LIMIT_SUBMIT", "3/minute")
    monkeypatch.setenv("RATE_LIMIT_READ", "100/second")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    settings = get_settings()
    queue = JobQueue(fake_redis, settings)
    return create_app(settings, job_queue=queue).test_client(), queue


def test_rate_limit_answers_429_with_retry_after_and_ratelimit_headers(limited_client):
    client, queue = limited_client
    answers = [client.post("/jobs", json={"type": "noop"}) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [202, 202, 202, 429]
    assert answers[0].headers["RateLimit-Policy"] == "3;w=60"
    assert answers[0].headers["RateLimit"].startswith("limit=3, remaining=2, reset=")
    breached = answers[3]
    assert breached.mimetype == "application/problem+json"
    assert 1 <= int(breached.headers["Retry-After"]) <= 61  # the window, rounded up to whole seconds
    assert breached.headers["RateLimit"].startswith("limit=3, remaining=0")
    assert breached.get_json()["status"] == 429
    assert sum(q.count for q in queue.queues.values()) == 3  # the refused one enqueued nothing
    # Reads have their own budget.
    assert client.get("/jobs").status_code == 200


def test_rate_limits_are_per_key(monkeypatch, fake_redis):
    monkeypatch.setenv("RATE_LIMIT_SUBMIT", "1/minute")
    monkeypatch.setenv("API_KEYS", "a:client:aaa,b:client:bbb")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()
    post = lambda key: client.post("/jobs", json={"type": "noop"}, headers={"Authorization": f"Bearer {key}"})  # noqa: E731
    assert post("aaa").status_code == 202
    assert post("aaa").status_code == 429
    assert post("bbb").status_code == 202


def test_queue_over_its_depth_limit_answers_503_and_enqueues_nothing(monkeypatch, fake_redis):
    monkeypatch.setenv("MAX_QUEUE_DEPTH", "2")
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    settings = get_settings()
    queue = JobQueue(fake_redis, settings)
    client = create_app(settings, job_queue=queue).test_client()
    assert [client.post("/jobs", json={"type": "noop"}).status_code for _ in range(2)] == [202, 202]
    full = client.post("/jobs", json={"type": "noop"})
    assert full.status_code == 503 and int(full.headers["Retry-After"]) > 0
    assert "depth" in full.get_json()["detail"]
    assert queue.queues["default"].count == 2
    assert client.post("/jobs", json={"type": "noop", "queue": "high"}).status_code == 202  # per queue


NOT_FOUND_SAMPLE = r'offload_http_requests_total\{method="GET",route="/jobs/<job_id>",status="404"\} (\S+)'


def _not_found_count(client) -> float:
    found = re.search(NOT_FOUND_SAMPLE, client.get("/metrics").get_data(as_text=True))
    return float(found.group(1)) if found else 0.0


def test_metrics_count_jobs_and_requests(client, job_queue):
    before = _not_found_count(client)  # HTTP counters are per process: other tests count too
    client.post("/jobs", json={"type": "count_words", "text": "a b"})
    client.post("/jobs", json={"type": "fail", "message": "x"})
    client.post("/jobs", json={"type": "noop", "queue": "low"})
    run_jobs(job_queue)
    client.post("/jobs", json={"type": "noop", "queue": "high"})
    client.get("/jobs/nope")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'offload_jobs_total{event="enqueued",type="count_words"} 1.0' in text
    assert 'offload_jobs_total{event="finished",type="count_words"} 1.0' in text
    assert 'offload_jobs_total{event="failed",type="fail"} 1.0' in text
    assert 'offload_jobs_total{event="started",type="noop"} 1.0' in text
    assert 'offload_queue_jobs{queue="high",state="queued"} 1.0' in text
    assert 'offload_job_run_seconds_count{type="count_words"} 1.0' in text
    assert float(re.search(NOT_FOUND_SAMPLE, text).group(1)) == before + 1
    assert 'offload_http_request_duration_seconds_bucket{le="+Inf",route="/jobs"}' in text


def test_metrics_need_an_admin_key(monkeypatch, fake_redis):
    monkeypatch.setenv("API_KEYS", "shop:client:c1,ops:admin:a1")
    settings = get_settings()
    client = create_app(settings, job_queue=JobQueue(fake_redis, settings)).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer c1"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer a1"}).status_code == 200


@pytest.mark.integration
def test_metrics_add_up_across_gunicorn_and_worker_processes(stack_factory):
    stack = stack_factory(workers=2)  # gunicorn runs 2 processes
    ids = [stack.post({"type": "count_words", "text": f"n {n}"}).json()["id"] for n in range(20)]
    for job_id in ids:
        assert stack.wait_for(job_id)["status"] == "finished"
    samples = [stack.get("/metrics").text for _ in range(6)]  # answered by either process
    for text in samples:
        assert 'offload_jobs_total{event="finished",type="count_words"} 20.0' in text
        assert "offload_workers 2.0" in text
        posts = re.search(r'offload_http_requests_total\{method="POST",route="/jobs",status="202"\} (\S+)', text)
        assert posts and float(posts.group(1)) == 20.0


@pytest.mark.integration
def test_one_job_can_be_followed_from_post_to_end_in_json_logs(stack):
    response = stack.post({"type": "count_words", "text": "trace me"}, headers={"X-Request-ID": "trace-42"})
    job_id = response.json()["id"]
    stack.wait_for(job_id)
    lines = [json.loads(line) for line in stack.logs().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("job_id") == job_id]
    assert any(line["process"] == "web" and line["request_id"] == "trace-42" for line in mine), mine
    worker_lines = [line for line in mine if line["process"] == "worker"]
    assert worker_lines and all(line["request_id"] == "trace-42" for line in worker_lines)
    # Two INFO lines a job from the worker: when it takes the job (operators and
    # ci/compose-test.sh find the worker running a job by it) and at its end, with the
    # duration; RQ's "Job OK" and "result is kept" lines are DEBUG.
    # (The first is written before the job's ids are in the log context: grep finds it by its text.)
    takes = [line for line in lines if line["process"] == "worker" and line["message"].endswith(f": {job_id}")]
    ends = [line for line in worker_lines if line["message"].startswith(f"Successfully completed job {job_id} in ")]
    assert len(takes) == 1 and len(ends) == 1, worker_lines
    assert not any("Job OK" in line["message"] or "result is kept" in line["message"] for line in worker_lines)


@pytest.mark.integration
def test_no_secret_appears_in_logs_answers_process_list_or_dashboard(stack_factory, smtp):
    smtp_secret, admin_secret, client_secret = "SmtpP4ss-zx81", "Adm1nK3y-qq72", "Cl13ntK3y-pp19"
    port = smtp.url.rsplit(":", 1)[1]
    stack = stack_factory(
        SMTP_URL=f"smtp://mailer:{smtp_secret}@127.0.0.1:{port}",
        API_KEYS=f"shop:client:{client_secret},ops:admin:{admin_secret}",
        WEBHOOK_SECRET="WhS3cr3t-kk33",
    )
    client = {"Authorization": f"Bearer {client_secret}"}
    admin = {"Authorization": f"Bearer {admin_secret}"}
    job = stack.post({"type": "send_email", "to": "a@example.com", "body": "x", "max_retries": 0}, headers=client)
    done = stack.get(f"/jobs/{job.json()['id']}?wait=20", headers=client).json()
    # The sink offers no AUTH over plain text, so login fails: the error must not quote the password.
    answers = [job.text, json.dumps(done)]
    answers.append(stack.post({"type": "noop"}, headers={"Authorization": "Bearer wrong"}).text)
    answers.append(stack.get("/metrics", headers=admin).text)
    for path in ("/dashboard/", "/dashboard/0/view/workers", "/dashboard/0/data/workers.json",
                 "/dashboard/0/data/queues.json", f"/dashboard/0/data/job/{done['id']}.json"):  # fmt: skip
        page = stack.get(path, headers=admin)
        assert page.status_code == 200, path
        answers.append(page.text)
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    everything = "\n".join([*answers, processes, stack.logs()])
    for secret in (smtp_secret, admin_secret, client_secret, "WhS3cr3t-kk33"):
        assert secret not in everything, secret


@pytest.mark.integration
def test_header_and_body_injection_and_lies_get_4xx_and_reach_no_worker(stack, clean_valkey):
    host, port = "127.0.0.1", stack.port

    def raw(request: bytes, shut: bool = True) -> int:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(request)
            if shut:
                sock.shutdown(socket.SHUT_WR)
            reply = sock.recv(65536)
        return int(reply.split(b" ", 2)[1])

    body = b'{"type": "count_words", "text": "hello"}'
    # Content-Length says more than is sent.
    assert raw(b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n" + body) == 400
    # Oversized header.
    huge = b"X-Big: " + b"a" * 20000 + b"\r\n"
    assert 400 <= raw(b"POST /jobs HTTP/1.1\r\nHost: x\r\n" + huge + b"Content-Type: application/json\r\nContent-Length: 41\r\n\r\n" + body) < 500
    # Non-UTF-8 body, NUL and CR/LF in email fields.
    assert stack.post_raw(b'{"type": "count_words", "text": "\xff"}').status_code == 400
    for fields in ({"to": "a@example.com\u0000"}, {"subject": "x\rBcc: b@example.com"}, {"body": "nul\u0000"},
                   {"to": "a@example.com\nBcc: c@example.com"}):  # fmt: skip
        payload = {"type": "send_email", "to": "a@example.com", "subject": "s", "body": "b", **fields}
        assert stack.post(payload).status_code == 422, fields
    for name in ("high", "default", "low"):
        assert clean_valkey.client().llen(f"rq:queue:{name}") == 0
    assert requests.get(f"{stack.base}/healthz", timeout=5).status_code == 200


@pytest.mark.integration
@pytest.mark.parametrize("command", [["-m", "gunicorn", "wsgi:app"], ["-m", "app.devstack"]])
def test_anonymous_server_refuses_a_non_loopback_interface(command, tmp_path):
    import os
    import sys

    from .conftest import ROOT

    env = {key: value for key, value in os.environ.items() if key not in ("API_KEYS", "ALLOW_ANONYMOUS")}
    env |= {"HOST": "0.0.0.0", "PORT": "1", "VAR_DIR": str(tmp_path / "var"), "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ALLOW_ANONYMOUS" in result.stdout + result.stderr
