"""Transient connection faults are retried, a refusal by the server is not; the final error is clear and
leaks no password."""

from __future__ import annotations

import threading

import pytest

from dvd_platform.resources.warehouse import WarehouseConnectionError, WarehouseResource, WarehouseUnavailable
from dvd_platform.dev.stack.procs import free_port
from dvd_platform_tests.netproxy import Proxy


def test_unreachable_warehouse_is_retried_then_reported():
    """Nothing answers behind a forwarder: every attempt reaches the forwarder, which counts it and closes
    it (its target refuses). Exactly ``connect_attempts`` attempts, then an error naming the count."""
    proxy = Proxy("127.0.0.1", free_port())  # nothing listens on the target port
    proxy.up()
    warehouse = WarehouseResource(dsn=f"postgresql://dvd_loader:s3cret@127.0.0.1:{proxy.port}/dvd_warehouse",
                                  connect_attempts=3, connect_backoff_seconds=0.05)
    try:
        with pytest.raises(WarehouseUnavailable) as err:
            warehouse.connect()
    finally:
        proxy.down()
    assert (proxy.attempts, proxy.accepted) == (3, 0), "every attempt retried, none reached a server"
    assert "after 3 attempts" in str(err.value) and str(proxy.port) in str(err.value)
    assert "s3cret" not in str(err.value)


def test_a_server_that_comes_back_within_the_retries_is_used(settings_env):
    """The server is reachable only after a delay: the first attempts are refused."""
    from urllib.parse import urlparse

    target = urlparse(settings_env["DVD_PG_DSN"])
    proxy = Proxy(target.hostname, target.port)
    later = threading.Timer(0.5, proxy.up)
    later.start()
    dsn = settings_env["DVD_PG_DSN"].replace(f":{target.port}/", f":{proxy.port}/")
    warehouse = WarehouseResource(dsn=dsn, connect_attempts=5, connect_backoff_seconds=0.2)
    try:
        conn = warehouse.connect()
        with conn.cursor() as cur:
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
        conn.close()
    finally:
        later.join()
        proxy.down()


def test_a_bad_password_fails_at_once_naming_the_cause(settings_env):
    """A wrong password stays wrong: one connection attempt (counted by a forwarder in front of the real
    server), an error that quotes the server's reason, says it was not retried, and leaks no password."""
    from urllib.parse import urlparse

    target = urlparse(settings_env["DVD_PG_DSN"])
    proxy = Proxy(target.hostname, target.port)
    proxy.up()
    dsn = target._replace(netloc=f"{target.username}:not-the-password@127.0.0.1:{proxy.port}").geturl()
    warehouse = WarehouseResource(dsn=dsn, connect_attempts=5, connect_backoff_seconds=0.01)
    try:
        with pytest.raises(WarehouseConnectionError) as err:
            warehouse.connect()
    finally:
        proxy.down()
    assert not isinstance(err.value, WarehouseUnavailable), err.value
    assert "password authentication failed" in str(err.value) and "not retried" in str(err.value)
    assert "not-the-password" not in str(err.value)
    assert proxy.accepted == 1
