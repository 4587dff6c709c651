"""Processes, memory and CPU accounting for the harness (Linux /proc, no dependencies)."""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import subprocess
import time
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _die_with_harness() -> None:  # runs in the child before exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(command: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a server process that dies with the harness, its output appended to ``log``."""
    handle = open(log, "ab")  # noqa: SIM115 - the child keeps it; closed with the process
    try:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=_die_with_harness
        )
    finally:
        handle.close()


def stop(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        process.send_signal(sig)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def status_kib(pid: int, field: str) -> int:
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM), 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rss_mib(pid: int) -> float:
    return status_kib(pid, "VmRSS") / 1024


def peak_rss_mib(pid: int) -> float:
    return status_kib(pid, "VmHWM") / 1024


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def start_time(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def youngest_child(pid: int) -> int | None:
    """The child started last: a fast worker's work horse (its scheduler is started first)."""
    kids = children(pid)
    return max(kids, key=start_time) if kids else None


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _proc_cpu_ticks(pid: int, with_children: bool = True) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return utime + stime + ((cutime + cstime) if with_children else 0)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used, its reaped children left out."""
    return _proc_cpu_ticks(pid, with_children=False) / _CLK_TCK


def _system_busy_ticks() -> int:
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[:8])
    return user + nice + system + irq + softirq + steal


class CpuMeter:
    """How busy the machine was, and how much of that was not the benchmark.

    The benchmark's CPU is this process and every live descendant (processes that already
    exited are counted in their parent's reaped-children time). "Foreign" is everything else:
    other test suites on the machine. Both are given in cores (busy seconds per second)."""

    def __init__(self) -> None:
        self.me = os.getpid()
        self.started = self._sample()

    def _sample(self) -> tuple[float, int, int]:
        ours = _proc_cpu_ticks(self.me) + sum(_proc_cpu_ticks(pid) for pid in descendants(self.me))
        return time.monotonic(), _system_busy_ticks(), ours

    def reset(self) -> None:
        self.started = self._sample()

    def read(self) -> dict:
        t0, busy0, ours0 = self.started
        t1, busy1, ours1 = self._sample()
        elapsed = max(t1 - t0, 1e-6)
        busy = (busy1 - busy0) / _CLK_TCK / elapsed
        ours = max(0, ours1 - ours0) / _CLK_TCK / elapsed
        return {"seconds": round(elapsed, 1), "busy_cores": round(busy, 2), "bench_cores": round(min(ours, busy), 2), "foreign_cores": round(max(0.0, busy - ours), 2)}


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_mib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
