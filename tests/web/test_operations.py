"""Operating offload: backpressure, logs, secrets, hostile requests and safe binding
(fakeredis and real processes). Rate limits and metrics have modules of their own."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
import requests

from app import create_app
from app.jobs import JobQueue
from app.settings import get_settings


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


@pytest.mark.integration
def test_one_job_can_be_followed_from_post_to_end_in_json_logs(stack):
    response = stack.post({"type": "count_words", "text": "trace me"}, headers={"X-Request-ID": "trace-42"})
    job_id = response.json()["id"]
    stack.wait_for(job_id)
    lines = [json.loads(line) for line in stack.logs().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("job_id") == job_id]
    assert any(line["process"] == "web" and line["request_id"] == "trace-42" for line in mine), mine
    # The access lines too: the POST that made the job, and the GETs about it.
    access = {(line["http_method"], line["path"], line["status"]) for line in mine if "http_method" in line}
    assert ("POST", "/jobs", 202) in access and ("GET", f"/jobs/{job_id}", 200) in access, access
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
@pytest.mark.parametrize("command", [["-m", "gunicorn", "wsgi:app"], ["-m", "app.dev"]])
def test_anonymous_server_refuses_a_non_loopback_interface(command, tmp_path):
    import os
    import sys

    from ..conftest import ROOT

    env = {key: value for key, value in os.environ.items() if key not in ("API_KEYS", "ALLOW_ANONYMOUS")}
    env |= {"HOST": "0.0.0.0", "PORT": "1", "VAR_DIR": str(tmp_path / "var"), "REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ALLOW_ANONYMOUS" in result.stdout + result.stderr
