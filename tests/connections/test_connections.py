"""The Redis server's own settings, read from a real server (app/connections)."""

from __future__ import annotations

import logging

import pytest

from app.connections import check_server_settings

pytestmark = pytest.mark.integration


def test_offloads_own_redis_settings_pass_the_durability_check(clean_valkey, caplog):
    with caplog.at_level(logging.WARNING, logger="app.connections"):
        assert check_server_settings(clean_valkey.client()) == []
    assert not caplog.records


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("appendfsync", "everysec", "up to ~2 s of accepted jobs"),
        ("maxmemory-policy", "allkeys-lru", "evict queued jobs"),
        ("appendonly", "no", "loses every job"),
    ],
)
def test_settings_that_can_lose_jobs_are_reported(clean_valkey, caplog, name, value, says):
    client = clean_valkey.client()
    before = client.config_get(name)[name]
    client.config_set(name, value)
    try:
        with caplog.at_level(logging.WARNING, logger="app.connections"):
            problems = check_server_settings(client)
    finally:
        client.config_set(name, before)
    assert len(problems) == 1 and name in problems[0] and says in problems[0], problems
    assert [record.getMessage() for record in caplog.records] == problems


def test_connections_give_up_on_a_silent_server_in_seconds(clean_valkey, monkeypatch):
    """A vanished server (no FIN, no RST) is noticed by keepalive probes, not after hours."""
    import socket

    from app.connections import redis_client
    from app.settings import Settings

    monkeypatch.setenv("REDIS_URL", clean_valkey.url)
    for for_worker in (False, True):
        client = redis_client(Settings(), for_worker=for_worker)
        client.ping()
        connection = client.connection_pool.get_connection()
        try:
            sock = connection._sock
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            idle = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
            interval = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
            probes = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
            assert idle + interval * probes <= 15, (idle, interval, probes)
        finally:
            client.connection_pool.release(connection)
