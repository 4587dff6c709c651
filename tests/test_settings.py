"""Settings are validated once, from the environment, and never show secrets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings, SmtpTarget


def test_defaults_are_valid():
    settings = Settings()
    assert settings.host == "127.0.0.1" and settings.port == 8000
    assert settings.max_text_bytes == 1024 * 1024
    assert not settings.auth_enabled


def test_api_keys_are_parsed_and_secret(monkeypatch):
    monkeypatch.setenv("API_KEYS", "shop:client:s3cret, ops:admin:t0ps3cret")
    settings = Settings()
    assert [(key.name, key.role) for key in settings.api_keys] == [("shop", "client"), ("ops", "admin")]
    assert "s3cret" not in repr(settings) and "t0ps3cret" not in repr(settings)


@pytest.mark.parametrize("value", ["nocolons", "a:root:x", "a:client:", "a:client:x,a:admin:y"])
def test_bad_api_keys_are_refused_without_echoing_secrets(monkeypatch, value):
    monkeypatch.setenv("API_KEYS", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "API_KEYS" in str(caught.value) or "role" in str(caught.value) or "unique" in str(caught.value)
    if value.endswith(":x"):
        assert ":x" not in str(caught.value).replace("a:root:x", "")


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "0"), ("PORT", "http"), ("SMTP_URL", "http://x"), ("REDIS_URL", "mysql://x"), ("LOG_LEVEL", "loud")],
)
def test_bad_values_stop_start_up(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_smtp_url_parsing_and_redaction():
    target = SmtpTarget.parse("smtps://mailer%40example.com:p%40ss@mail.example.com")
    assert (target.host, target.port, target.implicit_tls) == ("mail.example.com", 465, True)
    assert target.username == "mailer@example.com"
    assert target.password.get_secret_value() == "p@ss"
    assert "p@ss" not in target.redacted() and "p@ss" not in repr(target)
    assert SmtpTarget.parse("smtp://localhost").port == 25


def test_anonymous_bind_to_non_loopback_is_refused(monkeypatch):
    monkeypatch.setenv("HOST", "0.0.0.0")
    with pytest.raises(RuntimeError, match="ALLOW_ANONYMOUS"):
        Settings().check_bind_is_safe()
    monkeypatch.setenv("ALLOW_ANONYMOUS", "1")
    Settings().check_bind_is_safe()
    monkeypatch.delenv("ALLOW_ANONYMOUS")
    monkeypatch.setenv("API_KEYS", "a:client:b")
    Settings().check_bind_is_safe()
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        monkeypatch.setenv("HOST", host)
        monkeypatch.delenv("API_KEYS", raising=False)
        Settings().check_bind_is_safe()


def test_redis_password_is_redacted():
    assert "hunter2" not in Settings(redis_url="redis://:hunter2@db:6379/0").redis_url_redacted()


@pytest.mark.parametrize(("value", "expected"), [("forking", "OffloadWorker"), ("fast", "OffloadFastWorker")])
def test_worker_class_chooses_the_worker(monkeypatch, fake_redis, value, expected):
    from app.worker import build_worker

    monkeypatch.setenv("WORKER_CLASS", value)
    assert type(build_worker(fake_redis, Settings())).__name__ == expected


def test_an_unknown_worker_class_stops_start_up(monkeypatch):
    monkeypatch.setenv("WORKER_CLASS", "threads")
    with pytest.raises(ValidationError, match="worker_class"):
        Settings()
