"""Where a gunicorn worker spends its time on ``GET /healthz`` and ``POST /jobs``:
``python -m bench.profile_web``.

Starts the benchmark's servers (offload's real gunicorn configuration), drives each endpoint
with wrk for a few seconds while py-spy samples both gunicorn workers, and prints the
hottest frames attributed to their owner (rate limiter, logging, metrics, queueing and RQ, validation,
Flask, gunicorn), Redis I/O counting for whoever made the call. Also counts Redis commands per request, and runs both endpoints in-process (Flask's test
client, cProfile) for the CPU a request costs and where it goes. Writes
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

#: The modules of app/jobs/ that submitting a job runs through (app/queueing.py before issue 14),
#: as paths below app/jobs/; app/jobs/contract/ (the pydantic models) is validation's.
_JOBS_MODULES = sorted(
    path.relative_to(ROOT / "app" / "jobs").as_posix()
    for path in (ROOT / "app" / "jobs").rglob("*.py")
    if not path.relative_to(ROOT / "app" / "jobs").as_posix().startswith("contract/")
)
#: Who a sample's time belongs to: the innermost frame that matches one of these, walking
#: out from where the sample was taken (so Redis I/O counts for whoever made the call, and
#: the limiter's decorator around the view does not claim the view's own work).
OWNERS = [
    ("rate limiter (flask_limiter, limits)", ("(limits/", "(flask_limiter/", "(app/web/ratelimit.py")),
    ("logging (JSON lines)", ("(logging/", "(pythonjsonlogger/", "(app/logs.py")),
    ("metrics (prometheus_client)", ("(prometheus_client/", "(app/web/metrics.py")),
    # app/jobs/ but its schemas (validation, below): JobQueue, the job, idempotency, keys, counters...
    ("submit: queueing, RQ, idempotency", tuple(f"(app/jobs/{name}" for name in _JOBS_MODULES) + ("(rq/",)),
    (
        "validation, auth, API (pydantic, app/web/jobs.py)",
        ("(pydantic", "(app/web/jobs.py", "(app/web/parsing.py", "(app/web/context.py", "(app/web/health.py",
         "(app/web/auth.py", "(app/jobs/contract/", "(app/web/problems.py"),
    ),  # fmt: skip
    ("Flask / Werkzeug", ("(flask/", "(werkzeug/", "(app/__init__.py", "(app/web/__init__.py", "(app/web/headers.py")),
    ("gunicorn and waiting threads", ("(gunicorn/", "(selectors.py", "(threading.py", "(concurrent/", "(queue.py")),
]
_IDLE = "gunicorn and waiting threads"
_SKIP = ("(redis/", "(json/", "(socket.py", "(uuid.py", "(hmac.py", "(<frozen", "(contextlib.py", "(functools.py")


def owner_shares(raw: Path) -> dict:
    """Per owner (see OWNERS), its share of the samples that were not gunicorn waiting for
    work, and the share of those spent in Redis I/O."""
    totals = {name: 0 for name, _ in OWNERS}
    totals["other"] = 0
    redis_io = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")[1:]
        owner = "other"
        for frame in reversed(frames):
            if any(skip in frame for skip in _SKIP):
                continue
            owner = next((name for name, needles in OWNERS if any(needle in frame for needle in needles)), "other")
            break
        totals[owner] += n
        if owner != _IDLE and frames and "(redis/" in frames[-1]:
            redis_io += n
    busy = sum(n for name, n in totals.items() if name != _IDLE)
    if not busy:
        return {}
    shares = {name: round(100 * n / busy, 1) for name, n in totals.items() if name != _IDLE}
    shares["(of these: waiting in Redis I/O)"] = round(100 * redis_io / busy, 1)
    return shares


def in_process(requests: int = 1000) -> dict:
    """The same two endpoints through Flask's test client in this process (no gunicorn, no
    load generator), against the benchmark's Valkey: CPU per request, and cProfile's self
    time per owner for ``POST /jobs``."""
    import cProfile
    import os
    import pstats
    import secrets

    from app import create_app, logs
    from app.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    logs.configure("INFO", process="web")
    import logging

    logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # noqa: SIM115 - formatted, then dropped
    client = create_app(settings).test_client()
    keys = [key.secret.get_secret_value() for key in settings.api_keys if key.role == "client"]
    body = json.dumps({"type": "count_words", "text": "the quick brown fox jumps over the lazy dog"})

    def post(i: int) -> None:
        headers = {"Authorization": f"Bearer {keys[i % len(keys)]}", "Content-Type": "application/json"}
        response = client.post("/jobs", data=body, headers={**headers, "Idempotency-Key": secrets.token_hex(8)})
        assert response.status_code == 202, response.data

    for i in range(100):
        post(i)
    out: dict = {}
    for name, call in (("submit", post), ("healthz", lambda i: client.get("/healthz"))):
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(requests):
            call(i)
        out[f"{name}_wall_ms"] = round((time.perf_counter() - started) * 1000 / requests, 3)
        out[f"{name}_cpu_ms"] = round((time.process_time() - cpu) * 1000 / requests, 3)
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    for i in range(requests):
        post(i)
    profile.disable()
    stats = pstats.Stats(profile).stats

    def inclusive(suffix: str, function: str) -> float:
        # the largest entry: a wrapper and the function it wraps may share a name
        return max((ct for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.items() if filename.endswith(suffix) and func == function), default=0.0)

    whole = inclusive("flask/app.py", "wsgi_app")
    parts = {
        "rate limiter: the two limit checks (flask_limiter)": inclusive("flask_limiter/_extension.py", "_check_request_limit"),
        "rate limiter: RateLimit headers (window read)": inclusive("app/web/ratelimit.py", "_rate_limit_headers"),
        "API key matching (auth._match, all calls)": inclusive("app/web/auth.py", "_match"),
        "idempotency claim (SET NX)": inclusive("app/jobs/submitting/idempotency.py", "claim_idempotency_key"),
        "JobQueue.submit (depth check, RQ job, transaction)": inclusive("app/jobs/store.py", "submit"),
        "validation (pydantic request model)": inclusive("pydantic/type_adapter.py", "validate_python"),
        "JSON log lines (Logger.info)": inclusive("logging/__init__.py", "info"),
        "metrics (after_request counters)": inclusive("app/web/metrics.py", "_count"),
    }
    out["submit_inclusive_pct"] = {label: round(100 * t / whole, 1) for label, t in parts.items()} if whole else {}
    return out


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
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-r", "100", "-f", "raw", "-o", str(tmp / f"{name}-{pid}.txt"), "--pid", str(pid)],
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
                "owners_pct": owner_shares(merged),
                "py_spy": _hot_frames(merged, top=30),
            }
            print(f"{name}: {load.rps:.0f} req/s, p50 {load.p50_ms:.2f} ms; Redis commands/request {sum(commands.values()):.1f}")
            for bucket, pct in results[name]["owners_pct"].items():
                print(f"    {bucket:42s} {pct:5.1f} %")
        results["in_process"] = in_process()
        print(f"in process: POST /jobs {results['in_process']['submit_cpu_ms']} ms CPU, GET /healthz {results['in_process']['healthz_cpu_ms']} ms CPU")
        for owner, pct in results["in_process"]["submit_inclusive_pct"].items():
            print(f"    {owner:46s} {pct:5.1f} %")
    finally:
        bench.close()
    results["load_after"] = [round(x, 2) for x in __import__("os").getloadavg()]
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
