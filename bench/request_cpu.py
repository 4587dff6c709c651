"""``python -m bench.request_cpu``: the CPU one request costs the web in process, with each of
the features issue 26 is about switched on and off, and the limiter's Redis traffic.

Flask's test client in this process against a Valkey of its own (``appendfsync always``, as
``make bench``), offload's own app and logging (JSON lines at INFO to ``/dev/null``; WARNING
for the lines "logging off"); API keys on, the default rate limits. For each variant:
``time.process_time`` over ``--requests`` requests after 200 to warm, the median of
``--rounds`` rounds, in ms a request:

* ``GET /healthz`` and ``POST /jobs`` (count_words, an API key, ``Idempotency-Key``), as
  ``make bench``'s intake phase sends them;
* the same with the access line off (``LOG_LEVEL=WARNING``) and with the limiter off.

Also prints, per limited ``POST /jobs``, the round trips to Redis in all (writes to Valkey's
socket: the limits and the job on one server, as ``make run`` keeps them, the windows riding the
submission's script), and, for limits kept on a store of their own, the round trips and commands
the limiter sent there (``INFO commandstats`` of a second Valkey that keeps only the limits).
No figure is judged here; FINDINGS and docs/performance.md quote them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import system  # noqa: E402
from bench.run import free_port  # noqa: E402

BODY = json.dumps({"type": "count_words", "text": "the quick brown fox jumps over the lazy dog"})


def _valkey(directory: Path) -> tuple[subprocess.Popen, str]:
    from app.dev.stack import valkey_command

    port = free_port()
    process = system.spawn(valkey_command(port, directory), cwd=ROOT, env=dict(os.environ), log=directory / "valkey.log")
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            time.sleep(0.05)
    return process, f"redis://127.0.0.1:{port}/0"


def _client(url: str, *, limiter: bool, level: str, limiter_url: str | None = None):  # noqa: ANN202
    from app import create_app, logs
    from app.settings import get_settings

    keys = [secrets.token_urlsafe(24) for _ in range(64)]
    os.environ.update(
        {
            "REDIS_URL": url,
            "API_KEYS": ",".join(f"client{i}:client:{key}" for i, key in enumerate(keys)),
            "RATE_LIMIT_ENABLED": "1" if limiter else "0",
            "LOG_LEVEL": level,
        }
    )
    get_settings.cache_clear()
    settings = get_settings()
    logs.configure(level, process="web", stream=open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - formatted, then dropped
    app = create_app(settings, rate_limit_storage=limiter_url) if limiter_url else create_app(settings)
    return app.test_client(), keys


def _post(client, keys: list[str], i: int) -> None:  # noqa: ANN001
    headers = {"Authorization": f"Bearer {keys[i % len(keys)]}", "Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(8)}
    response = client.post("/jobs", data=BODY, headers=headers)
    if response.status_code != 202:
        raise RuntimeError(f"POST /jobs answered {response.status_code}: {response.data[:300]!r}")


def cpu_ms(variants: dict, requests: int, rounds: int) -> dict[str, tuple[float, list[float], float]]:
    """Each variant's median ms of CPU a request (and of wall time: the Redis round trips, each
    waiting for Valkey's fsync, are in it); the variants take turns, round after round,
    so that a slow moment of a shared machine hits them all. A variant is ``(setup, call)``:
    ``setup()`` switches the features, ``call(i)`` makes request ``i``."""
    for setup, call in variants.values():
        setup()
        for i in range(200):
            call(i)
    figures: dict[str, list[float]] = {name: [] for name in variants}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (setup, call) in variants.items():
            setup()
            started, wall = time.process_time(), time.perf_counter()
            for i in range(requests):
                call(i)
            figures[name].append((time.process_time() - started) * 1000 / requests)
            walls[name].append((time.perf_counter() - wall) * 1000 / requests)
    return {
        name: (round(statistics.median(f), 3), [round(x, 3) for x in f], round(statistics.median(walls[name]), 3))
        for name, f in figures.items()
    }


def _sends(client, keys: list[str], requests: int, port: int | None = None, skip=None) -> int:  # noqa: ANN001
    """Round trips ``requests`` limited ``POST /jobs`` send to Redis (to ``port`` only, if given;
    not those of the connection ``skip``)."""
    import redis

    sends = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):  # noqa: ANN001, ANN202
        if (port is None or self.port == port) and self is not skip:
            sends[0] += 1
        return original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting
    try:
        for i in range(requests):
            _post(client, keys, i)
    finally:
        redis.connection.AbstractConnection.send_packed_command = original
    return sends[0]


def submission_trips(client, keys: list[str], requests: int = 100) -> float:  # noqa: ANN001
    """Round trips to Redis a limited, keyed ``POST /jobs`` costs in all."""
    return _sends(client, keys, requests) / requests


def limiter_traffic(url: str, limiter_url: str, requests: int = 100) -> dict:
    """Round trips and commands the limiter sends a ``POST /jobs``, counted on a Valkey that
    keeps only the limits (the jobs go to the other)."""
    import redis

    client, keys = _client(url, limiter=True, level="INFO", limiter_url=limiter_url)
    port = int(limiter_url.rsplit(":", 1)[1].split("/")[0])
    admin = redis.Redis(port=port, single_connection_client=True)
    for i in range(20):
        _post(client, keys, i)
    admin.config_resetstat()
    sends = [_sends(client, keys, requests, port=port, skip=admin.connection)]
    stats = admin.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): v["calls"] / requests for k, v in stats.items() if k != "cmdstat_config|resetstat"}
    return {"round_trips": sends[0] / requests, "commands_incl_scripts_own": calls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.request_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    from app import logs

    with tempfile.TemporaryDirectory(prefix="offload-request-cpu-") as tmp:
        jobs_dir, limits_dir = Path(tmp, "jobs"), Path(tmp, "limits")
        jobs_dir.mkdir()
        limits_dir.mkdir()
        jobs, url = _valkey(jobs_dir)
        limits, limiter_url = _valkey(limits_dir)
        try:
            from app.web.ratelimit import limiter

            client, keys = _client(url, limiter=True, level="INFO")

            def switch(*, limits: bool, level: str):  # noqa: ANN202
                def setup() -> None:
                    limiter.enabled = limits  # the one Limiter of the process (app/web/ratelimit.py)
                    logging.getLogger().setLevel(level)

                return setup

            healthz = lambda i: client.get("/healthz")  # noqa: E731
            submit = lambda i: _post(client, keys, i)  # noqa: E731
            out = cpu_ms(
                {
                    "GET /healthz": (switch(limits=True, level="INFO"), healthz),
                    "GET /healthz, access line off": (switch(limits=True, level="WARNING"), healthz),
                    "POST /jobs": (switch(limits=True, level="INFO"), submit),
                    "POST /jobs, access line off": (switch(limits=True, level="WARNING"), submit),
                    "POST /jobs, limiter off": (switch(limits=False, level="INFO"), submit),
                },
                args.requests,
                args.rounds,
            )
            limiter.enabled = True
            logging.getLogger().setLevel("INFO")
            in_all = submission_trips(client, keys)
            traffic = limiter_traffic(url, limiter_url)
        finally:
            system.stop(jobs)
            system.stop(limits)
            logging.getLogger().handlers[:] = []
    print(f"CPU a request in process (ms, median of {args.rounds} rounds of {args.requests}; log encoder {logs.ENCODER})")
    print(f"  {'':34s} {'CPU':>7s} {'wall':>7s}")
    for name, (median, rounds, wall) in out.items():
        print(f"  {name:34s} {median:7.3f} {wall:7.3f}   CPU rounds {rounds}")
    print(f"a limited POST /jobs with an Idempotency-Key, limits and jobs on one server: {in_all:.2f} round trips to Redis in all")
    print(f"limits on a store of their own, the limiter's share of a POST /jobs: {traffic['round_trips']:.2f} round trips; commands (a script's own included): "
          + ", ".join(f"{k} {v:.2f}" for k, v in sorted(traffic["commands_incl_scripts_own"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
