"""Diagnostic tasks, served only with ``ENABLE_DIAGNOSTIC_TASKS=1``: for tests and benchmarks."""

from __future__ import annotations

import time


def noop() -> dict:
    """Does nothing; for benchmarks of the queue itself."""
    return {}


def fail(message: str) -> dict:
    """Raises; for tests of failures and retries."""
    raise RuntimeError(message)


def sleep(seconds: float) -> dict:
    """Waits; for tests of timeouts, cancel and worker shutdown."""
    time.sleep(seconds)
    return {"slept": seconds}
