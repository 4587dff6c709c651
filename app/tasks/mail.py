"""``send_email``: one message through an SMTP server, with a receipt.

A plain function: where to send, who from and what to do the moment the server accepts
the message (``on_sent``) are passed in. :func:`app.jobs.runners.send_email_once` wraps it
to send at most once per job across retries and worker deaths.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from ..settings import SmtpTarget


class SmtpError(RuntimeError):
    """Delivery failed; the message says which SMTP step failed and why.

    ``in_doubt`` is true when the connection failed while the message itself was being
    transferred, so the server may have accepted it; a server's error reply is never in doubt.
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
    once the server has accepted sender and recipient, just before the message itself goes:
    from then until ``on_sent`` the outcome of a crash is unknown.
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
            if on_sending is not None:
                on_sending()
            transferring = True
            code, reply = client.data(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
            if code != 250:
                transferring = False  # the server answered: it did not take the message
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


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _first_reply(exc: smtplib.SMTPRecipientsRefused) -> str:
    for code, reply in exc.recipients.values():
        return f"{code} {_decode(reply)}"
    return "no reply"
