"""``python -m bench.logline``: what one JSON log line costs in process (issue 26, item 3).

Two lines, each written through offload's own handler (:func:`app.logs.json_handler`, the one
gunicorn's workers and the job workers use) to ``/dev/null``, so the figure is the logging call
itself (the record, the context filter, the formatter, the encoder, the write), not a terminal:

* ``access``: the line the web writes for every request (``app.web._finish``), with its extra
  fields and the request id in the log context, from inside a Flask request context as in
  production (the line reads ``request.method`` and ``request.path``);
* ``worker``: RQ's "Successfully completed job <id> in <duration>" line a worker writes at the
  end of every job, with the job id in the log context.

Prints microseconds of CPU (``time.process_time``) a line, the median of ``--rounds`` rounds of
``--lines`` lines each (after one round to warm). The target is 50 µs (0.05 ms) a line. No
Redis, no server: it runs anywhere in a second or two.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_US = 50.0


def _handler_to_devnull(process: str) -> tuple[logging.Handler, object]:
    from app import logs

    sink = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    return logs.json_handler(process, sink), sink


def _access_line() -> callable:
    """One call writing the access line as ``app.web`` does, in a request context."""
    from flask import Flask, g, request

    from app import logs
    from app.web import access_line

    app = Flask("bench-logline")
    context = app.test_request_context("/jobs/0b5a1d1e-3b9c-4d7e-8f00-123456789abc", method="GET")
    context.push()
    g.request_id = "3f0c5b0e8f6d4a55b1d0d2b1c9e1a7f2"
    g.started = time.perf_counter()
    logs.request_id_var.set(g.request_id)
    request.view_args = {"job_id": "0b5a1d1e-3b9c-4d7e-8f00-123456789abc"}

    class Answer:
        status_code = 200

    answer = Answer()
    return lambda: access_line(answer)


def _worker_line() -> callable:
    from app import logs

    logs.job_id_var.set("0b5a1d1e-3b9c-4d7e-8f00-123456789abc")
    logs.request_id_var.set("3f0c5b0e8f6d4a55b1d0d2b1c9e1a7f2")
    worker = logging.getLogger("rq.worker")
    return lambda: worker.info("Successfully completed job %s in %s", "0b5a1d1e-3b9c-4d7e-8f00-123456789abc", "0:00:00.001234")


def per_line_us(write: callable, lines: int, rounds: int) -> list[float]:
    """Microseconds of CPU a line, one figure per round (the first round, a warm-up, left out)."""
    figures = []
    for round_ in range(rounds + 1):
        started = time.process_time()
        for _ in range(lines):
            write()
        if round_:
            figures.append((time.process_time() - started) / lines * 1e6)
    return figures


def measure(lines: int = 20_000, rounds: int = 5) -> dict[str, dict]:
    """``{"access": {...}, "worker": {...}}``: each line's median µs and its rounds."""
    results = {}
    for name, process, make in (("access", "web", _access_line), ("worker", "worker", _worker_line)):
        handler, sink = _handler_to_devnull(process)
        root = logging.getLogger()
        saved = root.handlers[:], root.level
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        try:
            figures = per_line_us(make(), lines, rounds)
        finally:
            root.handlers[:], level = saved
            root.setLevel(level)
            sink.close()
        results[name] = {"us_per_line": round(statistics.median(figures), 2), "rounds": [round(f, 2) for f in figures]}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.logline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    from app import logs

    results = measure(args.lines, args.rounds)
    print(f"encoder: {logs.ENCODER}; {args.lines:,} lines x {args.rounds} rounds, median µs of CPU a line (target {TARGET_US:.0f})")
    for name, figure in results.items():
        mark = "met " if figure["us_per_line"] <= TARGET_US else "MISS"
        print(f"  {mark} {name:7s} {figure['us_per_line']:7.2f} µs   rounds {figure['rounds']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
