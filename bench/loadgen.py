"""HTTP load for the intake phase: ``wrk`` (Debian's package) when it is there, else a small
asyncio client with keep-alive connections (slower: it shares the two cores with the server).

Both return the same figures: requests per second, p50 and p99 latency in milliseconds,
and the count of answers that were not 2xx (a rate-limited or failed submission counts).
``token`` may list several API keys, comma-separated: requests take them in turn, sent as
``Authorization: <scheme> <token>`` (``Bearer`` for offload, ``Basic`` for Flower)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

_WRK_SCRIPT = r"""
local method = os.getenv("BENCH_METHOD")
local path = os.getenv("BENCH_PATH")
local body = os.getenv("BENCH_BODY")
local auth = {}
for key in string.gmatch(os.getenv("BENCH_AUTH") or "", "[^,]+") do table.insert(auth, key) end
local scheme = os.getenv("BENCH_AUTH_SCHEME") or "Bearer"
local run = os.getenv("BENCH_RUN")
local threads = {}
local counter = 0
tid = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local headers = {}
  if #auth > 0 then headers["Authorization"] = scheme .. " " .. auth[(counter % #auth) + 1] end
  if method == "POST" then
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter
    return wrk.format("POST", path, headers, body)
  end
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"non_2xx": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
"""


@dataclass
class LoadResult:
    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    extra: dict = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "tool": self.tool,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            **self.extra,
        }


def wrk_path() -> str | None:
    return shutil.which("wrk")


def ensure_wrk(log) -> str | None:  # noqa: ANN001
    """wrk from Debian's packages: installed when missing and we may (root, apt-get)."""
    found = wrk_path()
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    log("installing wrk with apt-get (Debian's package)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300, check=False)
        if wrk_path():
            break
    return wrk_path()


def wrk_version() -> str | None:
    path = wrk_path()
    if not path:
        return None
    out = subprocess.run([path, "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else "wrk"


def run_load(
    base: str,
    method: str,
    path: str,
    *,
    seconds: float,
    connections: int,
    body: str = "",
    token: str = "",
    scheme: str = "Bearer",
    use_wrk: bool = True,
) -> LoadResult:
    options = {"seconds": seconds, "connections": connections, "body": body, "token": token, "scheme": scheme}
    if use_wrk and wrk_path():
        return _run_wrk(base, method, path, **options)
    return asyncio.run(_run_python(base, method, path, **options))


def _run_wrk(base: str, method: str, path: str, *, seconds: float, connections: int, body: str, token: str, scheme: str) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    try:
        env = {
            **os.environ,
            "BENCH_METHOD": method,
            "BENCH_PATH": path,
            "BENCH_BODY": body,
            "BENCH_AUTH": token,
            "BENCH_AUTH_SCHEME": scheme,
            "BENCH_RUN": uuid.uuid4().hex[:12],
        }
        command = [wrk_path() or "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", script.name, base]
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((line for line in out.stdout.splitlines() if line.startswith("BENCH-JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-400:]} {out.stderr[-400:]}")
    data = json.loads(line[len("BENCH-JSON ") :])
    errors = data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"]
    return LoadResult(
        tool="wrk",
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        non_2xx=data["non_2xx"],
        errors=errors,
    )


async def _run_python(
    base: str, method: str, path: str, *, seconds: float, connections: int, body: str, token: str, scheme: str
) -> LoadResult:
    host, _, port = base.removeprefix("http://").rstrip("/").partition(":")
    run = uuid.uuid4().hex[:12]
    latencies: list[float] = []
    statuses = {"non_2xx": 0, "errors": 0}
    deadline = time.perf_counter() + seconds
    payload = body.encode()

    tokens = [t for t in token.split(",") if t]

    def build(n: int, worker: int) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
        if tokens:
            lines.append(f"Authorization: {scheme} {tokens[(n * 131 + worker) % len(tokens)]}")
        if method == "POST":
            lines += ["Content-Type: application/json", f"Idempotency-Key: {run}-{worker}-{n}", f"Content-Length: {len(payload)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + (payload if method == "POST" else b"")

    async def client(worker: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        n = 0
        try:
            while time.perf_counter() < deadline:
                n += 1
                started = time.perf_counter()
                writer.write(build(n, worker))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for header in head.split(b"\r\n"):
                    if header.lower().startswith(b"content-length:"):
                        length = int(header.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not 200 <= status < 300:
                    statuses["non_2xx"] += 1
        except (OSError, asyncio.IncompleteReadError):
            statuses["errors"] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000 if latencies else 0.0

    return LoadResult("python-asyncio", len(latencies), elapsed, pct(50), pct(99), statuses["non_2xx"], statuses["errors"])
