"""The README's first job, run as written against a real stack (gunicorn, a worker, Valkey), from
the checkout as the README says; and the ``offload`` command ``make run``'s banner names.

Issue 25: the examples read a ``notes.txt`` that no checkout has (``curl -s`` printed nothing and
exited 26), and after ``make run`` nothing said where the ``offload`` command was."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import pytest

from app.dev.stack import _cli_banner

from .conftest import ROOT

pytestmark = pytest.mark.integration


def first_job_commands() -> list[str]:
    """The commands of the README's "A first job" block, continuation lines joined."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## A first job") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [command for command in block.replace("\\\n", " ").splitlines() if command.strip() and not command.startswith("#")]


def run_as_written(command: str, stack) -> subprocess.CompletedProcess:
    """Run ``command`` in a shell from the checkout, against ``stack`` instead of make run's port."""
    host = stack.base.removeprefix("http://")
    env = {**os.environ, "OFFLOAD_URL": stack.base}
    command = command.replace("localhost:8000", host)
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_readmes_first_job_runs_as_written(stack):
    commands = first_job_commands()
    assert len(commands) == 3 and "examples/notes.txt" in " ".join(commands)
    notes = (ROOT / "examples" / "notes.txt").read_text(encoding="utf-8")
    submitted = []
    for command in commands:
        done = run_as_written(command, stack)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        if command.startswith("curl"):
            job = json.loads(done.stdout)
            assert job["status"] == "queued" and job["type"] == "count_words", job
            submitted.append(job["id"])
        else:  # the offload command, which waits and prints the job with its result
            assert f'"words": {len(notes.split())}' in done.stdout, done.stdout
    first, upload = (stack.wait_for(job_id) for job_id in submitted)
    assert first["result"] == {"words": 4, "characters": 19, "lines": 1}  # as the README says
    assert upload["queue"] == "low" and upload["result"]["words"] == len(notes.split())


def test_the_banner_of_make_run_names_a_cli_that_works(stack):
    line = _cli_banner(ROOT, "http://127.0.0.1:8000")
    command = line.split("   (", 1)[0]
    assert command == ".venv/bin/offload tasks" or command.endswith("/offload tasks"), line
    assert (ROOT / shlex.split(command)[0]).is_file()
    elsewhere = _cli_banner(ROOT, stack.base)
    assert elsewhere.startswith(f"OFFLOAD_URL={stack.base} ")
    done = subprocess.run(["bash", "-c", elsewhere.split("   (", 1)[0]], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={key: value for key, value in os.environ.items() if key != "OFFLOAD_URL"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "count_words" in done.stdout and "send_email" in done.stdout
