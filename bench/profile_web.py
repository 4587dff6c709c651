"""Where a gunicorn worker spends its time on ``GET /healthz`` and ``POST /jobs``:
``python -m bench.profile_web``.

Starts the benchmark's servers (offload's real gunicorn configuration), drives each endpoint
with wrk for a few seconds while py-spy samples both gunicorn workers, and prints the
hottest frames grouped into a few buckets (Redis round trips, logging, metrics, rate limit,
validation, RQ job creation, ...). Also counts Redis commands per request. Writes
``bench/results/profile-web.json``; ``bench/FINDINGS.md`` discusses it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import loadgen, system  # noqa: E402
from bench.profile import _hot_frames  # noqa: E402
from bench.run import Bench, parse_args  # noqa: E402

BUCKETS = [
    ("redis round trips", ("redis/connection.py", "redis/_parsers", "redis/client.py", "redis/retry.py")),
    ("rate limit (flask-limiter, limits)", ("flask_limiter", "limits/")),
    ("logging (JSON lines)", ("logging/__init__.py", "pythonjsonlogger", "app/logs.py")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("RQ job creation / zlib / serialization", ("rq/job.py", "rq/queue.py", "zlib", "json/")),
    ("validation (pydantic)", ("pydantic",)),
    ("Flask / Werkzeug", ("flask/", "werkzeug/")),
    ("gunicorn", ("gunicorn/",)),
]


def bucket_shares(raw: Path) -> dict:
    """Share of samples whose stack passes through each bucket (a sample may be in several)."""
    totals = {name: 0 for name, _ in BUCKETS}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        for name, needles in BUCKETS:
            if any(needle in stack for needle in needles):
                totals[name] += n
    return {name: round(100 * n / samples, 1) for name, n in totals.items()} if samples else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_web", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "profile-web.json")
    args = parser.parse_args(argv)

    bench = Bench(parse_args(["--quick", "--wait-quiet", "0"]))
    tmp = Path(tempfile.mkdtemp(prefix="offload-profile-web-"))
    results: dict = {"load_before": [round(x, 2) for x in __import__("os").getloadavg()]}
    body = json.dumps({"type": "count_words", "text": "the quick brown fox jumps over the lazy dog"})
    try:
        bench.start_servers()
        workers = system.children(bench.web.pid)
        for name, method, path in (("healthz", "GET", "/healthz"), ("submit", "POST", "/jobs")):
            bench.r0.flushdb()
            before = {k: v["calls"] for k, v in bench.r0.info("commandstats").items()}
            spies = [
                subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "250", "-f", "raw", "-o", str(tmp / f"{name}-{pid}.txt"), "--pid", str(pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for pid in workers
            ]
            time.sleep(1.0)
            load = loadgen.run_load(bench.base, method, path, seconds=args.seconds, connections=16, body=body, token=",".join(bench.client_secrets))
            for spy in spies:
                spy.send_signal(2)
                spy.wait(30)
            after = {k: v["calls"] for k, v in bench.r0.info("commandstats").items()}
            commands = {k.removeprefix("cmdstat_"): after[k] - before.get(k, 0) for k in after}
            commands = {k: round(v / max(1, load.requests), 2) for k, v in commands.items() if v and k != "info"}
            merged = tmp / f"{name}.txt"
            merged.write_text("".join((tmp / f"{name}-{pid}.txt").read_text() for pid in workers if (tmp / f"{name}-{pid}.txt").exists()))
            results[name] = {
                "load": load.as_dict(),
                "redis_commands_per_request": dict(sorted(commands.items(), key=lambda kv: -kv[1])),
                "buckets_pct": bucket_shares(merged),
                "py_spy": _hot_frames(merged, top=30),
            }
            print(f"{name}: {load.rps:.0f} req/s, p50 {load.p50_ms:.2f} ms; Redis commands/request {sum(commands.values()):.1f}")
            for bucket, pct in results[name]["buckets_pct"].items():
                print(f"    {bucket:42s} {pct:5.1f} %")
    finally:
        bench.close()
    results["load_after"] = [round(x, 2) for x in __import__("os").getloadavg()]
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
