"""The ``batch`` phase of ``make bench``: jobs accepted per second through ``POST /jobs/batch``.

The same load generator as the intake phase (wrk, else the asyncio client), the same gunicorn,
API keys, rate limits and ``Idempotency-Key`` on every request, no workers: batches of 100 and of
1,000 small ``count_words`` jobs, and ``POST /jobs`` (one job a request) beside them. The figure is
jobs accepted per second (requests/s times the jobs in each; every answer must be a 202). The
queue is emptied before each measurement, so no batch meets the queue depth limit.

Run alone: ``python -m bench --phases batch`` (add ``--quick`` for one short round).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable

from bench import loadgen

TEXT = "the quick brown fox jumps over the lazy dog"
SIZES = (1, 100, 1000)
CONNECTIONS = 4


def body(size: int) -> tuple[str, str]:
    """The path and body of a submission of ``size`` jobs (1: a plain ``POST /jobs``)."""
    job = {"type": "count_words", "text": TEXT}
    if size == 1:
        return "/jobs", json.dumps(job)
    return "/jobs/batch", json.dumps({"jobs": [{**job, "text": f"{TEXT} {i}"} for i in range(size)]})


def measure(
    base: str,
    tokens: str,
    *,
    rounds: int,
    seconds: float,
    use_wrk: bool,
    flush: Callable[[], None],
    log: Callable[[str], None],
) -> dict:
    """Jobs/s accepted for each submission size, the median of ``rounds`` (sizes take turns)."""
    runs: dict[int, list[loadgen.LoadResult]] = {size: [] for size in SIZES}
    for size in SIZES:  # warm the server's processes and the limiter's keys for every path
        flush()
        path, payload = body(size)
        loadgen.run_load(base, "POST", path, seconds=1, connections=CONNECTIONS, body=payload, token=tokens, use_wrk=use_wrk)
    for r in range(rounds):
        for size in SIZES[r % len(SIZES) :] + SIZES[: r % len(SIZES)]:
            flush()
            path, payload = body(size)
            result = loadgen.run_load(
                base, "POST", path, seconds=seconds, connections=CONNECTIONS, body=payload, token=tokens, use_wrk=use_wrk
            )
            runs[size].append(result)
            log(
                f"  batch of {size}: {result.rps * size:,.0f} jobs/s ({result.rps:.1f} req/s, p50 {result.p50_ms:.0f} ms, "
                f"non-2xx {result.non_2xx})"
            )
    flush()
    out: dict = {"tool": runs[SIZES[0]][0].tool, "connections": CONNECTIONS, "seconds_each": seconds}
    for size, results in runs.items():
        out[str(size)] = {
            "jobs_per_s": round(statistics.median(r.rps * size for r in results), 1),
            "requests_per_s": round(statistics.median(r.rps for r in results), 2),
            "p50_ms": round(statistics.median(r.p50_ms for r in results), 1),
            "p99_ms": round(statistics.median(r.p99_ms for r in results), 1),
            "non_2xx": sum(r.non_2xx for r in results),
            "errors": sum(r.errors for r in results),
            "rounds": [r.as_dict() for r in results],
        }
    single = out["1"]["jobs_per_s"]
    out["speedup"] = {str(size): round(out[str(size)]["jobs_per_s"] / single, 1) if single else None for size in SIZES[1:]}
    return out


def table_lines(batch: dict | None) -> list[str]:
    """The BATCH part of the benchmark's table."""
    if not batch:
        return []
    lines = [
        f"BATCH SUBMIT (jobs accepted per second; {batch['tool']}, {batch['connections']} connections, "
        f"{batch['seconds_each']} s a round, median; auth, limits, Idempotency-Key on)",
        f"  {'':44s} {'jobs/s':>9s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s}",
    ]
    for size in SIZES:
        d = batch.get(str(size))
        if d:
            label = "POST /jobs (1 job a request)" if size == 1 else f"POST /jobs/batch ({size:,} jobs a request)"
            lines.append(
                f"  {label:44s} {d['jobs_per_s']:>9,.0f} {d['requests_per_s']:>8,.1f} {d['p50_ms']:>8,.1f} {d['p99_ms']:>8,.1f} {d['non_2xx']:>8d}"
            )
    lines += ["  batch / single: " + ", ".join(f"{size} jobs {ratio}x" for size, ratio in batch["speedup"].items()), ""]
    return lines
