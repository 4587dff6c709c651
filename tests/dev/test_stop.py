"""Ctrl-C on ``make run`` after it has served work (issue 25, item 8): every process of the stack is
gone within a bound. In half the runs that had served a few hundred requests a worker, and so
supervisord, Valkey and the SMTP sink, were still there 15 s later (tests/worker/test_stop.py
has the causes); a ``?wait=`` in flight held the web server until gunicorn's graceful timeout.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
import requests

from ..conftest import wait_until
from .devstack import DevStack

pytestmark = pytest.mark.integration

#: Measured on the shared 2-core test machine: 3.5-6.5 s from SIGINT to the last process gone
#: (7.3 s at a load average of 9), with jobs, schedules, a live-event stream and a ?wait=30 in
#: flight (web ~2.5 s, the workers ~1 s, then the sink and Valkey); 31 s before (a ?wait held
#: the web server to its end). The bound is the 15 s the issue watched for. Every program must
#: also leave by itself: one that supervisord had to SIGKILL at its stopwaitsecs (a worker that
#: forgot its stop) fails the test whatever the time.
STOP_BOUND_SECONDS = 15


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _hold(url: str, answers: list) -> None:
    try:
        answers.append(requests.get(url, timeout=60, stream=True).content)
    except requests.RequestException as exc:
        answers.append(exc)


@pytest.mark.timeout(300)
def test_ctrl_c_stops_every_process_of_a_stack_that_has_served_work(tmp_path):
    stack = DevStack(tmp_path, "busy", extra={"WORKER_COUNT": "2", "WEB_CONCURRENCY": "2"})  # make run's defaults
    stack.start().wait_ready(workers=2)
    base, session = stack.base, requests.Session()
    ids = []
    for n in range(300):  # what the runs did: jobs of each kind, schedules, the page
        body = [
            {"type": "count_words", "text": f"job {n}"},
            {"type": "send_email", "to": "dev@example.com", "subject": f"n{n}", "body": "b"},
            {"type": "count_words", "text": "later", "delay_seconds": 2},
            {"type": "count_words", "text": "low", "queue": "low"},
        ][n % 4]
        answer = session.post(f"{base}/jobs", json=body, timeout=10)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    for n in range(20):
        schedule = {"name": f"s{n}", "every_seconds": 1, "job": {"type": "count_words", "text": "tick"}}
        assert session.post(f"{base}/schedules", json=schedule, timeout=10).status_code == 201
    for path in ("/", "/queues", "/schedules", "/jobs?limit=50", "/metrics", "/dashboard/"):
        assert session.get(f"{base}{path}", timeout=10).status_code == 200, path
    assert session.get(f"{base}/jobs/{ids[0]}?wait=20", timeout=30).json()["status"] == "finished"
    later = session.post(f"{base}/jobs", json={"type": "count_words", "text": "x", "delay_seconds": 300}, timeout=10).json()["id"]
    answers: list = []
    for url in (f"{base}/jobs/{later}/events", f"{base}/jobs/{later}?wait=30"):  # a browser, a CLI --wait
        threading.Thread(target=_hold, args=(url, answers), daemon=True).start()
    time.sleep(2)  # the schedules tick, the workers work
    everything = stack.processes()
    assert len(everything) >= 8, everything  # supervisord, valkey, smtp, workers, their schedulers, gunicorn

    started = time.monotonic()
    stack.process.send_signal(signal.SIGINT)  # Ctrl-C reaches supervisord (its programs have groups of their own)
    deadline = started + 60
    while time.monotonic() < deadline and any(_alive(pid) for pid in everything):
        time.sleep(0.05)
    took = time.monotonic() - started
    left = [pid for pid in everything if _alive(pid)]
    assert not left, f"still running {took:.1f} s after Ctrl-C: {left}\n{stack.output()[-3000:]}"
    assert stack.process.wait(5) == 0
    record = (stack.var / "supervisord.log").read_text()  # supervisord's own (it runs silent)
    for program in ("web", "worker-0", "worker-1", "smtp", "valkey"):
        assert f"stopped: {program} (exit status 0)" in record, f"{program} did not stop by itself\n{record[-3000:]}"
    print(f"stopped in {took:.2f} s")
    assert took < STOP_BOUND_SECONDS, f"the stack took {took:.1f} s to stop"
    wait_until(lambda: len(answers) == 2, timeout=5, what="the held requests to be answered")
    assert all(isinstance(answer, bytes) for answer in answers), answers


def test_a_wait_in_flight_answers_at_once_when_the_server_stops(stack):
    """``GET /jobs/{id}?wait=30`` held gunicorn's graceful stop (35 s under make run) to its end."""
    job_id = stack.post({"type": "noop", "delay_seconds": 300}).json()["id"]
    answers: list = []
    thread = threading.Thread(target=_hold, args=(f"{stack.base}/jobs/{job_id}?wait=30", answers), daemon=True)
    thread.start()
    time.sleep(1)
    started = time.monotonic()
    stack.web.send_signal(signal.SIGTERM)
    thread.join(10)
    assert answers and isinstance(answers[0], bytes), answers
    assert b'"status": "scheduled"' in answers[0] or b'"status":"scheduled"' in answers[0], answers[0][:300]
    assert stack.web.wait(10) == 0
    assert time.monotonic() - started < 5
