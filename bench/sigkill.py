"""``--phases sigkill``: what a worker's SIGKILL does to the job in hand, per contender (issue 26,
item 5). Measured, not quoted: for each contender one worker runs one job that sleeps a few
seconds; once the job is running, every process of the worker (the main process and its
children: the horse, the pool) is SIGKILLed at once, as an OOM kill of its container or the loss
of its machine would; a new worker is started, and the job watched for ``wait`` seconds.

The outcome is one of:

* ``run again``: the job ran a second time, to its end (``runs`` counts its starts);
* ``failed (worker died)``: the job ended failed, saying so (offload with no retries left);
* ``lost``: it never ended, and nothing in Redis would deliver it again;
* ``held``: it never ended within the wait, but its message is still in Redis, to be delivered
  again after the broker's timeout.

How soon a dead worker's job is taken up again depends on a timeout of each system, shortened
here so the experiment takes seconds (each contender's entry says which and its default):
offload's ``JOB_HEARTBEAT_SECONDS`` (2 here, the fault tests' value; 10 by default: the job is
taken up about six heartbeats after the kill), Celery's Redis ``visibility_timeout`` (10 s here; an hour
by default), Dramatiq's ``heartbeat_timeout`` (10 s here, with maintenance on every command; 60 s
and one command in a thousand by default).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.run import Bench

SLEEP_SECONDS = 3.0
#: Contenders the experiment knows, and the timeout it shortens for each.
TIMEOUTS = {
    "offload-fast": ("JOB_HEARTBEAT_SECONDS", "2 s", "10 s"),
    "offload-forking": ("JOB_HEARTBEAT_SECONDS", "2 s", "10 s"),
    "celery": ("visibility_timeout", "10 s", "1 h"),
    "celery-safe": ("visibility_timeout", "10 s", "1 h"),
    "dramatiq": ("heartbeat_timeout", "10 s", "60 s"),
}
ENV = {
    "offload-fast": {"JOB_HEARTBEAT_SECONDS": "2"},
    "offload-forking": {"JOB_HEARTBEAT_SECONDS": "2"},
    "celery": {"BENCH_CELERY_VISIBILITY": "10"},
    "celery-safe": {"BENCH_CELERY_VISIBILITY": "10", "BENCH_CELERY_SAFE": "1"},
    "dramatiq": {"BENCH_DRAMATIQ_HEARTBEAT_MS": "10000"},
}


def marked_sleep(url: str, seconds: float, token: str) -> dict:
    """The job of the Celery and Dramatiq contenders: counts its start, sleeps, counts its end."""
    import redis

    client = redis.Redis.from_url(url)
    client.incr(f"bench:sigkill:runs:{token}")
    time.sleep(seconds)
    client.incr(f"bench:sigkill:ends:{token}")
    return {"slept": seconds}


def kill_tree(pid: int) -> list[int]:
    """SIGKILL a process and every descendant, the descendants first gathered while all live."""
    from bench import system

    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(system.children(current))
    for each in found:
        try:
            os.kill(each, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


def run(bench: Bench, contenders: list[str], wait: float, log) -> dict:  # noqa: ANN001 - the harness's log
    out: dict = {"sleep_seconds": SLEEP_SECONDS, "wait_seconds": wait}
    for name in contenders:
        try:
            out[name] = _experiment(bench, name, wait)
        except Exception as exc:  # noqa: BLE001 - one contender's failure costs only its entry
            out[name] = {"outcome": "error", "error": f"{type(exc).__name__}: {exc}"}
        log(f"  sigkill {name:16s} {out[name]}")
    return out


def _experiment(bench: Bench, name: str, wait: float) -> dict:
    bench.reset(name)
    token = uuid.uuid4().hex
    submit, started, ended, held = _probes(bench, name, token)
    procs = bench.start_workers(name, 1, ENV[name])
    try:
        job = submit()
        bench._wait(started, 60, f"the {name} job to start")  # noqa: SLF001 - the harness's own helper
        time.sleep(0.3)  # inside the job's sleep
        killed = kill_tree(procs[0].pid)
        procs[0].wait(10)
        killed_at = time.monotonic()
        procs = bench.start_workers(name, 1, ENV[name])
        outcome = None
        while time.monotonic() - killed_at < wait:
            outcome = ended(job)
            if outcome:
                break
            time.sleep(0.2)
        seconds = round(time.monotonic() - killed_at, 1)
    finally:
        bench.stop_workers(name, procs)
    variable, here, default = TIMEOUTS[name]
    result = {"killed_processes": len(killed), "timeout": f"{variable} {here} here ({default} by default)"}
    if outcome:
        result.update(outcome, after_seconds=seconds)
    else:
        result.update(outcome="held" if held(job) else "lost", runs=outcome_runs(bench, name, token), waited_seconds=seconds)
    bench.reset(name)
    return result


def outcome_runs(bench: Bench, name: str, token: str) -> int | None:
    if name.startswith("offload"):
        return None
    return int(_client(bench, name).get(f"bench:sigkill:runs:{token}") or 0)


def _client(bench: Bench, name: str):  # noqa: ANN202
    return bench.r2 if name.startswith("celery") else bench.r3


def _probes(bench: Bench, name: str, token: str):  # noqa: ANN202
    """``(submit, started, ended, held)`` for one contender's job."""
    if name.startswith("offload"):
        return _offload_probes(bench)
    client = _client(bench, name)
    runs, ends = f"bench:sigkill:runs:{token}", f"bench:sigkill:ends:{token}"
    started = lambda: int(client.get(runs) or 0) >= 1  # noqa: E731

    def ended(_job) -> dict | None:  # noqa: ANN001
        if int(client.get(ends) or 0) >= 1:
            return {"outcome": "run again", "runs": int(client.get(runs) or 0)}
        return None

    if name.startswith("celery"):

        def submit() -> str:
            return bench._celery_producer().send_task("bench.marked_sleep", kwargs={"seconds": SLEEP_SECONDS, "token": token}).id  # noqa: SLF001

        def held(_job) -> bool:  # noqa: ANN001
            # kombu keeps a delivered, unacknowledged message in "unacked" until it is acked or
            # restored to its queue after the visibility timeout
            return any(token.encode() in raw for raw in client.hvals("unacked")) or any(token.encode() in raw for raw in client.lrange("celery", 0, -1))

        return submit, started, ended, held

    from bench import dramatiq_app

    def submit() -> str:
        return dramatiq_app.marked_sleep.send(seconds=SLEEP_SECONDS, token=token).message_id

    def held(_job) -> bool:  # noqa: ANN001
        return dramatiq_app.pending() > 0

    return submit, started, ended, held


def _offload_probes(bench: Bench):  # noqa: ANN202
    from app.jobs import catalog

    adapter = catalog.request_adapter(True)
    submitted: list[str] = []

    def submit() -> str:
        spec = adapter.validate_python({"type": "sleep", "seconds": SLEEP_SECONDS, "max_retries": 1}, context={"settings": bench.settings})
        submitted.append(bench.job_queue.submit(spec, owner="bench")["id"])
        return submitted[-1]

    def started() -> bool:
        return bench.job_queue.get(submitted[-1])["status"] == "started"

    def ended(job_id: str) -> dict | None:
        job = bench.job_queue.get(job_id)
        if job["status"] == "finished":
            return {"outcome": "run again", "runs": job["attempts"]}
        if job["status"] == "failed":
            return {"outcome": f"failed ({(job.get('error') or {}).get('type')})", "runs": job["attempts"]}
        return None

    def held(job_id: str) -> bool:
        return bench.job_queue.get(job_id)["status"] in ("queued", "started", "scheduled", "deferred")

    return submit, started, ended, held
