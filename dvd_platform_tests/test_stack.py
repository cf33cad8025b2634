"""The local stack: real services, env overrides, roles, and no process left behind."""

from __future__ import annotations

import os
import subprocess
from urllib.parse import urlparse

import psycopg2
import pytest

from dvd_platform.dev.stack import Stack, StackError
from dvd_platform.dev.stack.procs import pid_alive, port_open


def _port(dsn: str) -> int:
    return urlparse(dsn).port


def _live_processes_mentioning(text: str) -> list[str]:
    """Non-zombie processes whose command line mentions ``text`` (e.g. a data dir)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,stat=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line and " Z" not in line[:12] and "ps -eo" not in line]


def test_second_stack_gets_other_ports_and_leaves_nothing_behind(settings_env, state_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("DVD_PG_DSN", "DVD_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")}
    second = Stack(state_dir / "second")
    values = second.up(environ=env)
    try:
        assert _port(values["DVD_PG_DSN"]) != _port(settings_env["DVD_PG_DSN"])
        assert values["DVD_S3_ENDPOINT_URL"] != settings_env["DVD_S3_ENDPOINT_URL"]
        pids = second.pids()
        assert len(pids) == 2 and all(pid_alive(p) for p in pids)
        with psycopg2.connect(values["DVD_PG_DSN"]) as conn, conn.cursor() as cur:
            cur.execute("select current_user, current_database()")
            assert cur.fetchone() == ("dvd_loader", "dvd_warehouse")
        assert second.up(environ=env) == values  # idempotent while running
    finally:
        second.down()
    assert not any(pid_alive(p) for p in pids)
    assert not port_open(_port(values["DVD_PG_DSN"]))
    assert _live_processes_mentioning(str(state_dir / "second")) == []
    assert not (state_dir / "second" / "stack.env").exists()


def test_reachable_services_from_env_start_nothing(settings_env, state_dir):
    env = {**os.environ, **settings_env}
    stack = Stack(state_dir / "external")
    values = stack.up(environ=env)
    try:
        assert stack.pids() == []
        assert values["DVD_PG_DSN"] == settings_env["DVD_PG_DSN"]
        assert values["DVD_S3_ENDPOINT_URL"] == settings_env["DVD_S3_ENDPOINT_URL"]
        assert not (state_dir / "external" / "pg").exists()
    finally:
        stack.down()


def test_unreachable_postgres_is_a_clear_error_without_the_password(state_dir):
    env = {"DVD_PG_DSN": "host=127.0.0.1 port=1 dbname=x user=u password=s3cret-value", "PATH": os.environ["PATH"]}
    with pytest.raises(StackError) as err:
        Stack(state_dir / "bad").up(environ=env)
    assert "DVD_PG_DSN" in str(err.value) and "port 1" in str(err.value)
    assert "s3cret-value" not in str(err.value)


def test_roles_loader_owns_analyst_reads_only(settings_env):
    with psycopg2.connect(settings_env["DVD_PG_DSN"]) as conn, conn.cursor() as cur:
        cur.execute("create table if not exists dw._role_probe(x int)")
        cur.execute("truncate dw._role_probe; insert into dw._role_probe values (1)")
    conn.close()
    analyst = psycopg2.connect(settings_env["DVD_PG_ANALYST_DSN"])
    try:
        with analyst.cursor() as cur:
            cur.execute("select count(*) from dw._role_probe")
            assert cur.fetchone() == (1,)
        analyst.rollback()
        for statement in ("insert into dw._role_probe values (2)", "create table dw.analyst_table(x int)",
                          "create table public.analyst_table(x int)"):
            with analyst.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
            analyst.rollback()
    finally:
        analyst.close()
    with psycopg2.connect(settings_env["DVD_PG_DSN"]) as conn, conn.cursor() as cur:
        cur.execute("drop table dw._role_probe")
    conn.close()


@pytest.mark.parametrize("headers, serialized", [({"HTTP_IF_MATCH": '"abc"'}, True),
                                                 ({"HTTP_IF_NONE_MATCH": "*"}, True), ({}, False)])
def test_the_stacks_s3_endpoint_handles_conditional_puts_one_at_a_time(headers, serialized):
    """moto checks a PUT's condition and stores the object in two steps: ``moto_main`` runs conditional PUTs
    whole under one lock, so two of them cannot both pass the check (unit test of the WSGI wrapper, with a
    slow application that counts the requests in it); other requests still run in parallel."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from dvd_platform.dev.stack.moto_main import serialize_conditional_puts

    inside, most, lock = [0], [0], threading.Lock()

    def slow_app(environ, start_response):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        with lock:
            inside[0] -= 1
        return [b""]

    app = serialize_conditional_puts(slow_app)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: app({"REQUEST_METHOD": "PUT", **headers}, None), range(4)))
    assert (most[0] == 1) is serialized
