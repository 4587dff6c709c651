"""A worker process: ``python worker.py [--burst] [queue ...]``.

Serves the queues given (default: high, default, low, in that order) until SIGTERM.
See :mod:`app.worker` for what it does on shutdown and when Redis goes away.
"""

import argparse

from app.settings import QUEUE_NAMES
from app.worker import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run an offload worker.")
    parser.add_argument("queues", nargs="*", choices=[*QUEUE_NAMES, []], help="queues to serve, in priority order")
    parser.add_argument("--burst", action="store_true", help="quit once the queues are empty")
    args = parser.parse_args()
    run(args.queues or list(QUEUE_NAMES), burst=args.burst)
