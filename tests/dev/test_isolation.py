"""Two ``make run`` stacks on one machine (issue 25, item 1): each keeps to its own servers.

A second stack whose ports were taken used to start anyway: its Valkey and SMTP sink failed to
bind while its web server and workers used the first stack's, and a fuzz run against one stack
paused the queues and deleted the jobs of another developer's. Now a stack refuses to start,
within seconds, naming each port taken and the setting that moves it; and its web server and
workers hold its own Valkey's password (var/valkey_password), so no other Valkey serves them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from ..conftest import ROOT, free_port, wait_until
from .devstack import DevStack, ok

pytestmark = pytest.mark.integration


def _refused(stack: DevStack, within: float = 15) -> str:
    """The stack's launcher exits non-zero by itself within ``within`` seconds; its output."""
    started = time.monotonic()
    stack.start()
    assert stack.process is not None
    code = stack.process.wait(within)
    assert code != 0, stack.output()
    assert time.monotonic() - started < within
    return stack.output()


@pytest.fixture
def stacks(tmp_path):
    made: list[DevStack] = []

    def make(name: str) -> DevStack:
        stack = DevStack(tmp_path, name)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.stop()


def test_two_stacks_at_once_each_keep_their_own_data_and_a_third_on_a_taken_port_refuses(stacks):
    first, second = stacks("first").start(), stacks("second").start()
    first.wait_ready()
    second.wait_ready()
    ours, theirs = first.submit("one two three"), second.submit("four five")
    assert first.job(ours, wait=20).json()["result"]["words"] == 3
    assert second.job(theirs, wait=20).json()["result"]["words"] == 2
    assert first.job(theirs).status_code == 404
    assert second.job(ours).status_code == 404
    assert first.workers() == second.workers() == 1  # each sees its own worker, not both
    schedule = {"name": "every minute", "cron": "* * * * *", "job": {"type": "count_words", "text": "tick"}}
    assert requests.post(f"{first.base}/schedules", json=schedule, timeout=10).status_code == 201
    assert requests.get(f"{second.base}/schedules", timeout=10).json()["schedules"] == []

    # A client without the stack's password gets nothing from its Valkey, nor one with another's.
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=first.redis_port).ping()
    password = (second.var / "valkey_password").read_text().strip()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=first.redis_port, username="offload", password=password).ping()
    password = (first.var / "valkey_password").read_text().strip()
    assert redis.Redis(port=first.redis_port, username="offload", password=password).ping()

    # A third stack told to use the first one's Valkey port refuses, naming it and its setting.
    third = stacks("third")
    third.redis_port = first.redis_port
    output = _refused(third)
    assert f"127.0.0.1:{first.redis_port}" in output and "DEV_REDIS_PORT" in output, output
    assert "DEV_REDIS_PORT=" in output.splitlines()[-1], "a command with a free port to use instead"
    assert not (third.var / "supervisord.conf").exists(), "nothing was started"
    # The first stack did not notice.
    assert first.job(ours).json()["status"] == "finished"
    assert first.workers() == 1
    assert len(requests.get(f"{first.base}/schedules", timeout=10).json()["schedules"]) == 1

    # The same with the second one's web port.
    fourth = stacks("fourth")
    fourth.port = second.port
    output = _refused(fourth)
    assert f"127.0.0.1:{second.port}" in output and "(PORT)" in output, output
    assert second.job(theirs).json()["status"] == "finished"


def test_a_stack_refuses_a_port_any_program_holds_and_a_var_folder_in_use(stacks):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        stack = stacks("held")
        stack.smtp_port = holder.getsockname()[1]
        output = _refused(stack)
        assert f"127.0.0.1:{stack.smtp_port}  SMTP sink (DEV_SMTP_PORT): in use" in output, output
        assert not ok(f"{stack.base}/healthz")
    finally:
        holder.close()

    running = stacks("running").start().wait_ready()
    same_folder = stacks("same-folder")
    same_folder.tmp, same_folder.name = running.tmp, running.name  # its var/, other ports
    same_folder.port, same_folder.redis_port, same_folder.smtp_port = free_port(), free_port(), free_port()
    started = time.monotonic()
    with open(same_folder.tmp / "same-folder.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.dev"], cwd=ROOT, env=same_folder.env(), stdout=log, stderr=subprocess.STDOUT
        )
    assert process.wait(15) != 0
    assert time.monotonic() - started < 15
    output = (same_folder.tmp / "same-folder.log").read_text()
    assert f"runs from {running.var}" in output and "VAR_DIR=" in output, output
    assert running.workers() == 1 and ok(f"{running.base}/readyz")


def test_the_web_server_and_workers_use_no_valkey_but_the_one_their_stack_started(stacks, tmp_path):
    """The race the port check cannot close: the stack's Valkey goes away and another server
    takes its port before it is back. Its web server and workers are refused (they hold their
    own Valkey's password), so they neither read nor run the other server's jobs."""
    from ..conftest import ValkeyProcess, submit
    from app.jobs.store import JobQueue
    from app.settings import Settings

    stack = stacks("raced").start().wait_ready()
    supervisorctl = [str(Path(sys.executable).with_name("supervisorctl")), "-c", str(stack.var / "supervisord.conf")]
    subprocess.run([*supervisorctl, "stop", "valkey"], check=True, capture_output=True)
    other = ValkeyProcess(tmp_path / "other-valkey")
    other.port, other.url = stack.redis_port, f"redis://127.0.0.1:{stack.redis_port}/0"
    other.start()
    try:
        settings = Settings(redis_url=other.url)
        foreign = submit(JobQueue(other.client(), settings), settings, type="count_words", text="not yours")["id"]
        wait_until(lambda: requests.get(f"{stack.base}/readyz", timeout=5).status_code == 503, what="readyz 503")
        assert stack.job(foreign).status_code in (404, 503)
        time.sleep(3)  # time enough for a worker to take it, were it connected
        assert other.client().hget(f"rq:job:{foreign}", "status") == b"queued"
    finally:
        other.stop()
