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
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from unittest import mock
from urllib.parse import urlparse

import psycopg2
import pytest

from dvd_platform.settings import PROJECT_ROOT
from dvd_platform_tests.netproxy import Proxy
from dvd_platform_tests.test_warehouse import TABLES, checksums, query

SELECT_FACT_PAYMENT = "key:fact_payment"


def materialize(env: dict[str, str], day: str, select: str, last: str | None = None) -> subprocess.Popen:
    """A run in its own process (its own Spark Connect session on the session's server), as the daemon
    would launch it."""
    return subprocess.Popen(
        [sys.executable, "-m", "dvd_platform.cli", "materialize", "--from", day, "--to", last or day, "--select", select],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finished(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


def wait_for(condition, what: str, timeout: float = 600, interval: float = 0.02):
    """Poll ``condition`` until it holds. ``timeout`` only bounds a hung run: a child run imports the
    code location and attaches to Spark, which can take minutes on a busy 2-core machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def rerun(run_range, day: str, select: str) -> None:
    """The plain re-run after a fault, in this process: it saves a process start and the definitions' import.

    Only the run that is broken has to be a process of its own.
    """
    summary = run_range(date.fromisoformat(day), date.fromisoformat(day), select)
    assert summary.ok, summary.lines()


@pytest.fixture
def run_env(settings_env) -> dict[str, str]:
    env = {**os.environ, **settings_env}
    env.pop("DAGSTER_HOME", None)  # an ephemeral instance per child run
    return env


def _snapshot_state(link: Path) -> tuple[str, dict[str, str] | None]:
    """Where a day's snapshot link points, and a digest of every file it holds (None: the target is gone)."""
    target = Path(os.path.realpath(link))
    if not target.is_dir():
        return str(target), None
    return str(target), {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(target.iterdir())}


def _waits_for_lock(pid: int, path: Path) -> bool:
    """Whether process ``pid`` is blocked on a POSIX lock of ``path`` (Linux's /proc/locks lists waiters
    with ``->``: ``1: -> POSIX ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF``)."""
    inode = os.stat(path).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1] == "->" and fields[5] == str(pid) and fields[6].endswith(f":{inode}"):
            return True
    return False


def test_sigkill_during_a_snapshot_write_keeps_the_previous_snapshot(sample_loaded, run_env, spark, run_range):
    """This test holds stg_payment's swap lock, so the run writes its new version aside (Spark's job
    committed) and then waits for the lock before it swaps the day's link; SIGKILL it while it waits."""
    from dvd_platform.resources.lake import SWAP_LOCK, LakeResource

    day = "2022-07-05"
    lake = LakeResource(root=run_env["DVD_LAKE_ROOT"])
    asset_dir = lake.zone_dir("staged", "stg_payment")
    link = asset_dir / f"dt={day}"
    before = _snapshot_state(link)
    rows_before = sorted(spark.read.parquet(str(link)).collect())
    assert rows_before, "the day must have payments, or the check proves nothing"
    versions_before = set((asset_dir / "_versions").iterdir())

    with lake.swap_lock("staged", "stg_payment"):
        proc = materialize(run_env, day, "key:stg_payment")
        wait_for(lambda: _waits_for_lock(proc.pid, asset_dir / SWAP_LOCK) or proc.poll() is not None,
                 "the run to wait for the swap lock", interval=0.1)
        assert proc.poll() is None, finished(proc)[1][-3000:]
        (written,) = set((asset_dir / "_versions").iterdir()) - versions_before
        assert (written / "_SUCCESS").exists() and list((written / f"_day={day}").glob("*.parquet"))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert _snapshot_state(link) == before  # the complete new version was never swapped in

    rerun(run_range, day, "key:stg_payment")
    assert os.path.realpath(link) != before[0]  # a new version was swapped in ...
    assert sorted(spark.read.parquet(str(link)).collect()) == rows_before  # ... with the same rows


def _stage_tables(pg, asset: str) -> set[str]:
    return {name for (name,) in query(pg, "SELECT tablename FROM pg_tables WHERE schemaname = 'dw_stage' "
                                          "AND tablename LIKE %s AND tablename NOT LIKE '%%\\_parts'", (f"{asset}\\_%",))}


def test_sigkill_during_the_copy_into_the_stage_keeps_the_warehouse(sample_loaded, pg, run_env, settings_env,
                                                                   run_range):
    """Lock the load's stage table as soon as it exists: the COPY waits on it; kill then. (A day's few payments
    come through the client's COPY, copy_from_client; the executors' path is the same statement per task.)"""
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


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), timezone.utc)
    return start, start + timedelta(1)


def make_payments_stale(conn, days: list[date]) -> None:
    """Add 1.00 to the warehouse's payments of ``days``: a load of those days must replace every one
    of them, so a load that committed even in part is visible (reloading identical rows hides it)."""
    with conn.cursor() as cur:
        for day in days:
            cur.execute("UPDATE dw.fact_payment SET amount = amount + 1 WHERE payment_ts >= %s AND payment_ts < %s",
                        _day_bounds(day))
            assert cur.rowcount, f"{day} has no payments: the check would prove nothing"


def waiting_writers(pg) -> list[tuple[int, str]]:
    """Loads whose transaction has written (it has an xid) and waits on a lock: (backend pid, statement)."""
    return query(pg, "SELECT pid, query FROM pg_stat_activity WHERE application_name = 'dvd_platform' "
                     "AND wait_event_type = 'Lock' AND backend_xid IS NOT NULL")


@contextmanager
def commits_held(dsn: str) -> Iterator[None]:
    """Hold every dim_film row FOR UPDATE: a load that wrote fact rows then waits, transaction open,
    for the check of their film_key, deferred to its COMMIT (FOR KEY SHARE on the film row)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT film_key FROM dw.dim_film FOR UPDATE")
        yield
    finally:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass  # the server was restarted under it
        conn.close()


def test_postgres_restart_in_the_middle_of_a_load(sample_loaded, stack, run_env, settings_env, run_range):
    """The server restarts while the load's transaction holds the day's new rows (deleted and
    inserted, waiting to commit): the run fails clearly, the stale rows are still there."""
    local_stack, _ = stack
    day = date(2022, 7, 7)
    port = urlparse(settings_env["DVD_PG_DSN"]).port
    conn = psycopg2.connect(settings_env["DVD_PG_DSN"])
    conn.autocommit = True
    before = checksums(conn)
    make_payments_stale(conn, [day])
    stale = checksums(conn)
    with commits_held(settings_env["DVD_PG_DSN"]):
        proc = materialize(run_env, str(day), SELECT_FACT_PAYMENT)
        wait_for(lambda: waiting_writers(conn) or proc.poll() is not None, "the load to write its rows", interval=0.1)
        assert proc.poll() is None, finished(proc)[1][-3000:]
        conn.close()
        local_stack.postgres.stop()  # fast shutdown: every session, the load's included, is cut
        local_stack.postgres.start(port=port, server_options=local_stack.pg_server_options)
    code, output = finished(proc)
    assert code != 0, "the run should fail when its server goes away mid-transaction"
    assert "fact_payment" in output and "nothing was changed" in output, output[-3000:]

    conn = psycopg2.connect(settings_env["DVD_PG_DSN"])
    conn.autocommit = True
    try:
        assert checksums(conn) == stale  # not a row of the load's DELETE or INSERT survived
        rerun(run_range, str(day), SELECT_FACT_PAYMENT)
        assert checksums(conn) == before
    finally:
        conn.close()


def test_s3_endpoint_down_for_a_while(sample_loaded, run_env, s3, settings_env):
    """Raw assets against an S3 endpoint that is gone: a clear failure, the lake untouched; then a re-run."""
    from dvd_platform.io_managers.raw_refs import month_key

    day = "2022-07-08"
    lake_bucket = settings_env["DVD_LAKE_BUCKET"]
    ref = s3.get_object(Bucket=lake_bucket, Key=month_key("payment", day))["Body"].read()
    endpoint = urlparse(settings_env["DVD_S3_ENDPOINT_URL"])
    proxy = Proxy(endpoint.hostname, endpoint.port)
    env = {**run_env, "DVD_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}"}
    try:
        code, output = finished(materialize(env, day, "key:raw_payment"))  # the proxy is down: refused
        assert code != 0
        assert f"127.0.0.1:{proxy.port}" in output, output[-3000:]  # the error names the endpoint
        assert s3.get_object(Bucket=lake_bucket, Key=month_key("payment", day))["Body"].read() == ref
        proxy.up()
        code, output = finished(materialize(env, day, "key:raw_payment"))
        assert code == 0, output[-3000:]
        assert s3.get_object(Bucket=lake_bucket, Key=month_key("payment", day))["Body"].read() == ref
    finally:
        proxy.down()


RETRYABLE_CAUSE = re.compile(r"deadlock detected|could not serialize access")
SELECT_DIMS_AND_FACTS = "key:dim_customer or key:dim_film or key:fact_rental or key:fact_payment"


def _run_records(home: Path) -> tuple[str, list[int], list[str]]:
    """From a finished run's own instance: its id, each load's transaction attempts, the failed steps' errors."""
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    attempts, failures = [], []
    # The instance's dagster.yaml finds its event log through DAGSTER_HOME, as the run's own process did.
    with mock.patch.dict(os.environ, {"DAGSTER_HOME": str(home)}), \
            DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        (run,) = instance.get_runs()
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event and event.event_type == DagsterEventType.ASSET_MATERIALIZATION and \
                    event.asset_key.path[-1] == event.step_key:  # a load, not a fix-up it reported for another asset
                attempts.append(event.event_specific_data.materialization.metadata["transaction_attempts"].value)
            elif event and event.event_type == DagsterEventType.STEP_FAILURE:
                failures.append(str(event.event_specific_data.error))
    return run.run_id, attempts, failures


def _linked_days(pg, first: date, last: date) -> tuple[date, date]:
    """Two days of ``first``..``last``: a rental day, and another day with the most payments for its rentals."""
    rows = query(pg, """
        SELECT r_day, p_day FROM (SELECT (r.rental_ts AT TIME ZONE 'UTC')::date AS r_day,
                                         (p.payment_ts AT TIME ZONE 'UTC')::date AS p_day
                                    FROM dw.fact_payment p JOIN dw.fact_rental r USING (rental_id)) x
         WHERE r_day <> p_day AND r_day BETWEEN %(first)s AND %(last)s AND p_day BETWEEN %(first)s AND %(last)s
         GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2 LIMIT 1""", {"first": first, "last": last})
    assert rows, f"no payment of {first}..{last} is for a rental of another of those days"
    return rows[0]


def _run_overlapping(pg, settings_env, run_env, runs: list[tuple[date, str]], homes: list[Path]
                     ) -> list[tuple[int, str]]:
    """Start each run as a process (DAGSTER_HOME ``homes[i]``) with commits held; once every run's
    transaction has written and waits, all at once (they overlap), let them go. Exit codes and output."""
    procs: list[subprocess.Popen] = []
    try:
        with commits_held(settings_env["DVD_PG_DSN"]):
            procs += [materialize({**run_env, "DAGSTER_HOME": str(home)}, str(day), select)
                      for (day, select), home in zip(runs, homes)]
            wait_for(lambda: len(waiting_writers(pg)) == len(runs) or any(p.poll() is not None for p in procs),
                     "every run's transaction to write and wait", timeout=1800, interval=0.1)
            ended = [finished(p)[1][-3000:] for p in procs if p.poll() is not None]
            assert not ended, ended
            assert len(waiting_writers(pg)) == len(runs)  # open transactions that all wrote: they overlap
        return [finished(proc) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_concurrent_runs_neither_deadlock_nor_lose_or_duplicate_rows(sample_loaded, pg, stack, run_env, settings_env,
                                                                     state_dir, run_range):
    """Three runs, each a process of its own (as the daemon launches them; three is
    what two cores bear), each loading another day: the rentals of day A; the payments of day B,
    many of them for rentals of A; both SCD2 dimensions and both facts of day C. The warehouse first
    loses the rentals of A and C and gets the payments of B and C wrong, so every load must land
    whole. The runs' transactions are held at COMMIT until all three have written: they overlap for
    certain, and B's payments bind to A's rentals only if the two loads are serialized (else they
    keep the unknown member). Every deadlock or serialization failure the server reported must show
    up in a run's record (a retried attempt, or the failure)."""
    from dvd_platform.resources.warehouse import WarehouseResource

    rental_day, payment_day = _linked_days(pg, date(2022, 7, 9), date(2022, 7, 20))
    full_day = next(date(2022, 7, d) for d in range(9, 21) if date(2022, 7, d) not in (rental_day, payment_day))
    runs = [(rental_day, "key:fact_rental"), (payment_day, SELECT_FACT_PAYMENT), (full_day, SELECT_DIMS_AND_FACTS)]
    before = checksums(pg)
    make_payments_stale(pg, [payment_day, full_day])
    with pg.cursor() as cur:
        for day in (rental_day, full_day):
            cur.execute("DELETE FROM dw.fact_rental WHERE rental_ts >= %s AND rental_ts < %s", _day_bounds(day))
    server_log = stack[0].postgres.base_dir / "server.log"
    log_offset = server_log.stat().st_size
    homes = [state_dir / f"dagster-{day}" for day, _ in runs]
    for home in homes:  # an operator's instance of its own: the CLI reads its dagster.yaml, never writes it
        home.mkdir()
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    results = _run_overlapping(pg, settings_env, run_env, runs, homes)
    records = [_run_records(home) for home in homes]

    # No deadlock or serialization failure went unreported: each was retried (an attempt more in the
    # load's metadata) or ended its run with an error that names it.
    logged = sum(1 for line in server_log.read_bytes()[log_offset:].decode(errors="replace").splitlines()
                 if "ERROR:" in line and RETRYABLE_CAUSE.search(line))
    max_attempts = WarehouseResource(dsn="unused").max_attempts
    retried = sum(a - 1 for _, attempts, _ in records for a in attempts)
    exhausted = sum(max_attempts for _, _, failures in records for f in failures if RETRYABLE_CAUSE.search(f))
    assert logged == retried + exhausted, (logged, records)
    for (day, select), (code, output), (_, _, failures) in zip(runs, results, records):
        assert (code == 0) == (not failures), output[-3000:]
        if failures:  # a run that gave up names the cause; its day is then loaded again
            assert RETRYABLE_CAUSE.search(failures[0]), failures
            rerun(run_range, str(day), select)
    after = checksums(pg)
    assert after == before, {t: (before[t], after[t]) for t in TABLES if before[t] != after[t]}
    # One current version per customer and film, whatever the interleaving; every load audited.
    for table, key in (("dim_customer", "customer_id"), ("dim_film", "film_id")):
        assert not query(pg, f"SELECT {key} FROM dw.{table} WHERE is_current GROUP BY {key} HAVING count(*) > 1")
    audited = query(pg, "SELECT count(*) FROM dw_audit.load_log WHERE status = 'success' AND run_id = ANY(%s)",
                    ([run_id for run_id, _, _ in records],))[0][0]
    assert audited == sum(len(attempts) for _, attempts, _ in records)
