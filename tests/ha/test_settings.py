"""Sentinel and Cluster settings, and ``make run`` with sentinels: no servers needed
(they run in ``make test``; the scenarios with real servers are ``make test-ha``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app import connections
from app.settings import Settings


def test_sentinel_settings_are_parsed_and_checked(monkeypatch):
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379, sentinel-b:26380,[::1]:26381,sentinel-c")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "jobs")
    monkeypatch.setenv("REDIS_URL", "redis://:primary-secret@ignored:6379/3")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "sentinel-secret")
    settings = Settings()
    assert settings.redis_sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381), ("sentinel-c", 26379))
    assert settings.redis_wait_replicas_effective == 1  # the default under Sentinel
    assert connections.describe(settings) == "redis+sentinel://10.0.0.1:26379,sentinel-b:26380,[::1]:26381,sentinel-c:26379/jobs/3"
    assert "sentinel-secret" not in repr(settings)  # SecretStr

    uri = connections.limiter_storage_uri(settings)
    assert uri == "redis+sentinel://:primary-secret@10.0.0.1:26379,sentinel-b:26380,[::1]:26381,sentinel-c:26379/jobs"
    options = connections.limiter_storage_options(settings)
    assert options["sentinel_kwargs"]["password"] == "sentinel-secret" and options["db"] == 3

    client = connections.redis_client(settings)  # builds without touching the network
    pool = client.connection_pool
    assert pool.service_name == "jobs"
    assert pool.connection_kwargs["password"] == "primary-secret" and pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["socket_timeout"] == settings.redis_socket_timeout
    sentinel_client = pool.sentinel_manager.sentinels[0]
    assert sentinel_client.connection_pool.connection_kwargs["password"] == "sentinel-secret"
    worker = connections.redis_client(settings, for_worker=True)
    assert worker.connection_pool.connection_kwargs["socket_timeout"] is None
    # ...but a sentinel that hangs is still given up on quickly.
    assert worker.connection_pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["socket_timeout"] == 2.0


def test_redis_password_wins_over_the_url_and_sentinels_get_none_of_it(monkeypatch):
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/word")
    settings = Settings()
    options = connections.limiter_storage_options(settings)
    assert options["sentinel_kwargs"]["password"] is None  # limits would send the primary's otherwise
    assert connections.limiter_storage_uri(settings) == "redis+sentinel://:p%40ss%2Fword@s1:26379/mymaster"
    client = connections.redis_client(settings)
    assert client.connection_pool.connection_kwargs["password"] == "p@ss/word"

    plain = Settings(redis_sentinels=(), redis_url="redis://user:old@db:6379/2", redis_password="new")
    client = connections.redis_client(plain)
    assert client.connection_pool.connection_kwargs["password"] == "new"
    assert client.connection_pool.connection_kwargs["username"] == "user"
    assert connections.limiter_storage_uri(plain) == "redis://user:new@db:6379/2"


def test_a_single_server_is_configured_as_before():
    settings = Settings(redis_url="redis://:pw@db:6390/1")
    assert connections.limiter_storage_uri(settings) == "redis://:pw@db:6390/1"
    assert connections.limiter_storage_options(settings) == {"socket_timeout": 2.0}
    assert settings.redis_wait_replicas_effective == 0
    client = connections.redis_client(settings)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("db", 6390, 1, "pw")
    assert kwargs["socket_timeout"] == 2.0 and kwargs["socket_connect_timeout"] == 2.0
    connections.wait_for_replicas(client, settings)  # a no-op without REDIS_WAIT_REPLICAS: no network


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_SENTINELS": "a:1", "REDIS_CLUSTER": "1", "RQ_KEY_PREFIX": "{offload}"}, "exclude each other"),
        ({"REDIS_CLUSTER": "1"}, "hash tag"),
        ({"REDIS_CLUSTER": "1", "RATE_LIMIT_STRATEGY": "sliding-window-counter"}, "out of offload's cluster slot"),
        ({"REDIS_SENTINELS": "host:port"}, "port must be a number"),
        ({"REDIS_SENTINELS": "a:1", "REDIS_URL": "unix:///tmp/redis.sock"}, "must be redis://"),
        ({"REDIS_SENTINELS": "a:1", "REDIS_WAIT_TIMEOUT": "5"}, "shorter than REDIS_SOCKET_TIMEOUT"),
    ],
)
def test_bad_topologies_are_refused_at_start_up(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_the_cluster_check_reads_the_hash_tag_that_rq_uses(monkeypatch):
    import rq.defaults

    from app import settings as settings_module

    monkeypatch.setattr(rq.defaults, "RQ_KEY_PREFIX", "{offload}")
    assert settings_module.redis_hash_tag() == "offload"
    assert Settings(redis_cluster=True).redis_cluster
    for prefix in ("rq", "{}rq", "rq{"):
        monkeypatch.setattr(rq.defaults, "RQ_KEY_PREFIX", prefix)
        assert settings_module.redis_hash_tag() is None


def test_make_run_with_sentinels_uses_them_and_says_so(monkeypatch, tmp_path, capsys):
    """`make run` with REDIS_SENTINELS: no embedded Valkey is started, and the banner names
    the sentinels and the primary's name (not an embedded server's URL)."""
    from app.dev import stack as devstack

    for name in ("REDIS_URL", "REDIS_CLUSTER", "SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "jobs")
    monkeypatch.setenv("REDIS_PASSWORD", "never-printed")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("WEBHOOK_SECRET", "x" * 32)

    def no_exec(path, args):
        raise SystemExit(0)

    monkeypatch.setattr(devstack.os, "execv", no_exec)
    with pytest.raises(SystemExit):
        devstack.main()
    banner = capsys.readouterr().out
    line = next(line for line in banner.splitlines() if line.strip().startswith("Redis"))
    assert "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/jobs/0" in line, banner
    assert "3 sentinels" in line and "embedded" not in banner.split("SMTP")[0].replace("no embedded Valkey", ""), banner
    assert "never-printed" not in banner
    config = (tmp_path / "var" / "supervisord.conf").read_text()
    assert "[program:valkey]" not in config and "[program:worker]" in config
