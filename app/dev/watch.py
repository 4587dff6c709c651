"""``make run``'s supervisord event listener: what supervisord does, as the stack's JSON log lines,
and a program that cannot be started stops the whole stack, loudly (issue 25, items 1 and 7).

supervisord itself runs silent (its own log is var/supervisord.log): its plain-text lines, and a
CRIT about running as root, sat between the JSON lines. This listener says the same things as
JSON (``"process": "supervisor"``): a program running, exiting unexpectedly, backing off,
stopped. When one enters FATAL (supervisord gave up starting it: its port taken after the
launcher's check, a bad setting, a crash at start), it writes an ERROR line naming the program
and stops the stack: a stack without its Valkey, its sink or its web server is no stack, and a
server retried forever in a busy log is easy to miss.
"""

from __future__ import annotations

import logging
import os
import sys

from supervisor import childutils

from .. import logs

log = logging.getLogger("offload.dev")

#: supervisord's event listener protocol goes over stdout: log lines go to stderr (its
#: stderr_logfile is the terminal).
_PROTOCOL = sys.stdout


def describe(event: str, fields: dict[str, str]) -> tuple[int, str] | None:
    """The level and line for one PROCESS_STATE event (None: not worth a line)."""
    name = fields.get("processname", "?")
    state = event.removeprefix("PROCESS_STATE_")
    if state == "RUNNING":
        return logging.INFO, f"running: {name} (pid {fields.get('pid', '?')})"
    if state == "EXITED" and fields.get("expected") == "0":
        return logging.WARNING, f"exited: {name} (pid {fields.get('pid', '?')}, not expected); supervisord starts it again"
    if state == "BACKOFF":
        return logging.WARNING, f"could not start: {name} (try {fields.get('tries', '?')}); its lines above say why"
    if state == "STOPPED":
        return logging.INFO, f"stopped: {name}"
    if state == "FATAL":
        return logging.ERROR, (
            f"gave up: {name} could not be started (its lines above say why: a port in use, a bad setting); "
            "the dev stack is stopping"
        )
    return None


def main() -> None:
    logs.configure(os.environ.get("LOG_LEVEL", "INFO").upper(), process="supervisor", stream=sys.stderr)
    me = os.environ.get("SUPERVISOR_PROCESS_NAME", "watch")
    rpc = childutils.getRPCInterface(os.environ)
    stopping = False
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, _PROTOCOL)
        fields, _ = childutils.eventdata(payload + "\n")
        said = describe(headers.get("eventname", ""), fields)
        if said is not None and fields.get("processname") != me:
            level, line = said
            log.log(level, line)
            if level == logging.ERROR and not stopping:
                stopping = True
                try:
                    rpc.supervisor.shutdown()
                except Exception:  # noqa: BLE001 - supervisord already going away
                    log.exception("could not ask supervisord to stop")
        childutils.listener.ok(_PROTOCOL)


if __name__ == "__main__":
    main()
