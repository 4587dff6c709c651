"""``python -m app.dev.jsonlog --process valkey -- valkey-server ...``: run a program whose log
lines are its own plain text, and turn each into one of the stack's JSON lines (issue 25, item 7).

The program is exec'd in this very process, so supervisord's pid, signals and ``ps`` title are
the program's own (``valkey-server 127.0.0.1:6390``); its stdout and stderr go into a pipe read
by a small forked child, which writes the JSON lines and leaves when the program's end closes
the pipe (it ignores the stop signals supervisord sends the whole process group).

Valkey's lines (``pid:role dd Mon yyyy hh:mm:ss.mmm <mark> message``) keep their message and
get their level from the mark (``#`` warning, ``*`` notice as INFO, ``-``/``.`` DEBUG); other
lines are INFO as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time

_VALKEY_LINE = re.compile(
    r"^\d+:(?:[A-Z] \d{2} \w{3} \d{4} [\d:.]+ (?P<mark>[.\-*#])|signal-handler \(\d+\)) (?P<message>.*)$"
)
_LEVELS = {"#": "WARNING", "*": "INFO", "-": "DEBUG", ".": "DEBUG"}


def to_json(line: str, process: str) -> str:
    """One line of the program's output as one JSON line."""
    line = line.rstrip("\r\n")
    match = _VALKEY_LINE.match(line)
    level, message = ("INFO", line) if match is None else (_LEVELS[match["mark"] or "*"], match["message"])
    if match is None and re.search(r"\b(error|fatal|failed|cannot|can't)\b", line, re.IGNORECASE):
        level = "ERROR"
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "level": level,
        "logger": process,
        "message": message,
        "process": process,
    }
    return json.dumps(record, ensure_ascii=False)


def _convert(read_end: int, process: str) -> None:
    """The child: JSON lines until the program's end closes the pipe."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with os.fdopen(read_end, "r", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.strip():
                sys.stdout.write(to_json(line, process) + "\n")
                sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a program, its log lines as JSON lines.")
    parser.add_argument("--process", required=True, help='the "process" and "logger" of its lines')
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(write_end)
        try:
            _convert(read_end, args.process)
        finally:
            os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
