"""send_email (app/tasks/mail.py): called directly against the test SMTP server, and end to end
through the API and a worker."""

from __future__ import annotations

import smtplib

import pytest

from app.settings import SmtpTarget
from app.tasks import mail

from ..conftest import free_port
from ..smtp_holding import start_holding_smtp


def test_send_email_delivers_with_message_id(smtp):
    target = SmtpTarget.parse(smtp.url)
    receipt = mail.send_email(
        "bob@example.com", "Hello", "Body", smtp=target, mail_from="app@example.test", timeout=5, message_id="<id-1@t>"
    )
    assert receipt["message_id"] == "<id-1@t>"
    assert receipt["accepted"] == ["bob@example.com"]
    assert smtp.messages[-1]["Message-ID"] == "<id-1@t>"
    assert smtp.messages[-1]["Subject"] == "Hello"


def test_the_message_is_in_doubt_only_from_after_the_servers_354():
    """Issue 25: ``on_sending`` (where send_email_job claims the message as in doubt) runs once the
    server has answered DATA and been given the message, not before DATA: an attempt that dies
    before then has provably not sent it, and its retry may."""
    controller, sink, url = start_holding_smtp("none")
    try:
        seen: list[tuple[int, int]] = []
        receipt = mail.send_email(
            "bob@example.com", "Hi", "line one\n.starts with a dot\n", smtp=SmtpTarget.parse(url),
            mail_from="a@example.test", timeout=5, on_sending=lambda: seen.append((sink.data_commands, len(sink.messages))),
        )  # fmt: skip
        assert seen == [(1, 0)]  # DATA answered, the message not yet taken
        assert len(sink.messages) == 1
        assert sink.messages[0]["Message-ID"] == receipt["message_id"]
        assert sink.messages[0].get_content().replace("\r\n", "\n") == "line one\n.starts with a dot\n"
    finally:
        sink.gate.set()
        controller.stop()


def test_a_claim_refused_before_the_end_of_the_message_delivers_nothing():
    """When ``on_sending`` raises (another attempt holds the claim), the connection is closed
    without the message's end and without QUIT, which the server would read as more message:
    the server drops it, and a later send is the only message delivered."""
    controller, sink, url = start_holding_smtp("none")
    target = SmtpTarget.parse(url)
    try:

        def refuse() -> None:
            raise mail.DeliveryUnknown("claimed by another attempt")

        with pytest.raises(mail.DeliveryUnknown):
            mail.send_email("bob@example.com", "", "first", smtp=target, mail_from="a@example.test", timeout=5,
                            on_sending=refuse)  # fmt: skip
        assert sink.data_commands == 1
        mail.send_email("bob@example.com", "", "second", smtp=target, mail_from="a@example.test", timeout=5)
        assert [m.get_content().strip() for m in sink.messages] == ["second"]
    finally:
        sink.gate.set()
        controller.stop()


def test_send_email_to_a_closed_port_raises_smtp_error():
    target = SmtpTarget.parse(f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(mail.SmtpError, match="could not deliver"):
        mail.send_email("bob@example.com", "", "x", smtp=target, mail_from="a@example.test", timeout=2)


def test_send_email_login_failure_does_not_reveal_the_password(monkeypatch):
    target = SmtpTarget.parse("smtp://user:Sup3rS3cret@127.0.0.1:2525")

    class RefusingSMTP:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def ehlo(self):
            return (250, b"ok")

        def has_extn(self, name):
            return False

        def login(self, user, password):
            raise smtplib.SMTPAuthenticationError(535, f"bad credentials {user}:{password}".encode())

    monkeypatch.setattr(mail.smtplib, "SMTP", RefusingSMTP)
    with pytest.raises(mail.SmtpError) as caught:
        mail.send_email("bob@example.com", "", "x", smtp=target, mail_from="a@example.test", timeout=2)
    assert "Sup3rS3cret" not in str(caught.value)
    assert "535" in str(caught.value)


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_email_arrives_at_the_smtp_server(stack, smtp):
    response = stack.post(
        {"type": "send_email", "to": "Alice@Example.com", "subject": "Your report", "body": "It is ready.\nBye."}
    )
    assert response.status_code == 202, response.text
    body = stack.wait_for(response.json()["id"])
    assert body["status"] == "finished", body
    result = body["result"]
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["From"] == "offload@example.test"
    assert message["To"] == "Alice@example.com"
    assert message["Subject"] == "Your report"
    assert message.get_content().replace("\r\n", "\n").strip() == "It is ready.\nBye."
    assert message["Message-ID"] == result["message_id"]
    assert result["accepted"] == ["Alice@example.com"]
    assert smtp.envelopes[0] == ("offload@example.test", ["Alice@example.com"])


@pytest.mark.integration
@pytest.mark.deployments("default", "forking", "cluster")
def test_smtp_refusal_fails_the_job_with_an_smtp_error(stack, smtp):
    smtp.fail_with = "554 5.7.1 rejected for testing"
    job_id = stack.post({"type": "send_email", "to": "a@example.com", "body": "x", "max_retries": 0}).json()["id"]
    body = stack.wait_for(job_id)
    assert body["status"] == "failed"
    assert body["error"]["type"] == "SmtpError"
    assert "554" in body["error"]["message"]
