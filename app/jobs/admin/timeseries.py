"""Per-minute counts per queue for the charts on the page: jobs enqueued, finished and failed,
and the run time of the ones that ended, over the last two hours.

The counters in :data:`~app.jobs.keys.METRICS_KEY` are totals since the start, which Prometheus
turns into rates but a page cannot. Here each minute has a hash of its own
(:func:`~app.jobs.keys.timeseries_key`, expiring after :data:`RETENTION_SECONDS`), incremented by the commands
:func:`count` adds to the caller's pipeline: the submit transaction and the worker's outcome
transaction already exist, so the series cost no round trip of their own. Reading an hour is
one pipeline of 60 ``HGETALL``.

Minutes are those of the clock of the process that counts (web for ``enqueued``, worker for
the rest): hosts whose clocks disagree put a job's events in neighbouring minutes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import redis

from ..keys import timeseries_key

BUCKET_SECONDS = 60
#: How long a minute's hash is kept: the longest window :func:`read` serves, and some slack.
RETENTION_SECONDS = 2 * 3600
EVENTS = ("enqueued", "finished", "failed")


def minute_of(at: float) -> int:
    """The minute (Unix seconds // 60) a moment falls in."""
    return int(at // BUCKET_SECONDS)


def count(
    pipe: redis.client.Pipeline,
    event: str,
    queue: str,
    *,
    at: float | None = None,
    seconds: float | None = None,
    amount: int = 1,
) -> None:
    """Add ``amount`` ``event`` on ``queue`` (and a run time, if given) to its minute, in ``pipe``."""
    key = timeseries_key(minute_of(time.time() if at is None else at))
    pipe.hincrby(key, f"{event}:{queue}", amount)
    if seconds is not None:
        pipe.hincrbyfloat(key, f"runtime_sum:{queue}", seconds)
        pipe.hincrby(key, f"runtime_count:{queue}", 1)
    pipe.expire(key, RETENTION_SECONDS)


def window(now: float, minutes: int) -> list[int]:
    """The ``minutes`` minutes ending with the current one, oldest first."""
    last = minute_of(now)
    return list(range(last - minutes + 1, last + 1))


def series(minutes: list[int], buckets: list[dict], queues: list[str]) -> dict:
    """The answer of ``GET /stats/timeseries`` from each minute's hash (bytes or str fields)."""
    per_queue: dict[str, dict[str, list]] = {
        queue: {**{event: [] for event in EVENTS}, "mean_run_seconds": []} for queue in queues
    }
    for bucket in buckets:
        fields = {_text(name): float(value) for name, value in bucket.items()}
        for queue, lines in per_queue.items():
            for event in EVENTS:
                lines[event].append(int(fields.get(f"{event}:{queue}", 0)))
            runs = fields.get(f"runtime_count:{queue}", 0)
            total = fields.get(f"runtime_sum:{queue}", 0.0)
            lines["mean_run_seconds"].append(round(total / runs, 6) if runs else None)
    return {
        "minutes": len(minutes),
        "step_seconds": BUCKET_SECONDS,
        "times": [_iso(minute * BUCKET_SECONDS) for minute in minutes],
        "queues": per_queue,
    }


def read(connection: redis.Redis, queues: list[str], minutes: int, now: float | None = None) -> dict:
    """The last ``minutes`` minutes (the API takes at most
    :data:`~app.jobs.contract.schemas.MAX_TIMESERIES_MINUTES`) per queue, in one round trip."""
    span = window(time.time() if now is None else now, minutes)
    with connection.pipeline(transaction=False) as pipe:
        for minute in span:
            pipe.hgetall(timeseries_key(minute))
        buckets = pipe.execute()
    return series(span, buckets, queues)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
