"""send_email (app/tasks/mail.py): called directly against the test SMTP server, and end to end
through the API and a worker."""

from __future__ import annotations

import smtplib

import pytest

from app.settings import SmtpTarget
from app.tasks import mail

from ..conftest import free_port


def test_send_email_delivers_with_message_id(smtp):
    target = SmtpTarget.parse(smtp.url)
    receipt = mail.send_email(
        "bob@example.com", "Hello", "Body", smtp=target, mail_from="app@example.test", timeout=5, message_id="<id-1@t>"
    )
    assert receipt["message_id"] == "<id-1@t>"
    assert receipt["accepted"] == ["bob@example.com"]
    assert smtp.messages[-1]["Message-ID"] == "<id-1@t>"
    assert smtp.messages[-1]["Subject"] == "Hello"


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
