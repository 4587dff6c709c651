"""Per-key concurrency and fair shares across real worker processes (gunicorn, workers, Valkey):
the limit holds whichever worker takes a job, and a small client is not starved by a big one."""

from __future__ import annotations

from datetime import datetime

import pytest

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789ab"


def _interval(job: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(job["started_at"]), datetime.fromisoformat(job["ended_at"])


def _most_at_once(jobs: list[dict]) -> int:
    """The most jobs that ran at the same moment, from their started_at and ended_at."""
    edges = sorted([(start, 1) for start, _ in map(_interval, jobs)] + [(end, -1) for _, end in map(_interval, jobs)])
    running = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant (-1 < 1)
        running += step
        most = max(most, running)
    return most


@pytest.mark.deployments("default", "forking", "cluster")
def test_a_concurrency_limit_holds_across_workers(stack_factory):
    stack = stack_factory(workers=3)
    stack.wait_for_workers(3)  # with fewer up, "never more than two" would hold trivially or not at all
    body = {"type": "sleep", "seconds": 0.4, "concurrency_key": "mail:example.com", "concurrency_limit": 2}
    limited = [stack.post(body).json()["id"] for _ in range(6)]
    free = [stack.post({"type": "sleep", "seconds": 0.4}).json()["id"] for _ in range(3)]
    jobs = [stack.wait_for(job_id) for job_id in limited]
    assert [job["status"] for job in jobs] == ["finished"] * 6
    assert _most_at_once(jobs) == 2  # three workers, yet never more than two of the key at once
    assert {job["concurrency_key"] for job in jobs} == {"mail:example.com"}
    others = [stack.wait_for(job_id) for job_id in free]
    assert _most_at_once(others) >= 2  # the limit binds the key, not the workers
    assert [job["status"] for job in others] == ["finished"] * 3


@pytest.mark.deployments("default", "forking")
def test_a_fair_share_runs_a_small_clients_jobs_before_a_big_backlog(stack_factory):
    stack = stack_factory(workers=1, FAIR_SHARE="2", API_KEYS=f"alice:client:{ALICE},bob:client:{BOB}")
    alice, bob = {"Authorization": f"Bearer {ALICE}"}, {"Authorization": f"Bearer {BOB}"}
    backlog = [stack.post({"type": "sleep", "seconds": 0.05}, headers=alice).json()["id"] for _ in range(30)]
    small = [stack.post({"type": "sleep", "seconds": 0.05}, headers=bob).json()["id"] for _ in range(2)]
    ended = {}
    for job_id in small:
        job = _wait(stack, job_id, bob)
        assert job["status"] == "finished"
        ended[job_id] = job["ended_at"]
    last_small = max(ended.values())
    done = [_wait(stack, job_id, alice) for job_id in backlog]
    assert [job["status"] for job in done] == ["finished"] * 30
    before = sum(1 for job in done if job["ended_at"] < last_small)
    # One worker, a share of two: bob's two jobs queue behind at most two of alice's (plus the one
    # each of alice's endings promotes), not behind thirty.
    assert before <= 5, before


def _wait(stack, job_id: str, headers: dict) -> dict:
    for _ in range(20):
        body = stack.get(f"/jobs/{job_id}?wait=5", headers=headers).json()
        if body["status"] in ("finished", "failed", "canceled", "stopped"):
            return body
    return body
