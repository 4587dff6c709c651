"""``send_email``: one message through an SMTP server, with a receipt, at most once per job.

:func:`send_email` is a plain function: where to send, who from and what to do the moment the
server accepts the message (``on_sent``) are passed in. :func:`send_email_job`, the job type, makes
it at most once per job across retries and worker deaths with the job's own state
(``ctx.state``, kept across attempts), as any team's task with a side effect can.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from offload.tasks import Context, PermanentFailure, long_text, task

from ..settings import SmtpTarget
from .fields import NO_HEADER_BREAKS_PATTERN, NO_NUL_PATTERN, check_text, no_header_breaks, reject_lone_surrogates

log = logging.getLogger(__name__)

#: The special-use domains email_validator refuses (RFC 6761 and kin): never deliverable.
SPECIAL_USE_EMAIL_DOMAIN_PATTERN = (
    "[.@]([Aa][Rr][Pp][Aa]|[Ii][Nn][Vv][Aa][Ll][Ii][Dd]|[Ll][Oo][Cc][Aa][Ll]|[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]"
    "|[Oo][Nn][Ii][Oo][Nn]|[Tt][Ee][Ss][Tt])\\.?$"
)


class DeliveryUnknown(PermanentFailure):
    """An earlier attempt died after handing the end of the message to the SMTP server and before
    its answer: it may have been delivered, so it is not sent again (and the job is not retried).
    An attempt that died any earlier (the server never had the whole message) is simply retried."""


class SmtpError(RuntimeError):
    """Delivery failed; the message says which SMTP step failed and why.

    ``in_doubt`` is true when the connection failed after the end of the message was handed over
    and before the server answered, so the server may have accepted it; a server's error reply,
    or a failure before the message's end was sent, is never in doubt.
    """

    def __init__(self, message: str, in_doubt: bool = False) -> None:
        super().__init__(message)
        self.in_doubt = in_doubt


def send_email(
    to: str,
    subject: str,
    body: str,
    *,
    smtp: SmtpTarget,
    mail_from: str,
    timeout: float,
    message_id: str | None = None,
    on_sent: Callable[[dict], None] | None = None,
    on_sending: Callable[[], None] | None = None,
) -> dict:
    """Send one plain-text message through ``smtp`` and return its delivery receipt.

    Uses implicit TLS for ``smtps://``, STARTTLS whenever the server offers it, and logs
    in only when the target carries credentials. ``message_id`` lets the caller make the
    Message-ID stable across retries of the same job. ``on_sent(receipt)`` is called as
    soon as the server has accepted the message, before the connection is closed, so the
    caller can record the send before anything else can go wrong. ``on_sending()`` is called
    once the server has answered ``DATA`` with ``354`` and been given the message, just before
    its end (the line with a lone ``.``) goes: from then until ``on_sent`` the outcome of a crash
    is unknown; before then the server cannot have taken the message. If ``on_sending`` raises,
    the connection is closed without the end, and the server drops what it had.
    """
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain=_domain_of(mail_from))
    message.set_content(body)

    context = ssl.create_default_context()
    transferring = False
    try:
        if smtp.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
        with client:
            client.ehlo()
            if not smtp.implicit_tls and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            if smtp.username:
                password = smtp.password.get_secret_value() if smtp.password else ""
                client.login(smtp.username, password)
            client.mail(mail_from)
            code, reply = client.rcpt(to)
            if code not in (250, 251):
                raise smtplib.SMTPRecipientsRefused({to: (code, reply)})
            # smtplib's data() in steps, so that the message is in doubt only from the moment its
            # end (a line with a lone ".") can reach the server until the server answers.
            code, reply = client.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            try:
                client.send(_dot_stuffed(message.as_bytes(policy=message.policy.clone(linesep="\r\n"))))
                # The server holds at most a message without its end: only the end confirms the
                # transaction (RFC 5321 3.3), so the server drops it when the connection closes, as
                # it does if this process dies anywhere up to here.
                if on_sending is not None:
                    on_sending()
                transferring = True
                client.send(b".\r\n")
            except BaseException:
                # Not QUIT: the server is reading the message and would take the command as more of
                # it. Closed before its end, the message is dropped.
                client.close()
                raise
            code, reply = client.getreply()
            transferring = False  # the server answered: accepted or refused, nothing is in doubt
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
            refused: dict = {}
            receipt = {
                "message_id": message["Message-ID"],
                "accepted": [to] if to not in refused else [],
                "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            }
            if on_sent is not None:
                on_sent(receipt)
    except smtplib.SMTPAuthenticationError as exc:
        # The server's reply can quote what was sent; say only that login failed.
        raise SmtpError(f"SMTP login to {smtp.host}:{smtp.port} was refused ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise SmtpError(f"SMTP server {smtp.host}:{smtp.port} refused the recipient: {_first_reply(exc)}") from None
    except smtplib.SMTPResponseException as exc:
        raise SmtpError(
            f"SMTP server {smtp.host}:{smtp.port} answered {exc.smtp_code}: {_decode(exc.smtp_error)}"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise SmtpError(
            f"could not deliver through SMTP server {smtp.host}:{smtp.port}: {exc}", in_doubt=transferring
        ) from None

    return receipt


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA carries it, without its end (as smtplib's ``data()`` makes it): a line
    that starts with "." gets another, and the last line ends with CRLF."""
    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _first_reply(exc: smtplib.SMTPRecipientsRefused) -> str:
    for code, reply in exc.recipients.values():
        return f"{code} {_decode(reply)}"
    return "no reply"


class SendEmailArgs(BaseModel):
    """Send one plain-text email through the server's SMTP relay, at most once."""

    model_config = ConfigDict(extra="forbid")

    to: StrictStr = Field(
        max_length=320,
        description="One recipient address, not at a special-use domain (.arpa, .invalid, .local, .localhost, "
        ".onion, .test): those are never deliverable.",
        json_schema_extra={"format": "email", "not": {"pattern": SPECIAL_USE_EMAIL_DOMAIN_PATTERN}},
    )
    subject: StrictStr = Field(
        "", max_length=998, description="One line: no CR or LF.", json_schema_extra={"pattern": NO_HEADER_BREAKS_PATTERN}
    )
    body: Annotated[StrictStr, long_text] = Field(description="Plain-text body.", json_schema_extra={"pattern": NO_NUL_PATTERN})

    @field_validator("to")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        no_header_breaks(value)
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise PydanticCustomError("email", "not a valid email address: {reason}", {"reason": str(exc)}) from None

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return reject_lone_surrogates(no_header_breaks(value))

    @field_validator("body")
    @classmethod
    def _body_size(cls, value: str, info: ValidationInfo) -> str:
        if "\x00" in value:
            raise PydanticCustomError("nul_character", "must not contain NUL characters")
        return check_text(value, info)


class SendEmailResult(BaseModel):
    message_id: str
    accepted: list[str]
    sent_at: str


@task(
    "send_email",
    args=SendEmailArgs,
    result=SendEmailResult,
    example={"to": "someone@example.com", "subject": "Your report", "body": "It is ready."},
)
def send_email_job(args: SendEmailArgs, ctx: Context) -> dict:
    """Send at most once per job, across retries and worker deaths.

    The receipt is kept in the job's state the moment the SMTP server accepts the message; an
    attempt that finds it (the previous attempt's worker died after sending) returns it instead
    of sending again. The one window left is between the server's 250 and that write, about a
    millisecond.

    The claim "sending" is taken just before the end of the message goes to the server: an
    attempt that died earlier (before the server's 354, or while the message was going) left no
    claim and its retry sends the message; one that died after it may have been delivered
    (:class:`DeliveryUnknown`)."""
    previous = ctx.state.get("sent")
    if previous is not None:
        ctx.logger.warning("message already sent by an earlier attempt; not sending it again")
        return json.loads(previous)
    if ctx.state.get("sending") is not None:
        # An attempt died after handing the message's end to the server, before its answer: it
        # may have been delivered. Sending again could duplicate it, so say so and stop.
        raise DeliveryUnknown(
            "an earlier attempt died after the SMTP server was given the whole message and before it answered; "
            "it may or may not have been delivered, and it is not sent again to avoid a duplicate"
        )

    def sending() -> None:
        # A claim: if two attempts of one job ever run at once (a worker starved past its
        # heartbeat and was presumed dead), only the first may transfer the message.
        if not ctx.state.claim("sending"):
            raise DeliveryUnknown("another attempt of this job is sending (or died sending) this message; not sending it twice")

    def record(receipt: dict) -> None:
        ctx.state.set("sent", json.dumps(receipt))  # read first by a later attempt: "sending" may stay
        ctx.state.delete("sending")

    settings = ctx.settings
    try:
        return send_email(
            args.to, args.subject, args.body,
            smtp=settings.smtp, mail_from=settings.mail_from, timeout=settings.smtp_timeout,
            message_id=f"<{ctx.job_id}@{settings.mail_from.rpartition('@')[2] or 'offload'}>",
            on_sent=record, on_sending=sending,
        )  # fmt: skip
    except SmtpError as exc:
        if not exc.in_doubt:  # the server refused or never got the message: a retry may send it
            ctx.state.delete("sending")
        raise
