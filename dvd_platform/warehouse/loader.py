"""The warehouse load: stage -> validate -> ensure partitions -> replace -> audit.

A load never appends blindly. Spark's executors stream the rows with ``COPY`` into an
UNLOGGED per-load stage table (``stage.py``, ``copy_in.py``: CSV lines made in the JVM,
no Python row objects, nothing funnelled through the driver); the stage is checked
against what the executors copied and against the window; the window's monthly
partitions are made to exist; then one SERIALIZABLE transaction takes the load's locks
(``LoadSpec.locks``, ``locks.py``), replaces exactly the window (the SQL in
``sql/load/<asset>.sql``, ``replace.py``) and writes the audit row (``audit.py``). A
fact table may replace the whole UTC months of a window by swapping in freshly built
partitions instead of deleting and re-inserting their rows (``swap_whole_months``). A
crash before commit leaves the previous data; the stage table is dropped either way (a
leftover from a killed process is harmless, it is UNLOGGED and named per load).

Loads computed inside the warehouse (the marts, ``run_sql_load``) skip the stage: the
same locks, transaction and audit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import psycopg2
from psycopg2 import errors, sql
from psycopg2.extensions import ISOLATION_LEVEL_SERIALIZABLE

from dvd_platform.package_files import SQL_DIR
from dvd_platform.warehouse import audit, locks
from dvd_platform.warehouse.copy_in import CLIENT_COPY_MAX_ROWS, copy_dataframe, copy_from_client
from dvd_platform.warehouse.errors import WarehouseLoadError
from dvd_platform.warehouse.locks import READS_FACT_PAYMENT, Lock
from dvd_platform.warehouse.replace import Replace, has_whole_month, month_swapper, statement_runner
from dvd_platform.warehouse.stage import STAGE_SCHEMA, Stage
from dvd_platform.warehouse.window import Window

if TYPE_CHECKING:
    from dvd_platform.resources.warehouse import WarehouseResource

LOAD_SQL_DIR = SQL_DIR / "load"
RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)


@dataclass(frozen=True)
class LoadSpec:
    """How one asset loads: its stage's columns, its partitions, its window check, its locks."""

    stage_columns: tuple[tuple[str, str], ...] = ()  # none: computed inside the warehouse (run_sql_load)
    partition_parent: str | None = None  # monthly partitions ensured before the load
    time_column: str | None = None  # every staged row must fall inside the window
    swap_whole_months: bool = False  # whole months replaced by partition swap (sql/008_swap_partitions.sql)
    locks: tuple[Lock, ...] = ()  # taken first in the load's transaction, before its snapshot (locks.py)

    def __post_init__(self) -> None:
        if self.swap_whole_months and not self.partition_parent:
            raise ValueError("swap_whole_months needs the partition_parent it swaps partitions of")

    def transaction_locks(self, window: Window) -> tuple[Lock, ...]:
        """The locks a load of ``window`` takes: a swap's lock on the parent instead of its writers' lock."""
        if self.swap_whole_months and has_whole_month(window):
            return locks.with_swap(self.locks, self.partition_parent)
        return self.locks


#: The loads computed inside the warehouse from the facts (``run_sql_load``).
SQL_LOAD_SPECS: dict[str, LoadSpec] = {
    "mart_daily_revenue": LoadSpec(locks=(READS_FACT_PAYMENT,)),
    "mart_category_monthly": LoadSpec(locks=(READS_FACT_PAYMENT,)),
}


@dataclass(frozen=True)
class LoadResult:
    rows_staged: int | None
    rows_loaded: int
    seconds: float
    attempts: int


def load_sql_text(asset: str) -> str:
    """The text of ``sql/load/<asset>.sql``."""
    return (LOAD_SQL_DIR / f"{asset}.sql").read_text()


def load_sql(asset: str) -> sql.SQL:
    """``sql/load/<asset>.sql``, whose ``{stage}`` and ``{target}`` the loader fills in."""
    return sql.SQL(load_sql_text(asset))


def load(warehouse: WarehouseResource, asset: str, spec: LoadSpec, df, window: Window, run_id: str,
         rows_quarantined: int | None = None, inputs: str | None = None, expected_rows: int | None = None
         ) -> LoadResult:
    """Stage ``df`` with COPY and apply ``sql/load/<asset>.sql`` for ``window`` in one transaction.

    With ``spec.swap_whole_months``, the SQL runs once per piece of the window cut at month
    boundaries, its ``{target}`` being the parent for a partial month and a fresh table swapped
    in as the partition (``dw.swap_partitions``) for a whole one.
    """
    started = _begin(warehouse)
    stage = Stage.new(asset)
    conn = warehouse.connect()
    try:
        rows_copied = _stage(conn, warehouse.dsn, stage, spec, df, expected_rows)
        with conn.cursor() as cur:
            rows_staged = _validate(cur, stage, spec, window, asset, rows_copied)
            _ensure_partitions(cur, spec, window)
        conn.commit()
        replace = _replacer(asset, spec, stage, window, warehouse.swap_lock_timeout_seconds)
        rows_loaded, attempts = _transaction(
            conn, warehouse.max_attempts, spec.transaction_locks(window), replace,
            lambda cur, rows: audit.record_success(cur, asset, window, run_id, started, rows_staged, rows,
                                                   rows_quarantined, inputs))
        return LoadResult(rows_staged, rows_loaded, _seconds_since(started), attempts)
    except Exception as exc:
        _fail(warehouse, conn, asset, window, run_id, started, exc)
        if isinstance(exc, WarehouseLoadError):
            raise
        raise WarehouseLoadError(f"loading {asset} for {window} failed, nothing was changed: {exc}") from exc
    finally:
        try:
            stage.drop(conn)
        finally:
            conn.close()


def run_sql_load(warehouse: WarehouseResource, asset: str, window: Window, run_id: str) -> LoadResult:
    """A load computed inside the warehouse (the marts, ``SQL_LOAD_SPECS``): the same locks, transaction
    and audit, no stage."""
    started = _begin(warehouse)
    conn = warehouse.connect()
    try:
        spec = SQL_LOAD_SPECS[asset]
        replace = statement_runner(load_sql(asset), window)
        rows, attempts = _transaction(
            conn, warehouse.max_attempts, spec.transaction_locks(window), replace,
            lambda cur, rows: audit.record_success(cur, asset, window, run_id, started, None, rows, None))
        return LoadResult(rows, rows, _seconds_since(started), attempts)
    except Exception as exc:
        _fail(warehouse, conn, asset, window, run_id, started, exc)
        raise WarehouseLoadError(f"computing {asset} for {window} failed, nothing was changed: {exc}") from exc
    finally:
        conn.close()


def last_inputs(warehouse: WarehouseResource, asset: str) -> str | None:
    """The input fingerprint recorded by ``asset``'s last successful load, if any."""
    warehouse.migrate()  # the column is a migration's (sql/010_load_inputs.sql)
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            return audit.last_inputs(cur, asset)
    finally:
        conn.close()


def record_skip(warehouse: WarehouseResource, asset: str, window: Window, run_id: str, inputs: str) -> LoadResult:
    """A load skipped because its inputs are those of the last success: its audit row only, nothing staged."""
    started = _begin(warehouse)
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            audit.write(cur, audit.Entry(run_id, asset, window.first_day, window.last_day, "success", started,
                                         rows_staged=0, rows_loaded=0, inputs=inputs, skipped=True))
        conn.commit()
        return LoadResult(0, 0, _seconds_since(started), 1)
    finally:
        conn.close()


def _begin(warehouse: WarehouseResource) -> datetime:
    """Apply pending migrations (once per resource instance), then the load's start time."""
    warehouse.migrate()
    return datetime.now(timezone.utc)


def _seconds_since(started: datetime) -> float:
    return (datetime.now(timezone.utc) - started).total_seconds()


def _stage(conn, dsn: str, stage: Stage, spec: LoadSpec, df, expected_rows: int | None) -> int:
    """Create the stage (committed, so the executors see it) and COPY ``df`` into it; the rows copied.
    ``df`` None stages no rows (and runs no Spark job). With ``expected_rows`` (the most rows the load
    can stage, from the footers) at most ``CLIENT_COPY_MAX_ROWS``, the rows come through this process
    (``copy_from_client``); otherwise, or unknown, the executors stream them."""
    with conn.cursor() as cur:
        stage.create(cur, spec.stage_columns)
    conn.commit()
    if df is None:
        return 0
    columns = [c for c, _ in spec.stage_columns]
    if expected_rows is not None and expected_rows <= CLIENT_COPY_MAX_ROWS:
        rows = copy_from_client(df, columns, conn, (STAGE_SCHEMA, stage.name))
        conn.commit()
        return rows
    return copy_dataframe(df, columns, dsn, (STAGE_SCHEMA, stage.name), (STAGE_SCHEMA, stage.ledger_name))


def _validate(cur, stage: Stage, spec: LoadSpec, window: Window, asset: str, rows_copied: int) -> int:
    """The stage holds what the executors copied, and (with a time column) only the window's rows; its rows."""
    rows_staged = stage.count(cur)
    if rows_staged != rows_copied:
        raise WarehouseLoadError(f"{asset} for {window}: the stage holds {rows_staged} rows but Spark's "
                                 f"tasks copied {rows_copied}; the warehouse was not changed")
    if spec.time_column:
        stage.check_window(cur, spec.time_column, window, asset)
    return rows_staged


def _ensure_partitions(cur, spec: LoadSpec, window: Window) -> None:
    """The window's monthly partitions, if the table is partitioned."""
    if spec.partition_parent:
        # Outside the SERIALIZABLE transaction: DDL under a lock, visible to concurrent loaders.
        cur.execute("SELECT dw.ensure_month_partitions(%s, %s, %s)",
                    (spec.partition_parent, window.params["window_start"], window.params["window_end"]))


def _replacer(asset: str, spec: LoadSpec, stage: Stage, window: Window, lock_timeout_seconds: float) -> Replace:
    """Delete and insert the window with the load SQL, or swap its whole months in."""
    template = load_sql(asset)
    if spec.swap_whole_months:
        return month_swapper(template, stage.table, spec.partition_parent, window, lock_timeout_seconds)
    target = sql.Identifier(*spec.partition_parent.split(".")) if spec.partition_parent else None
    return statement_runner(template.format(stage=stage.table, target=target), window)


def _transaction(conn, max_attempts: int, held: tuple[Lock, ...], replace: Replace,
                 record: Callable[[object, int], None]) -> tuple[int, int]:
    """Take the locks ``held``, then run ``replace(cursor) -> rows loaded`` and ``record(cursor, rows)`` (the
    audit row) in one SERIALIZABLE transaction, retried on serialization failures, deadlocks and lock
    timeouts; the rows loaded and the attempts made."""
    for attempt in range(1, max_attempts + 1):
        conn.set_session(isolation_level=ISOLATION_LEVEL_SERIALIZABLE)
        try:
            with conn.cursor() as cur:
                locks.take(cur, held)  # before the snapshot, which the first query takes
                rows_loaded = replace(cur)
                record(cur, rows_loaded)
            conn.commit()
            return rows_loaded, attempt
        except RETRYABLE:
            conn.rollback()
            if attempt == max_attempts:
                raise
            time.sleep(0.05 * 2**attempt)
        finally:
            if not conn.closed:  # a lost server must not hide the error that reported it
                conn.set_session(isolation_level=None)
    raise AssertionError("unreachable")


def _fail(warehouse: WarehouseResource, conn, asset: str, window: Window, run_id: str, started: datetime,
          exc: Exception) -> None:
    """Roll back (if the connection still lives) and write the failure row."""
    try:
        conn.rollback()
    except psycopg2.Error:
        pass  # a lost server has already discarded the transaction
    audit.record_load_failure(warehouse.connect, asset, window, run_id, started, exc)
