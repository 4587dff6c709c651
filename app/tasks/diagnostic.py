"""Diagnostic tasks, served only with ``ENABLE_DIAGNOSTIC_TASKS=1``: for tests and benchmarks."""

from __future__ import annotations

import time

from .words import ProgressCallback


def noop() -> dict:
    """Does nothing; for benchmarks of the queue itself."""
    return {}


def fail(message: str) -> dict:
    """Raises; for tests of failures and retries."""
    raise RuntimeError(message)


def sleep(seconds: float, progress: ProgressCallback | None = None) -> dict:
    """Waits; for tests of timeouts, cancel and worker shutdown. With ``progress``, reports
    milliseconds slept of ``seconds`` every tenth of a second: a job with live progress that
    takes as long as a test (or a person watching the page) needs."""
    if progress is None or seconds <= 0:
        time.sleep(seconds)
        return {"slept": seconds}
    total = max(1, round(seconds * 1000))
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(0.1, seconds - elapsed))
        progress(min(total, round((time.monotonic() - started) * 1000)), total)
    return {"slept": seconds}
