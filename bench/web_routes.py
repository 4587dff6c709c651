"""The CPU one request costs in the web process, in process (Flask's test client, no gunicorn, the
rate limiter off, log lines formatted then dropped), against a real Valkey:
``python -m bench.web_routes [--requests N]``.

Measures ``GET /healthz`` (the routing and the app's before/after hooks alone), ``POST /jobs`` (a
``count_words`` submission) and ``GET /jobs/{id}`` (a job resource answered), and how long building
one job resource's JSON takes (the ``JobResource`` model, issue 24 item 5). Prints milliseconds of
CPU per request; the best of three rounds, as the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _valkey(data_dir: Path) -> tuple[subprocess.Popen, str]:
    import redis

    from app.dev.stack import valkey_command
    from tests.conftest import _pings, free_port, wait_until

    port = free_port()
    # No AOF: the figure is the web process's CPU, not the disk's.
    command = [*valkey_command(port, data_dir), "--appendonly", "no", "--save", ""]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    wait_until(lambda: _pings(client), what="Valkey")
    return process, url


def _cpu_ms(call, requests: int) -> float:
    best = float("inf")
    for _round in range(3):
        started = time.process_time()
        for i in range(requests):
            call(i)
        best = min(best, (time.process_time() - started) * 1000 / requests)
    return round(best, 4)


def measure(url: str, requests: int) -> dict[str, float]:
    os.environ.update({"REDIS_URL": url, "ALLOW_ANONYMOUS": "1", "RATE_LIMIT_ENABLED": "0", "LOG_LEVEL": "INFO"})
    from app import create_app, logs
    from app.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    logs.configure("INFO", process="web", stream=open(os.devnull, "w"))  # noqa: SIM115
    app = create_app(settings)
    client = app.test_client()
    body = json.dumps({"type": "count_words", "text": "the quick brown fox jumps over the lazy dog"})
    headers = {"Content-Type": "application/json"}
    job_id = client.post("/jobs", data=body, headers=headers).get_json()["id"]

    def submit(_i: int) -> None:
        assert client.post("/jobs", data=body, headers=headers).status_code == 202

    out = {
        "GET /healthz": _cpu_ms(lambda _i: client.get("/healthz"), requests),
        "GET /jobs/{id}": _cpu_ms(lambda _i: client.get(f"/jobs/{job_id}"), requests),
        "POST /jobs": _cpu_ms(submit, requests),
    }
    out.update(_resource_build(app, client.get(f"/jobs/{job_id}").get_json()))
    return out


def _resource_build(app, answered: dict) -> dict[str, float]:
    """The JSON of one job resource, as the web builds it (app.web.answers, when it is there)."""
    try:
        from app.web import answers
    except ImportError:  # before issue 24 item 5: a dict and json.dumps
        from app.jobs import schemas

        resource = {key: value for key, value in answered.items() if key != "links"}
        build = lambda: json.dumps(schemas.with_links(resource))  # noqa: E731
    else:
        resource = {key: value for key, value in answered.items() if key != "links"}
        build = lambda: answers.job_json(resource)  # noqa: E731
    with app.app_context():
        return {"one job resource's JSON": _cpu_ms(lambda _i: build(), 20000)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.getLogger("offload").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as data_dir:
        process, url = _valkey(Path(data_dir))
        try:
            figures = measure(url, args.requests)
        finally:
            process.terminate()
            process.wait(10)
    for name, value in figures.items():
        print(f"{name:28} {value:8.4f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
