"""Tasks are plain functions: tested here without Redis or RQ."""

from __future__ import annotations

import random
import smtplib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import tasks
from app.settings import SmtpTarget


@pytest.mark.parametrize(
    "text",
    ["", "one", "  leading and trailing  ", "tabs\tand\nnew\r\nlines", "ünïcödé wörds ok", "a\u3000b\u2003c", "x\n"],
)
def test_count_words_matches_split(text):
    result = tasks.count_words(text)
    assert result == {"words": len(text.split()), "characters": len(text), "lines": len(text.splitlines())}


@given(st.lists(st.sampled_from([*tasks.LINE_BOUNDARIES, "a", "é", "\u3000", " ", "\t", "\r\n"])).map("".join))
def test_count_lines_is_len_splitlines(text):
    assert tasks.count_lines(text) == len(text.splitlines())


@given(st.text())
def test_count_lines_is_len_splitlines_for_any_text(text):
    assert tasks.count_lines(text) == len(text.splitlines())


def test_count_words_chunks_never_split_a_word(monkeypatch):
    monkeypatch.setattr(tasks, "PROGRESS_CHUNK", 7)
    rng = random.Random(4)
    for _ in range(200):
        text = "".join(rng.choice("ab \n\t") for _ in range(rng.randint(0, 80)))
        assert tasks.count_words(text)["words"] == len(text.split()), repr(text)


def test_count_words_reports_progress_up_to_total():
    text = ("word " * 200_000).strip()
    seen = []
    tasks.count_words(text, progress=lambda done, total: seen.append((done, total)))
    assert len(seen) >= 3
    assert all(total == len(text) for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (len(text), len(text))


def test_send_email_delivers_with_message_id(smtp):
    target = SmtpTarget.parse(smtp.url)
    receipt = tasks.send_email(
        "bob@example.com", "Hello", "Body", smtp=target, mail_from="app@example.test", timeout=5, message_id="<id-1@t>"
    )
    assert receipt["message_id"] == "<id-1@t>"
    assert receipt["accepted"] == ["bob@example.com"]
    assert smtp.messages[-1]["Message-ID"] == "<id-1@t>"
    assert smtp.messages[-1]["Subject"] == "Hello"


def test_send_email_to_a_closed_port_raises_smtp_error():
    from tests.conftest import free_port

    target = SmtpTarget.parse(f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(tasks.SmtpError, match="could not deliver"):
        tasks.send_email("bob@example.com", "", "x", smtp=target, mail_from="a@example.test", timeout=2)


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

    monkeypatch.setattr(tasks.smtplib, "SMTP", RefusingSMTP)
    with pytest.raises(tasks.SmtpError) as caught:
        tasks.send_email("bob@example.com", "", "x", smtp=target, mail_from="a@example.test", timeout=2)
    assert "Sup3rS3cret" not in str(caught.value)
    assert "535" in str(caught.value)
