"""Where offload's worker spends its time per job: ``python -m bench.profile``.

For each worker (RQ's forking worker as offload configures it, RQ's SimpleWorker with the same
mixin, and the fast worker), one worker process drains N pre-filled no-op jobs in burst mode
against its own Valkey, and this prints per job:

* wall time, and CPU time of the worker and its children (horses);
* Redis round trips (``send`` calls of redis-py, counted in shared memory across the forks)
  and commands executed by the server (``INFO commandstats``; commands run inside a
  MULTI or a Lua script count one each, so this is the server's work, not round trips);
* for the forking worker, time in ``os.fork()`` and from fork to reap;
* with ``--py-spy``, the hottest frames of a sampled profile (py-spy, all processes).

It writes ``bench/results/profile.json``; ``bench/FINDINGS.md`` discusses the figures.
"""

from __future__ import annotations

import argparse
import collections
import json
import mmap
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KINDS = ("forking", "simple", "fast")


def _run_worker(kind: str, jobs: int, redis_url: str, out: Path) -> None:
    """In a child process: fill the queue, then drain it with one worker, counting."""
    os.environ.update({"REDIS_URL": redis_url, "ENABLE_DIAGNOSTIC_TASKS": "1", "LOG_LEVEL": "INFO"})
    import redis.connection

    from app import logs
    from app.connections import connect
    from app.jobs import JobQueue, catalog
    from app.settings import get_settings
    from app.worker import build_worker
    from app.worker import OffloadSimpleWorker

    settings = get_settings()
    logs.configure("INFO", process="worker")
    import logging

    logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # noqa: SIM115 - formatted, then dropped
    client = connect(settings)
    queue = JobQueue(client, settings)
    body = {"type": "noop"} if os.environ.get("BENCH_PROFILE_TASK", "noop") == "noop" else {"type": "count_words", "text": "the quick brown fox"}
    spec = catalog.request_adapter(True).validate_python(body, context={"settings": settings})
    for _ in range(jobs):
        queue.submit(spec, owner="profile")

    shared = mmap.mmap(-1, 64)  # MAP_SHARED|MAP_ANONYMOUS: the forked horses count into it too
    original_send = redis.connection.AbstractConnection.send_packed_command

    def counting_send(self, command, check_health=True):  # noqa: ANN001, ANN202
        (n,) = struct.unpack_from("q", shared, 0)
        struct.pack_into("q", shared, 0, n + 1)
        return original_send(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting_send
    fork_stats = {"forks": 0, "fork_s": 0.0}
    if kind == "forking":
        original_fork = os.fork

        def timed_fork() -> int:
            started = time.perf_counter()
            pid = original_fork()
            if pid:
                fork_stats["forks"] += 1
                fork_stats["fork_s"] += time.perf_counter() - started
            return pid

        os.fork = timed_fork

    connection = connect(settings, for_worker=True)
    settings = settings.model_copy(update={"worker_class": "fast" if kind == "fast" else "forking"})
    worker = build_worker(connection, settings)
    if kind == "simple":
        worker.__class__ = type("ProfiledSimpleWorker", (OffloadSimpleWorker,), {})
    client.config_resetstat()
    stats_before = {k: v["calls"] for k, v in client.info("commandstats").items()}
    server_cpu = lambda: (lambda i: i["used_cpu_user"] + i["used_cpu_sys"])(client.info("cpu"))  # noqa: E731
    server_cpu_before = server_cpu()
    struct.pack_into("q", shared, 0, 0)
    usage0 = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    started = time.perf_counter()
    worker.work(burst=True, with_scheduler=False, logging_level="INFO")
    wall = time.perf_counter() - started
    usage1 = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    (sends,) = struct.unpack_from("q", shared, 0)
    redis.connection.AbstractConnection.send_packed_command = original_send
    server_cpu_after = server_cpu()
    stats_full = client.info("commandstats")
    stats_after = {k: v["calls"] for k, v in stats_full.items()}
    commands = {k.removeprefix("cmdstat_"): stats_after[k] - stats_before.get(k, 0) for k in stats_after}
    commands = {k: v for k, v in commands.items() if v and k not in ("info",)}

    def cpu(i: int) -> float:
        return (usage1[i].ru_utime - usage0[i].ru_utime) + (usage1[i].ru_stime - usage0[i].ru_stime)

    result = {
        "kind": kind,
        "jobs": jobs,
        "wall_s": round(wall, 3),
        "jobs_per_s": round(jobs / wall, 1),
        "ms_per_job": round(1000 * wall / jobs, 3),
        "cpu_ms_per_job_worker": round(1000 * cpu(0) / jobs, 3),
        "cpu_ms_per_job_children": round(1000 * cpu(1) / jobs, 3),
        "cpu_ms_per_job_server": round(1000 * (server_cpu_after - server_cpu_before) / jobs, 3),
        "round_trips_per_job": round(sends / jobs, 2),
        "commands_per_job": round(sum(commands.values()) / jobs, 2),
        "commands": {k: round(v / jobs, 2) for k, v in sorted(commands.items(), key=lambda kv: -kv[1])},
        # the server's own time in each command a job, microseconds (a script's includes the commands it runs)
        "server_us_per_job": {
            k.removeprefix("cmdstat_"): round(v["usec"] / jobs, 1)
            for k, v in sorted(stats_full.items(), key=lambda kv: -kv[1]["usec"])
            if v["usec"] / jobs >= 0.5 and k != "cmdstat_info"
        },
    }
    if kind == "forking":
        result["fork_ms_per_job"] = round(1000 * fork_stats["fork_s"] / max(1, fork_stats["forks"]), 3)
    out.write_text(json.dumps(result))


def _hot_frames(raw: Path, top: int = 25) -> dict:
    """Self and inclusive sample shares from py-spy's raw (collapsed) output."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f for f in stack.split(";")[1:] if f]
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    share = lambda c: {f: round(100 * n / total, 1) for f, n in c.most_common(top)}  # noqa: E731
    return {"samples": total, "inclusive_pct": share(inclusive), "self_pct": share(own)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--py-spy", action="store_true", help="also sample each run with py-spy (all processes)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "profile.json")
    parser.add_argument("--port", type=int, default=0, help="the Valkey's port (default: any free one)")
    parser.add_argument("--run", nargs=3, metavar=("KIND", "URL", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        _run_worker(args.run[0], args.jobs, args.run[1], Path(args.run[2]))
        return 0

    from app.dev.stack import valkey_command
    from bench import system
    from bench.run import free_port

    tmp = Path(tempfile.mkdtemp(prefix="offload-profile-"))
    port = args.port or free_port()
    (tmp / "valkey").mkdir()
    valkey = system.spawn(valkey_command(port, tmp / "valkey"), cwd=ROOT, env=dict(os.environ), log=tmp / "valkey.log")
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    results = {"load_before": [round(x, 2) for x in os.getloadavg()], "runs": []}
    try:
        for kind in args.kinds.split(","):
            client.flushall()
            out = tmp / f"{kind}.json"
            command = [sys.executable, "-m", "bench.profile", "--jobs", str(args.jobs), "--run", kind, f"redis://127.0.0.1:{port}/0", str(out)]
            if args.py_spy:
                raw = tmp / f"{kind}.txt"
                command = [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses", "-r", "250", "-f", "raw", "-o", str(raw), "--", *command]
            subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if args.py_spy else None)
            run = json.loads(out.read_text())
            if args.py_spy:
                run["py_spy"] = _hot_frames(raw)
            results["runs"].append(run)
            print(
                f"{kind:8s} {run['jobs_per_s']:8.1f} jobs/s  {run['ms_per_job']:6.2f} ms/job  "
                f"cpu {run['cpu_ms_per_job_worker']:.2f}+{run['cpu_ms_per_job_children']:.2f} ms "
                f"(server {run['cpu_ms_per_job_server']:.2f})  "
                f"round trips {run['round_trips_per_job']:5.2f}  commands {run['commands_per_job']:5.1f}"
                + (f"  fork {run['fork_ms_per_job']:.2f} ms" if "fork_ms_per_job" in run else "")
            )
    finally:
        system.stop(valkey)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average before {results['load_before']}, after {results['load_after']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
