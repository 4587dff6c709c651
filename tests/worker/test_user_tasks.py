"""A team's own tasks on real processes: loaded from OFFLOAD_TASKS (every Stack loads
tests/user_tasks.py) or an installed distribution's ``offload.tasks`` entry point, run by real
workers, and a process that cannot load them stops at start naming the module."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from ..conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.deployments("default", "forking")
def test_a_user_task_runs_with_progress_and_its_log_lines_carry_the_job(stack):
    job_id = stack.post({"type": "crunch", "seconds": 1.5}).json()["id"]
    seen = set()

    def finished() -> bool:
        body = stack.get(f"/jobs/{job_id}").json()
        if body["progress"]:
            seen.add(body["progress"]["done"])
        return body["status"] == "finished"

    wait_until(finished, timeout=30, interval=0.1, what="the user task to finish")
    done = stack.get(f"/jobs/{job_id}").json()
    assert done["result"] == {"steps": 15, "attempt": 1, "note_words": 0}
    assert done["queue"] == "low" and done["progress"] == {"done": 15, "total": 15}
    assert any(0 < step < 15 for step in seen), seen  # progress while it ran, not only at the end
    lines = [line for line in stack.logs().splitlines() if "crunched 15 steps" in line]
    assert lines and job_id in lines[0], lines


@pytest.mark.deployments("default", "forking")
def test_a_task_that_sees_its_cancel_stops_by_itself_within_the_grace(stack):
    job_id = stack.post({"type": "crunch", "seconds": 60}).json()["id"]
    wait_until(lambda: stack.get(f"/jobs/{job_id}").json()["status"] == "started", what="the job to start")
    assert stack.session_post(f"/jobs/{job_id}/cancel").status_code == 202
    done = stack.wait_for(job_id, timeout=20)
    assert done["status"] == "finished" and done["result"]["cancelled"] is True, done  # it returned what it had
    assert done["result"]["steps"] < 600


def test_a_worker_without_the_task_fails_its_job_naming_it_and_goes_on(stack_factory):
    stack = stack_factory(workers=0)
    stack.env["OFFLOAD_TASKS"] = ""  # a worker of the release before: it has only the built-ins
    stack.start_worker()
    job_id = stack.post({"type": "reverse_text", "text": "abc", "max_retries": 0}).json()["id"]
    done = stack.wait_for(job_id, timeout=30)
    assert done["status"] == "failed" and done["error"]["type"] == "UnknownTask", done
    assert "reverse_text" in done["error"]["message"]
    after = stack.post({"type": "count_words", "text": "still serving"}).json()["id"]
    assert stack.wait_for(after, timeout=30)["status"] == "finished"


def test_a_tasks_module_that_cannot_be_loaded_stops_web_worker_and_make_run_naming_it(tmp_path):
    env = {**os.environ, "OFFLOAD_TASKS": "tests.user_tasks, no_such_tasks_module", "PORT": str(free_port()),
           "DEV_REDIS_PORT": str(free_port()), "DEV_SMTP_PORT": str(free_port()), "VAR_DIR": str(tmp_path / "var")}  # fmt: skip
    for command in ([sys.executable, "worker.py", "--burst"], [sys.executable, "-m", "app.dev"]):
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "no_such_tasks_module" in done.stderr and "could not be imported" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr  # one line that says what to fix
        assert time.monotonic() - started < 30
    web = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{free_port()}", "wsgi:app"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert web.returncode != 0 and "no_such_tasks_module" in web.stderr


def test_tasks_of_an_installed_distribution_are_found_by_its_entry_point(stack_factory, tmp_path):
    """A package that declares ``[project.entry-points."offload.tasks"]``, installed (here: its
    metadata and module on the path), is loaded by web and worker with no OFFLOAD_TASKS at all."""
    site = tmp_path / "site"
    (site / "shout_tasks").mkdir(parents=True)
    (site / "shout_tasks" / "__init__.py").write_text(textwrap.dedent('''
        from pydantic import BaseModel
        from offload import task

        class ShoutArgs(BaseModel):
            """Shout a word."""
            word: str

        @task("shout", args=ShoutArgs)
        def shout(args, ctx):
            return {"shouted": args.word.upper()}
    '''))
    dist = site / "shout_tasks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-tasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[offload.tasks]\nshout = shout_tasks\n")
    stack = stack_factory(workers=1, OFFLOAD_TASKS="", PYTHONPATH=str(site))
    assert stack.get("/tasks/shout").json()["description"] == "Shout a word."
    job_id = stack.post({"type": "shout", "word": "hey"}).json()["id"]
    assert stack.wait_for(job_id)["result"] == {"shouted": "HEY"}


@pytest.mark.deployments("default", "forking")
def test_a_user_tasks_timeout_and_exceptions_end_as_the_built_ins_do(stack):
    timed_out = stack.post({"type": "crunch", "seconds": 30, "timeout_seconds": 1, "max_retries": 0}).json()["id"]
    permanent = stack.post({"type": "finish_as", "outcome": "permanent"}).json()["id"]
    big = stack.post({"type": "finish_as", "outcome": "big_result"}).json()["id"]
    assert stack.wait_for(timed_out, timeout=30)["error"]["type"] == "JobTimeout"
    failed = stack.wait_for(permanent)
    assert failed["error"]["type"] == "PermanentFailure" and failed["attempts"] == 1
    too_big = stack.wait_for(big)
    assert too_big["error"]["type"] == "ResultTooLarge" and too_big["attempts"] == 1
