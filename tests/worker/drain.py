"""No-op jobs drained per second by one fast worker, printed (a figure, not a test).

``python -m tests.worker.drain [N] [CODE_ROOT]``: a private Valkey (``appendfsync always``, as
``make run``), N no-op jobs submitted, then one ``worker.py --burst`` of CODE_ROOT (default:
this checkout; another checkout compares versions) timed until it leaves, with the commands
Redis counted (``INFO commandstats``: a script's and a transaction's own commands count too).
The time includes the worker's start-up: run it with N=1 to see that part.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    root = Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    import redis
    from rq.registry import FinishedJobRegistry

    from app.dev.stack import valkey_command

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = subprocess.Popen(valkey_command(port, Path(tempfile.mkdtemp(prefix="drain-"))), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    env = {**os.environ, "REDIS_URL": url, "WORKER_CLASS": "fast", "LOG_LEVEL": "WARNING", "JOB_HEARTBEAT_SECONDS": "60",
           "ENABLE_DIAGNOSTIC_TASKS": "1", "PYTHONPATH": str(root)}  # fmt: skip
    os.environ.update(env)
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.RedisError:
                time.sleep(0.05)
        from app.jobs import JobQueue, catalog
        from app.jobs.engine.queue import register_queues
        from app.settings import get_settings

        settings = get_settings()
        queue = JobQueue(client, settings)
        spec = catalog.request_adapter(True).validate_python({"type": "noop"}, context={"settings": settings})
        for _ in range(jobs):
            queue.submit(spec, owner=None)
        register_queues(client)

        def calls() -> dict[str, int]:
            return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}

        before = calls()
        started = time.perf_counter()
        worker = subprocess.run([sys.executable, str(root / "worker.py"), "--burst"], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # fmt: skip
        seconds = time.perf_counter() - started
        delta = {name: count - before.get(name, 0) for name, count in calls().items()}
        finished = sum(FinishedJobRegistry(name, connection=client).count for name in ("high", "default", "low"))
        print(
            f"exit {worker.returncode}: {finished}/{jobs} finished in {seconds:.2f} s, {jobs / seconds:.0f} jobs/s; per job: "
            f"EXEC {delta.get('exec', 0) / jobs:.2f}, EVAL/EVALSHA {(delta.get('eval', 0) + delta.get('evalsha', 0)) / jobs:.2f}, "
            f"commands {sum(delta.values()) / jobs:.1f}"
        )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
