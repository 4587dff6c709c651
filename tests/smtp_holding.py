"""A real SMTP server (aiosmtpd, the dev sink's handler) that can hold its answer at either end of
the message transfer, for the at-most-once tests of ``send_email``:

- ``hold="354"``: the ``DATA`` command is held before the server's ``354``: no byte of the
  message can have been sent, so an attempt killed there has provably not delivered it;
- ``hold="end"``: the whole message, its end included, has arrived and the server's answer
  (``250``) is held: an attempt killed there may or may not have delivered it.

It counts ``DATA`` commands (``data_commands``) so a test can tell a retry that started another
transfer from one that did not."""

from __future__ import annotations

import asyncio
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from app.dev.smtp_sink import MailSink

from .conftest import free_port


class HoldingSink(MailSink):
    def __init__(self, hold: str) -> None:
        super().__init__()
        assert hold in ("354", "end", "none")
        self.hold = hold
        self.gate = threading.Event()  # set: answer everything from now on
        self.holding = threading.Event()  # set: a DATA command or a message is being held
        self.data_commands = 0

    async def _held(self) -> None:
        if not self.gate.is_set():
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 30)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - the message and its end have arrived
        if self.hold == "end":
            await self._held()
        return await super().handle_DATA(server, session, envelope)


class _HoldingSMTP(SMTP):
    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        sink: HoldingSink = self.event_handler
        sink.data_commands += 1
        if sink.hold == "354":
            await sink._held()
        await super().smtp_DATA(arg)


class _HoldingController(Controller):
    def factory(self) -> SMTP:
        return _HoldingSMTP(self.handler, **self.SMTP_kwargs)


def start_holding_smtp(hold: str) -> tuple[Controller, HoldingSink, str]:
    """Start the server on a free loopback port: ``(controller, sink, smtp_url)``; stop with
    ``sink.gate.set(); controller.stop()``."""
    sink = HoldingSink(hold)
    port = free_port()
    controller = _HoldingController(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    return controller, sink, f"smtp://127.0.0.1:{port}"
