"""Faults and concurrency: whatever dies or runs at once, every partition keeps its last good state.

Each fault test records the state a partition is in, breaks a real run at a
precise point (the run is a ``dvd-platform materialize`` subprocess, killed with
SIGKILL or cut off from a server), checks that the state is exactly as before,
and then checks that a plain re-run completes and gives the same data. The
moment of each fault is made deterministic by holding a lock or watching the
write in progress, never by sleeping. (The SIGKILL inside the swap transaction is
``test_warehouse.test_sigkill_in_the_middle_of_a_fact_load_keeps_the_previous_rows``.)
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import psycopg2
import pytest

from dvd_platform.settings import PROJECT_ROOT
from dvd_platform_tests.netproxy import Proxy
from dvd_platform_tests.test_warehouse import TABLES, checksums, query

SELECT_FACT_PAYMENT = "key:fact_payment"


def materialize(env: dict[str, str], day: str, select: str, last: str | None = None) -> subprocess.Popen:
    """A run in its own process (with its own SparkSession), as the daemon would launch it."""
    return subprocess.Popen(
        [sys.executable, "-m", "dvd_platform.cli", "materialize", "--from", day, "--to", last or day, "--select", select],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finished(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


def wait_for(condition, what: str, timeout: float = 180, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def rerun(run_range, day: str, select: str) -> None:
    """The plain re-run after a fault, in this process: its warm SparkSession saves a cold JVM per test.

    Only the run that is broken has to be a process of its own.
    """
    summary = run_range(date.fromisoformat(day), date.fromisoformat(day), select)
    assert summary.ok, summary.lines()


@pytest.fixture
def run_env(settings_env) -> dict[str, str]:
    env = {**os.environ, **settings_env}
    env.pop("DAGSTER_HOME", None)  # an ephemeral instance per child run
    return env


def _snapshot_state(link: Path) -> tuple[str, dict[str, str]]:
    """Where a day's snapshot link points, and a digest of every file it holds."""
    target = Path(os.path.realpath(link))
    return str(target), {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(target.iterdir())}


def test_sigkill_during_a_snapshot_write_keeps_the_previous_snapshot(sample_loaded, run_env, spark, run_range):
    day = "2022-07-05"
    asset_dir = Path(run_env["DVD_LAKE_ROOT"]) / "staged" / "stg_payment"
    link = asset_dir / f"dt={day}"
    before = _snapshot_state(link)
    rows_before = sorted(spark.read.parquet(str(link)).collect())
    assert rows_before, "the day must have payments, or the check proves nothing"
    versions_before = set((asset_dir / "_versions").iterdir())

    proc = materialize(run_env, day, "key:stg_payment")
    # Spark writes the new version aside (under _versions/<id>/_temporary) before the link swap.
    wait_for(lambda: any((v / "_temporary").exists() for v in (asset_dir / "_versions").iterdir()
                         if v not in versions_before), "the snapshot write to start")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _snapshot_state(link) == before

    rerun(run_range, day, "key:stg_payment")
    assert os.path.realpath(link) != before[0]  # a new version was swapped in ...
    assert sorted(spark.read.parquet(str(link)).collect()) == rows_before  # ... with the same rows


def _stage_tables(pg, asset: str) -> set[str]:
    return {name for (name,) in query(pg, "SELECT tablename FROM pg_tables WHERE schemaname = 'dw_stage' "
                                          "AND tablename LIKE %s AND tablename NOT LIKE '%%\\_parts'", (f"{asset}\\_%",))}


def test_sigkill_during_the_copy_into_the_stage_keeps_the_warehouse(sample_loaded, pg, run_env, settings_env,
                                                                   run_range):
    """Lock the load's stage table as soon as it exists: the executors' COPY waits on it; kill then."""
    day = "2022-07-06"
    before = checksums(pg)
    existing = _stage_tables(pg, "fact_payment")
    blocker = psycopg2.connect(settings_env["DVD_PG_DSN"])
    proc = materialize(run_env, day, SELECT_FACT_PAYMENT)
    try:
        stage = wait_for(lambda: _stage_tables(pg, "fact_payment") - existing, "the stage table").pop()
        with blocker.cursor() as cur:
            cur.execute(f'LOCK TABLE dw_stage."{stage}" IN ACCESS EXCLUSIVE MODE')
        wait_for(lambda: query(pg, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                   "AND query LIKE 'COPY %%'"), "the COPY to wait on the stage", interval=0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        blocker.rollback()
        blocker.close()
    wait_for(lambda: not query(pg, "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY %%' "
                                   "AND pid <> pg_backend_pid()"), "the orphaned COPY to end", interval=0.2)
    assert checksums(pg) == before

    rerun(run_range, day, SELECT_FACT_PAYMENT)
    assert checksums(pg) == before
    assert stage not in _stage_tables(pg, "fact_payment"), "the killed load's stage was not cleaned up"


def test_postgres_restart_in_the_middle_of_a_load(sample_loaded, stack, run_env, settings_env, run_range):
    """The server restarts while the load's transaction waits: the run fails clearly, nothing changes."""
    local_stack, _ = stack
    day = "2022-07-07"
    port = urlparse(settings_env["DVD_PG_DSN"]).port
    conn = psycopg2.connect(settings_env["DVD_PG_DSN"])
    conn.autocommit = True
    before = checksums(conn)
    blocker = psycopg2.connect(settings_env["DVD_PG_DSN"])
    with blocker.cursor() as cur:
        cur.execute("LOCK TABLE dw.fact_payment IN SHARE MODE")
    proc = materialize(run_env, day, SELECT_FACT_PAYMENT)
    wait_for(lambda: query(conn, "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                 "AND query LIKE '%%LOCK TABLE dw.fact_payment IN ROW EXCLUSIVE MODE%%'"),
             "the load's transaction",
             interval=0.1)
    conn.close()
    local_stack.postgres.stop()  # fast shutdown: every session, the load's included, is cut
    local_stack.postgres.start(port=port, server_options=local_stack.pg_server_options)
    blocker.close()
    code, output = finished(proc)
    assert code != 0, "the run should fail when its server goes away mid-transaction"
    assert "fact_payment" in output and "nothing was changed" in output, output[-3000:]

    conn = psycopg2.connect(settings_env["DVD_PG_DSN"])
    conn.autocommit = True
    try:
        assert checksums(conn) == before
        rerun(run_range, day, SELECT_FACT_PAYMENT)
        assert checksums(conn) == before
    finally:
        conn.close()


def test_s3_endpoint_down_for_a_while(sample_loaded, run_env, s3, settings_env):
    """Raw assets against an S3 endpoint that is gone: a clear failure, the lake untouched; then a re-run."""
    from dvd_platform.io_managers.raw_s3 import ref_key

    day = "2022-07-08"
    lake_bucket = settings_env["DVD_LAKE_BUCKET"]
    ref = s3.get_object(Bucket=lake_bucket, Key=ref_key("payment", day))["Body"].read()
    endpoint = urlparse(settings_env["DVD_S3_ENDPOINT_URL"])
    proxy = Proxy(endpoint.hostname, endpoint.port)
    env = {**run_env, "DVD_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    try:
        code, output = finished(materialize(env, day, "key:raw_payment"))  # the proxy is down: refused
        assert code != 0
        assert f"127.0.0.1:{proxy.port}" in output, output[-3000:]  # the error names the endpoint
        assert s3.get_object(Bucket=lake_bucket, Key=ref_key("payment", day))["Body"].read() == ref
        proxy.up()
        code, output = finished(materialize(env, day, "key:raw_payment"))
        assert code == 0, output[-3000:]
        assert s3.get_object(Bucket=lake_bucket, Key=ref_key("payment", day))["Body"].read() == ref
    finally:
        proxy.down()


def test_concurrent_runs_neither_deadlock_nor_lose_or_duplicate_rows(sample_loaded, pg, defs):
    """Four runs of different days and two more of the first day, at once, through both SCD2 dims and both facts.

    The runs are threads of this process (each with its own Dagster instance, sharing the
    session's SparkSession, as concurrent jobs): six JVMs would not fit CI's 2 cores. What
    is under test is the warehouse: six loaders' transactions on the same tables at once.
    """
    from dagster import DagsterInstance

    from dvd_platform.runner import materialize_range

    before = checksums(pg)
    select = "key:dim_customer or key:dim_film or key:fact_rental or key:fact_payment"
    days = [date(2022, 7, d) for d in (9, 10, 11, 12, 9, 9)]

    def run(day: date):
        with DagsterInstance.ephemeral() as instance:
            return materialize_range(defs, day, day, select, instance=instance)

    with ThreadPoolExecutor(len(days)) as pool:
        summaries = list(pool.map(run, days))
    failed = [(day, summary.lines()) for day, summary in zip(days, summaries) if not summary.ok]
    assert not failed, failed
    after = checksums(pg)
    assert after == before, {t: (before[t], after[t]) for t in TABLES if before[t] != after[t]}
    # One current version per customer and film, whatever the interleaving.
    for table, key in (("dim_customer", "customer_id"), ("dim_film", "film_id")):
        assert not query(pg, f"SELECT {key} FROM dw.{table} WHERE is_current GROUP BY {key} HAVING count(*) > 1")
    # Every run loaded its four tables, each in one audited transaction.
    loads = query(pg, "SELECT count(*) FROM dw_audit.load_log WHERE status = 'success' AND run_id = ANY(%s)",
                  ([s.result.run_id for s in summaries],))[0][0]
    assert loads == 4 * len(days)
