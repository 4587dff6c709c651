"""Signals outside RQ's loop: a stop asked for while no work loop runs (waiting for Redis)."""

from __future__ import annotations

import signal
import time


class StopFlag:
    """SIGTERM/SIGINT handling while no RQ work loop is running (e.g. waiting for Redis)."""

    def __init__(self) -> None:
        self.requested = False
        self.install()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def release(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.requested and time.monotonic() < end:
            time.sleep(0.1)
