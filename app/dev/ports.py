"""What ``make run`` checks before it starts anything: that every port it will listen on is free,
and that no other dev stack runs from the same ``var/`` folder (issue 25, item 1).

A second ``make run`` on a machine whose first one still ran used to start anyway: its Valkey and
SMTP sink failed to bind (buried in the log, retried forever by supervisord) while its web server
and workers connected to the first stack's servers on those ports, and worked on its data. Now it
does not start, and says which ports are taken, by which setting, and what to run instead.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Listener:
    """One port the stack listens on."""

    what: str  # "web server"
    setting: str  # "PORT"
    host: str
    port: int


def in_use(host: str, port: int) -> bool:
    """True when a server could not listen on ``host:port`` now (as the stack's servers bind:
    SO_REUSEADDR, so a port left in TIME_WAIT by a stack just stopped counts as free)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False  # the server will say what is wrong with the host
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def busy(listeners: list[Listener]) -> list[tuple[Listener, str]]:
    """The listeners that could not listen, each with why: its port in use, or given twice."""
    taken, seen = [], {}
    for listener in listeners:
        if listener.port in seen:
            taken.append((listener, f"also {seen[listener.port]}'s"))
        elif in_use(listener.host, listener.port):
            taken.append((listener, "in use"))
        seen.setdefault(listener.port, listener.setting)
    return taken


def free_near(listener: Listener, avoid: set[int]) -> int | None:
    """A free port a little above the one asked for, to suggest."""
    for port in range(listener.port + 1, min(listener.port + 200, 65536)):
        if port not in avoid and not in_use(listener.host, port):
            return port
    return None


def refusal(listeners: list[Listener], taken: list[tuple[Listener, str]]) -> str:
    """What the launcher says when a port is taken: which, by which setting, and what to run."""
    lines = ["offload: the dev stack did not start: a port it needs is taken."]
    width = max(len(f"{item.host}:{item.port}") for item, _ in taken)
    for item, why in taken:
        lines.append(f"  {f'{item.host}:{item.port}':<{width}}  {item.what} ({item.setting}): {why}")
    lines.append("Another `make run` (or another program) may listen there: this stack would have used its")
    lines.append("servers and its data. Stop it, or start this stack on free ports, for example:")
    avoid = {item.port for item in listeners}
    suggestion = []
    for item, _ in taken:
        port = free_near(item, avoid)
        if port is not None:
            avoid.add(port)
            suggestion.append(f"{item.setting}={port}")
    if suggestion:
        lines.append(f"  {' '.join(suggestion)} make run")
    return "\n".join(lines)


def running_stack(var: Path) -> int | None:
    """The pid of a dev stack (its supervisord) that runs from ``var``, if one does: two stacks
    on one folder would share Valkey's data files and supervisord's socket."""
    try:
        pid = int((var / "supervisord.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return None
    if not Path("/proc/self").exists():  # not Linux: the pid is alive, or not
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    # The pid of a stack long gone may belong to another process by now.
    if not any(b"supervisord" in part for part in command) or str(var / "supervisord.conf").encode() not in command:
        return None
    return pid
