"""The PostgreSQL warehouse: migrations, and the COPY + one-transaction load path.

A load never appends blindly. Spark's executors stream the rows with ``COPY``
into an UNLOGGED per-load stage table (``warehouse/copy_in.py``: CSV lines made
in the JVM, no Python row objects, nothing funnelled through the driver); then
one SERIALIZABLE transaction replaces exactly the window (the SQL in
``sql/load/<asset>.sql``) and writes the audit row. A fact table may replace
the whole UTC months of a window by swapping in freshly built partitions
instead of deleting and re-inserting their rows (``swap_whole_months``). A crash before commit leaves
the previous data; the stage table is dropped either way (a leftover from a
killed process is harmless, it is UNLOGGED and named per load).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import psycopg2
from dagster import ConfigurableResource
from psycopg2 import errors, sql
from psycopg2.extensions import ISOLATION_LEVEL_SERIALIZABLE

from dvd_platform.settings import PROJECT_ROOT
from dvd_platform.warehouse.copy_in import PART_COLUMN, copy_dataframe
from dvd_platform.warehouse.migrations import apply_migrations

LOAD_SQL_DIR = PROJECT_ROOT / "sql" / "load"
STAGE_SCHEMA = "dw_stage"  # owned by the loader; UNLOGGED per-load tables only
STAGE_LOCK_CLASS = 4_711_001  # advisory-lock namespace of live stage tables (first key of the pair)
RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def _next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=1) + timedelta(32)).replace(day=1)


@dataclass(frozen=True)
class Window:
    """The days a load replaces, and their UTC bounds."""

    first_day: date
    last_day: date

    @property
    def params(self) -> dict:
        start = datetime.combine(self.first_day, datetime.min.time(), tzinfo=timezone.utc)
        end = datetime.combine(self.last_day + timedelta(1), datetime.min.time(), tzinfo=timezone.utc)
        month_start = start.replace(day=1)
        month_end = datetime.combine(_next_month(self.last_day), datetime.min.time(), tzinfo=timezone.utc)
        return {"first_day": self.first_day, "last_day": self.last_day, "window_start": start, "window_end": end,
                "month_start": month_start, "month_end": month_end}

    def months(self) -> list[tuple[Window, bool]]:
        """The window cut at UTC month boundaries: each piece, and whether it is a whole month."""
        pieces, first = [], self.first_day
        while first <= self.last_day:
            next_month = _next_month(first)
            last = min(self.last_day, next_month - timedelta(1))
            pieces.append((Window(first, last), first.day == 1 and last == next_month - timedelta(1)))
            first = next_month
        return pieces

    def __str__(self) -> str:
        return str(self.first_day) if self.first_day == self.last_day else f"{self.first_day}..{self.last_day}"


@dataclass(frozen=True)
class LoadResult:
    rows_staged: int
    rows_loaded: int
    seconds: float
    attempts: int


class WarehouseLoadError(RuntimeError):
    """A load failed; the message names the asset and partition range. The warehouse is unchanged."""


class WarehouseUnavailable(WarehouseLoadError):
    """The server could not be reached after retries (a transient fault outlasted the retry policy)."""


class WarehouseResource(ConfigurableResource):
    dsn: str
    max_attempts: int = 5  # SERIALIZABLE transactions retried on serialization failures / deadlocks / lock timeouts
    # A partition swap's detach waits at most this long for readers of the table; new readers queue
    # behind it meanwhile, so it gives up (and the transaction is retried) rather than stall them.
    swap_lock_timeout_seconds: float = 10.0
    connect_attempts: int = 5  # connection refused / reset: retried with backoff (never data errors)
    connect_backoff_seconds: float = 1.0

    def connect(self):
        """A UTC session (days and months are cut in UTC whatever the server's time zone).

        Transient connection errors are retried with exponential backoff; data errors never
        reach this point, so they are never retried.
        """
        for attempt in range(1, self.connect_attempts + 1):
            try:
                return psycopg2.connect(self.dsn, options="-c timezone=UTC", application_name="dvd_platform",
                                        connect_timeout=10)
            except psycopg2.OperationalError as exc:
                if attempt == self.connect_attempts:
                    # libpq's message names host and port, never the password.
                    raise WarehouseUnavailable(
                        f"warehouse unreachable after {attempt} attempts: {str(exc).strip()}") from exc
                time.sleep(self.connect_backoff_seconds * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def query(self, statement, params=None) -> list[tuple]:
        """Run one statement on its own connection and commit; the rows it returns, if any."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                rows = cur.fetchall() if cur.description else []
            conn.commit()
            return rows
        finally:
            conn.close()

    def migrate(self) -> list[str]:
        """Apply pending migrations once per process (an advisory lock guards concurrent loaders)."""
        with _migrate_lock:
            if self.dsn in _migrated:
                return []
            conn = self.connect()
            try:
                applied = apply_migrations(conn)
            finally:
                conn.close()
            _migrated.add(self.dsn)
            return applied

    def load(self, asset: str, df, stage_columns: list[tuple[str, str]], window: Window, run_id: str,
             rows_quarantined: int | None = None, partition_parent: str | None = None,
             time_column: str | None = None, swap_whole_months: bool = False) -> LoadResult:
        """Stage ``df`` with COPY and apply ``sql/load/<asset>.sql`` for ``window`` in one transaction.

        With ``swap_whole_months`` (needs ``partition_parent``), the SQL runs once per piece of
        the window cut at month boundaries, its ``{target}`` being the parent for a partial month
        and a fresh table swapped in as the partition (``dw.swap_partitions``) for a whole one.
        """
        self.migrate()
        started = datetime.now(timezone.utc)
        load_id = uuid.uuid4().hex[:12]
        stage_name, ledger_name = f"{asset}_{load_id}", f"{asset}_{load_id}_parts"
        stage, ledger = sql.Identifier(STAGE_SCHEMA, stage_name), sql.Identifier(STAGE_SCHEMA, ledger_name)
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                # Held for the whole load (session level, released when this connection ends, also
                # when the process is killed): a stage whose lock is free belongs to a dead load.
                cur.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (STAGE_LOCK_CLASS, stage_name))
                _drop_abandoned_stages(cur)
                cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({}, {} int NOT NULL)").format(
                    stage, sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in stage_columns),
                    sql.Identifier(PART_COLUMN)))
                cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} (part int PRIMARY KEY, attempts int NOT NULL DEFAULT 1)")
                            .format(ledger))
            conn.commit()
            rows_copied = copy_dataframe(df, [c for c, _ in stage_columns], self.dsn, (STAGE_SCHEMA, stage_name),
                                         (STAGE_SCHEMA, ledger_name))
            with conn.cursor() as cur:
                cur.execute(sql.SQL("SELECT count(*) FROM {}").format(stage))
                rows_staged = cur.fetchone()[0]
                if rows_staged != rows_copied:
                    raise WarehouseLoadError(f"{asset} for {window}: the stage holds {rows_staged} rows but Spark's "
                                             f"tasks copied {rows_copied}; the warehouse was not changed")
                if time_column:
                    self._check_window(cur, stage, time_column, window, asset)
                if partition_parent:
                    # Outside the SERIALIZABLE transaction: DDL under a lock, visible to concurrent loaders.
                    cur.execute("SELECT dw.ensure_month_partitions(%s, %s, %s)",
                                (partition_parent, window.params["window_start"], window.params["window_end"]))
            conn.commit()
            template = sql.SQL((LOAD_SQL_DIR / f"{asset}.sql").read_text())
            if swap_whole_months:
                replace = _month_swapper(template, stage, partition_parent, window, self.swap_lock_timeout_seconds)
            else:
                target = sql.Identifier(*partition_parent.split(".")) if partition_parent else None
                replace = _statement_runner(template.format(stage=stage, target=target), window)
            rows_loaded, attempts = self._transaction(conn, replace, window, asset, run_id, rows_staged,
                                                      rows_quarantined, started)
            return LoadResult(rows_staged, rows_loaded, (datetime.now(timezone.utc) - started).total_seconds(), attempts)
        except Exception as exc:
            _rollback(conn)
            self._audit_failure(asset, window, run_id, started, exc)
            if isinstance(exc, WarehouseLoadError):
                raise
            raise WarehouseLoadError(f"loading {asset} for {window} failed, nothing was changed: {exc}") from exc
        finally:
            try:
                with conn.cursor() as cur:
                    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(stage, ledger))
                conn.commit()
            except psycopg2.Error:
                pass  # the server went away: the next load drops the abandoned stage (its lock is free)
            finally:
                conn.close()

    def run_sql_load(self, asset: str, window: Window, run_id: str) -> LoadResult:
        """A load computed inside the warehouse (the marts): the same transaction and audit, no stage."""
        self.migrate()
        started = datetime.now(timezone.utc)
        conn = self.connect()
        try:
            replace = _statement_runner(sql.SQL((LOAD_SQL_DIR / f"{asset}.sql").read_text()), window)
            rows, attempts = self._transaction(conn, replace, window, asset, run_id, None, None, started)
            return LoadResult(rows, rows, (datetime.now(timezone.utc) - started).total_seconds(), attempts)
        except Exception as exc:
            _rollback(conn)
            self._audit_failure(asset, window, run_id, started, exc)
            raise WarehouseLoadError(f"computing {asset} for {window} failed, nothing was changed: {exc}") from exc
        finally:
            conn.close()

    @staticmethod
    def _check_window(cur, stage, time_column: str, window: Window, asset: str) -> None:
        """Rows outside the window would survive the window's delete: refuse them, naming the days."""
        cur.execute(
            sql.SQL("SELECT min({c}), max({c}), count(*) FROM {s} WHERE {c} < %(window_start)s OR {c} >= %(window_end)s")
            .format(c=sql.Identifier(time_column), s=stage),
            window.params,
        )
        low, high, n = cur.fetchone()
        if n:
            raise WarehouseLoadError(
                f"{asset} for {window}: {n} row(s) have {time_column} outside the partition "
                f"(from {low} to {high}); the warehouse was not changed"
            )

    def _transaction(self, conn, replace: Callable, window: Window, asset: str, run_id: str, rows_staged,
                     rows_quarantined, started: datetime) -> tuple[int, int]:
        """Run ``replace(cursor) -> rows loaded`` and the audit row in one SERIALIZABLE transaction, with retries."""
        for attempt in range(1, self.max_attempts + 1):
            conn.set_session(isolation_level=ISOLATION_LEVEL_SERIALIZABLE)
            try:
                with conn.cursor() as cur:
                    rows_loaded = replace(cur)
                    cur.execute(
                        """INSERT INTO dw_audit.load_log (run_id, asset, partition_start, partition_end, rows_staged,
                               rows_loaded, rows_quarantined, started_at, finished_at, status)
                           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp(), 'success')""",
                        (run_id, asset, window.first_day, window.last_day, rows_staged, rows_loaded,
                         rows_quarantined, started),
                    )
                conn.commit()
                return rows_loaded, attempt
            except RETRYABLE:
                conn.rollback()
                if attempt == self.max_attempts:
                    raise
                time.sleep(0.05 * 2**attempt)
            finally:
                if not conn.closed:  # a lost server must not hide the error that reported it
                    conn.set_session(isolation_level=None)
        raise AssertionError("unreachable")

    def _audit_failure(self, asset: str, window: Window, run_id: str, started: datetime, exc: Exception) -> None:
        try:
            conn = self.connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        """INSERT INTO dw_audit.load_log (run_id, asset, partition_start, partition_end, started_at,
                               finished_at, status, error)
                           VALUES (%s, %s, %s, %s, %s, clock_timestamp(), 'failure', %s)""",
                        (run_id, asset, window.first_day, window.last_day, started, str(exc)[:4000]),
                    )
                conn.commit()
            finally:
                conn.close()
        except (psycopg2.Error, WarehouseUnavailable):
            pass  # the server may be the reason the load failed; the run's own failure still reports it


def _statement_runner(statement: sql.Composed, window: Window) -> Callable:
    """Replace the window with one statement; the rows it reports loaded (its last SELECT, or its row count)."""
    def run(cur) -> int:
        cur.execute(statement, window.params)
        return cur.fetchone()[0] if cur.description else cur.rowcount
    return run


def _month_swapper(template: sql.SQL, stage: sql.Identifier, parent: str, window: Window,
                   lock_timeout_seconds: float) -> Callable:
    """Replace whole months by partition swap, partial months by the template run on the parent.

    The swap drops the old partition's rows rather than deleting them, so first, before the
    transaction's snapshot, it locks out every other writer of the parent (each of which takes
    ROW EXCLUSIVE on it as its first statement) until commit. The new months are all built
    before the first detach, which locks out readers of the parent until commit.
    """
    parent_schema, parent_table = parent.split(".")
    parent_ident = sql.Identifier(parent_schema, parent_table)
    pieces = window.months()

    def run(cur) -> int:
        loaded, replacements = 0, []
        if any(whole for _, whole in pieces):
            cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(parent_ident))
        for piece, whole in pieces:
            if whole:
                name = f"{parent_table}_p{piece.first_day:%Y_%m}"  # the partition's own name, in the stage schema
                replacement = sql.Identifier(STAGE_SCHEMA, name)
                cur.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(replacement, parent_ident))
                cur.execute(template.format(stage=stage, target=replacement), piece.params)
                replacements.append(f"{STAGE_SCHEMA}.{name}")
            else:
                cur.execute(template.format(stage=stage, target=parent_ident), piece.params)
            loaded += cur.fetchone()[0]
        if replacements:
            cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(lock_timeout_seconds * 1000)}ms",))
            cur.execute("SELECT dw.swap_partitions(%s::regclass, %s::regclass[])", (parent, replacements))
        return loaded
    return run


def _rollback(conn) -> None:
    """Roll back if the connection still lives; a lost server has already discarded the transaction."""
    try:
        conn.rollback()
    except psycopg2.Error:
        pass


def _drop_abandoned_stages(cur) -> None:
    """Drop stage tables left by loads that died (SIGKILL, lost server): their advisory lock is free.

    A live load holds its lock, so ``pg_try_advisory_lock`` fails for it and its
    tables are left alone. Ledger tables go with their stage (``<stage>_parts``).
    """
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename NOT LIKE '%%\\_parts'",
                (STAGE_SCHEMA,))
    for (name,) in cur.fetchall():
        cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (STAGE_LOCK_CLASS, name))
        if cur.fetchone()[0]:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
                sql.Identifier(STAGE_SCHEMA, name), sql.Identifier(STAGE_SCHEMA, f"{name}_parts")))
            cur.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (STAGE_LOCK_CLASS, name))
