"""The soak: ``make soak``.

5,000 jobs of both types through the HTTP API with 3 workers; one worker SIGKILLed every
few seconds (and started again, as supervisord or compose would) and the Redis server
SIGKILLed and restarted on its AOF once. Afterwards a ledger checks that every accepted
job is terminal, none is lost and no email was delivered twice. Prints the figures and
writes them to ``bench/results/soak.json``. Exits non-zero when a job was lost or duplicated.

Clients retry refused submissions (503 while Redis is down) with the same Idempotency-Key,
as a careful client does, so a retry never makes a second job.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.dev.smtp_sink import start as start_smtp  # noqa: E402
from tests.conftest import Stack, ValkeyProcess, free_port  # noqa: E402


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below stops every process
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=4.0, help="seconds between worker kills")
    parser.add_argument("--drain-timeout", type=float, default=1800, help="seconds to wait for every job to end")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="offload-soak-"))
    valkey = ValkeyProcess(tmp / "valkey")
    valkey.start()
    smtp_port = free_port()
    controller, sink = start_smtp("127.0.0.1", smtp_port, None)
    stack = Stack(
        valkey,
        f"smtp://127.0.0.1:{smtp_port}",
        tmp,
        {
            "DEFAULT_MAX_RETRIES": "5",
            "RETRY_BACKOFF_BASE_SECONDS": "1",
            "RETRY_BACKOFF_MAX_SECONDS": "4",
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        return _soak(args, valkey, sink, stack)
    finally:
        stack.stop()
        controller.stop()
        valkey.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _soak(args: argparse.Namespace, valkey: ValkeyProcess, sink, stack: Stack) -> int:
    stack.start_web()
    for _ in range(args.workers):
        stack.start_worker()

    accepted: dict[int, str] = {}
    refusals = Counter()
    kills = 0
    redis_restarts = 0
    finished = threading.Event()
    started = time.monotonic()

    def submit(n: int) -> None:
        if n % 2:
            body = {"type": "count_words", "text": f"soak job {n} " + "word " * (n % 50)}
        else:
            body = {"type": "send_email", "to": f"user{n}@example.com", "subject": f"soak {n}", "body": "hello"}
        headers = {"Idempotency-Key": f"soak-{n}"}
        session = requests.Session()
        for _ in range(600):
            try:
                response = session.post(f"{stack.base}/jobs", json=body, headers=headers, timeout=10)
            except requests.RequestException:
                refusals["connection"] += 1
                time.sleep(0.2)
                continue
            if response.status_code == 202:
                accepted[n] = response.json()["id"]
                return
            refusals[response.status_code] += 1
            time.sleep(float(response.headers.get("Retry-After", "1")) / 5)
        raise RuntimeError(f"job {n} was never accepted")

    def chaos() -> None:
        nonlocal kills, redis_restarts
        while not finished.wait(args.kill_every):
            victim = random.randrange(args.workers)
            if stack.workers[victim].poll() is None:
                stack.workers[victim].kill()
                stack.workers[victim].wait()
                kills += 1
            replacement = stack.start_worker()  # as supervisord or compose would
            stack.workers.pop()
            stack.workers[victim] = replacement
            if redis_restarts == 0 and len(accepted) > args.jobs // 2:
                valkey.kill()
                time.sleep(1.5)
                valkey.start()
                redis_restarts += 1

    chaos_thread = threading.Thread(target=chaos, daemon=True)
    chaos_thread.start()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(submit, range(args.jobs)))
    submitted_in = time.monotonic() - started

    statuses: Counter = Counter()
    deadline = time.monotonic() + args.drain_timeout
    final: dict[str, dict] = {}
    session = requests.Session()

    def check(job_id: str) -> None:
        try:
            response = session.get(f"{stack.base}/jobs/{job_id}", timeout=10)
        except requests.RequestException:
            return
        if response.status_code == 200 and response.json()["status"] in ("finished", "failed", "canceled", "stopped"):
            final[job_id] = response.json()
        elif response.status_code == 404:
            final[job_id] = {"status": "lost"}

    while time.monotonic() < deadline:
        remaining = [job_id for job_id in accepted.values() if job_id not in final]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(check, remaining))
        print(f"[{time.monotonic() - started:6.0f}s] terminal {len(final)}/{len(accepted)}, kills {kills}", flush=True)
        if len(final) == len(accepted):
            break
        time.sleep(2)
    elapsed = time.monotonic() - started
    finished.set()
    chaos_thread.join(timeout=args.kill_every * 3)

    for body in final.values():
        statuses[body["status"]] += 1
    not_terminal = len(accepted) - len(final)
    subjects = Counter(message["Subject"] for message in sink.messages)
    duplicated = sum(count - 1 for count in subjects.values() if count > 1)
    emails_expected = sum(1 for n in accepted if n % 2 == 0)
    emails_finished = sum(
        1 for n, job_id in accepted.items() if n % 2 == 0 and final.get(job_id, {}).get("status") == "finished"
    )
    attempts = Counter(body.get("attempts", 0) for body in final.values())
    failures = Counter((body.get("error") or {}).get("type", "?") for body in final.values() if body["status"] == "failed")
    figures = {
        "jobs_submitted": args.jobs,
        "jobs_accepted": len(accepted),
        "workers": args.workers,
        "worker_kills": kills,
        "redis_restarts": redis_restarts,
        "refused_submissions": dict(refusals),
        "statuses": dict(statuses),
        "lost": statuses.get("lost", 0) + not_terminal,
        "emails_expected": emails_expected,
        "emails_finished": emails_finished,
        "emails_delivered": len(sink.messages),
        "emails_duplicated": duplicated,
        "emails_missing": max(0, emails_finished - len(subjects)),
        "failures_by_error": dict(failures),
        "attempts_histogram": dict(sorted(attempts.items())),
        "submit_seconds": round(submitted_in, 1),
        "total_seconds": round(elapsed, 1),
    }
    print(json.dumps(figures, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(figures, indent=2) + "\n")

    # A send_email whose worker died between its message's end and the SMTP server's answer fails as
    # DeliveryUnknown (at most once): a clear terminal state, counted above. Any other failure, a
    # loss or a duplicate fails the soak.
    unexplained = sum(count for kind, count in failures.items() if kind != "DeliveryUnknown")
    ok = figures["lost"] == 0 and duplicated == 0 and unexplained == 0
    print("soak:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

