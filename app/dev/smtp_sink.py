"""A development SMTP server that delivers nowhere: it keeps every message as a file.

``python -m app.dev.smtp_sink --port 8025 --maildir var/mail`` accepts any message on
loopback and writes it to ``var/mail/<time>-<n>.eml``, so ``send_email`` jobs can be seen
to arrive without a real mail server. The same handler is what the tests run.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import signal
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("offload.smtp_sink")


class MailSink:
    """aiosmtpd handler: keeps messages in memory and, given a folder, as ``.eml`` files."""

    def __init__(self, maildir: Path | None = None) -> None:
        self.maildir = maildir
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.fail_with: str | None = None  # e.g. "451 4.3.0 try later": tests use it to refuse mail
        if maildir is not None:
            maildir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.fail_with:
            return self.fail_with
        data = envelope.original_content or envelope.content
        raw = data if isinstance(data, bytes) else data.encode("utf-8")
        message = message_from_bytes(raw, policy=policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            number = next(self._counter)
        if self.maildir is not None:
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{number:06d}.eml"
            tmp = self.maildir / f".{name}.tmp"
            tmp.write_bytes(raw)
            tmp.rename(self.maildir / name)  # atomic: readers never see half a message
        log.info("kept message %s for %s", message.get("Message-ID"), ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def start(host: str = "127.0.0.1", port: int = 8025, maildir: Path | None = None) -> tuple[Controller, MailSink]:
    """Start the sink in a background thread; returns the controller (call ``.stop()``)."""
    sink = MailSink(maildir)
    controller = Controller(sink, hostname=host, port=port, ready_timeout=10)
    controller.start()
    return controller, sink


def main() -> None:
    parser = argparse.ArgumentParser(description="Keep every message sent to this SMTP server as an .eml file.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--maildir", type=Path, default=Path("var/mail"))
    args = parser.parse_args()

    from .. import logs

    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logs.configure(level, process="smtp")
    # aiosmtpd writes six INFO lines a connection (peer, EHLO, MAIL, RCPT, DATA, close): a third
    # of make run's log. The sink's own line per message is kept; aiosmtpd's only when debugging.
    if level != "DEBUG":
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        controller, _ = start(args.host, args.port, args.maildir)
    except OSError as exc:  # e.g. the port in use: one clear line, not a traceback
        log.error("SMTP sink cannot listen on %s:%d: %s", args.host, args.port, exc.strerror or exc)
        raise SystemExit(1) from None
    log.info("SMTP sink listening on %s:%d, keeping mail in %s", args.host, args.port, args.maildir)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    controller.stop()


if __name__ == "__main__":
    main()

