"""The CPU and the Redis round trips one ``POST /jobs`` costs, in process: ``python -m bench.submit_cpu``.

Flask's test client against a real Valkey (AOF fsynced on every write, as offload runs it), with the
rate limiter and INFO logging off, so what is left is the submission itself: parsing, validation,
the job service and its Redis traffic. Prints CPU ms per request (``time.process_time``), wall ms,
and the Redis commands and round trips per request (counted on the connection pool: one
``send_packed_command`` is one round trip; Valkey's ``INFO commandstats`` for the commands).
Issue 26 item 1 (one round trip a submission) is measured with it, before and after.
``--direct`` calls the job service alone (no Flask), and with ``--idempotency`` claims each key in
the submission's own script (``JobQueue.idempotency``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(requests: int, idempotency: bool, direct: bool = False) -> dict:
    import secrets
    import socket
    import subprocess

    import redis

    from app.dev.stack import valkey_command

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="offload-submit-cpu-"))
    server = subprocess.Popen([*valkey_command(port, data), "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        os.environ.update(
            REDIS_URL=f"redis://127.0.0.1:{port}/0", RATE_LIMIT_ENABLED="0", LOG_LEVEL="WARNING", API_KEYS="",
            MAX_QUEUE_DEPTH="10000000",
        )  # fmt: skip
        from app import create_app
        from app.jobs import JobQueue, catalog
        from app.settings import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        logging.disable(logging.INFO)
        web = create_app(settings)
        test_client = web.test_client()
        service = JobQueue(redis.Redis(port=port), settings)
        body = json.dumps({"type": "count_words", "text": "the quick brown fox jumps over the lazy dog"})
        trips = [0]
        connection_class = redis.connection.Connection
        original = connection_class.send_packed_command

        def counted(self, command, check_health=True):  # noqa: ANN001, ANN202
            trips[0] += 1
            return original(self, command, check_health)

        spec = catalog.request_adapter(settings).validate_python(json.loads(body), context={"settings": settings})

        def post() -> None:
            if direct:  # JobQueue alone, an Idempotency-Key claimed by the submission's script
                key = secrets.token_hex(8)
                claim = service.idempotency(None, key, json.loads(body)) if idempotency else None
                service.submit(spec, owner=None, idempotency=claim)
                return
            headers = {"Content-Type": "application/json"}
            if idempotency:
                headers["Idempotency-Key"] = secrets.token_hex(8)
            response = test_client.post("/jobs", data=body, headers=headers)
            assert response.status_code == 202, response.data

        for _ in range(200):
            post()
        client.config_resetstat()
        connection_class.send_packed_command = counted
        try:
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(requests):
                post()
            cpu_ms = (time.process_time() - cpu) * 1000 / requests
            wall_ms = (time.perf_counter() - started) * 1000 / requests
        finally:
            connection_class.send_packed_command = original
        stats = client.info("commandstats")
        commands = {name.removeprefix("cmdstat_"): value["calls"] / requests for name, value in stats.items()}
        commands = {name: round(calls, 2) for name, calls in sorted(commands.items(), key=lambda kv: -kv[1]) if name not in ("info", "config|resetstat")}
        return {
            "idempotency_key": idempotency,
            "direct": direct,
            "cpu_ms": round(cpu_ms, 3),
            "wall_ms": round(wall_ms, 3),
            "round_trips": round(trips[0] / requests, 2),
            "commands": round(sum(commands.values()), 2),
            "per_command": commands,
        }
    finally:
        server.terminate()
        server.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.submit_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--idempotency", action="store_true", help="send an Idempotency-Key with each request")
    parser.add_argument(
        "--direct", action="store_true",
        help="call JobQueue.submit without Flask (with --idempotency: a key claimed by the submission's script)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    result = measure(args.requests, args.idempotency, args.direct)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
