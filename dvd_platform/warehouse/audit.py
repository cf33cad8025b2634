"""The audit log, ``dw_audit.load_log``: one row per load, and per failed step of a failed run.

The one writer of the table. A successful load writes its row inside the load's own
transaction (the rows and the row that reports them commit together); a failed load
writes its row on a connection of its own, after the rollback; the run-failure sensor
writes a row for each failed step of a run, once, whatever the step (Spark, a blocking
check, a missing file), unless the load already reported its failure itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime

import psycopg2
from psycopg2 import sql

from dvd_platform.warehouse.errors import WarehouseConnectionError
from dvd_platform.warehouse.window import Window

MAX_ERROR_CHARS = 4000

_INSERT = sql.SQL("""INSERT INTO dw_audit.load_log (run_id, asset, partition_start, partition_end, rows_staged,
                                     rows_loaded, rows_quarantined, started_at, finished_at, status, error,
                                     inputs, skipped)
SELECT %(run_id)s, %(asset)s, %(partition_start)s, %(partition_end)s, %(rows_staged)s, %(rows_loaded)s,
       %(rows_quarantined)s, {times}, %(status)s, %(error)s, %(inputs)s, %(skipped)s
 WHERE {condition}""")
_LAST_INPUTS = """SELECT inputs FROM dw_audit.load_log WHERE asset = %s AND status = 'success'
ORDER BY load_id DESC LIMIT 1"""
#: A load knows when it started; it finished when its row is written (within its transaction).
_LOAD_TIMES = sql.SQL("%(started_at)s, clock_timestamp()")
#: A failed run is seen afterwards: started and finished are the writing transaction's start.
_SEEN_TIMES = sql.SQL("now(), now()")
_ALWAYS = sql.SQL("true")
_UNLESS_LOGGED = sql.SQL("NOT EXISTS (SELECT 1 FROM dw_audit.load_log "
                         "WHERE run_id = %(run_id)s AND asset = %(asset)s AND status = %(status)s)")


@dataclass(frozen=True)
class Entry:
    """One row of ``dw_audit.load_log``."""

    run_id: str
    asset: str
    partition_start: date | str | None
    partition_end: date | str | None
    status: str  # 'success' | 'failure'
    started_at: datetime | None = None  # None: a failed run seen afterwards (see _SEEN_TIMES)
    rows_staged: int | None = None
    rows_loaded: int | None = None
    rows_quarantined: int | None = None
    error: str | None = None
    inputs: str | None = None  # a type-1 load's input fingerprint (sql/010_load_inputs.sql)
    skipped: bool = False  # the inputs were those of the last success: nothing was staged or changed


def write(cur, entry: Entry, *, unless_logged: bool = False) -> None:
    """Insert ``entry`` with ``cur`` (the caller commits); with ``unless_logged``, only if the run has
    no row of that asset and status yet."""
    times = _SEEN_TIMES if entry.started_at is None else _LOAD_TIMES
    params = asdict(entry) | {"error": entry.error[:MAX_ERROR_CHARS] if entry.error is not None else None}
    cur.execute(_INSERT.format(times=times, condition=_UNLESS_LOGGED if unless_logged else _ALWAYS), params)


def record_success(cur, asset: str, window: Window, run_id: str, started: datetime, rows_staged: int | None,
                   rows_loaded: int, rows_quarantined: int | None, inputs: str | None = None) -> None:
    """The success row of a load, written in the load's own transaction."""
    write(cur, Entry(run_id, asset, window.first_day, window.last_day, "success", started, rows_staged,
                     rows_loaded, rows_quarantined, inputs=inputs))


def last_inputs(cur, asset: str) -> str | None:
    """The input fingerprint of ``asset``'s last successful load (None: none, or not recorded)."""
    cur.execute(_LAST_INPUTS, (asset,))
    row = cur.fetchone()
    return row[0] if row else None


def record_load_failure(connect: Callable, asset: str, window: Window, run_id: str, started: datetime,
                        exc: Exception) -> None:
    """The failure row of a load, on a connection of its own; never raises for the server's faults."""
    try:
        conn = connect()
        try:
            with conn.cursor() as cur:
                write(cur, Entry(run_id, asset, window.first_day, window.last_day, "failure", started, error=str(exc)))
            conn.commit()
        finally:
            conn.close()
    except (psycopg2.Error, WarehouseConnectionError):
        pass  # the server may be the reason the load failed; the run's own failure still reports it


def record_failed_run(connect: Callable, run_id: str, steps: Iterable[str], partition_start: str | None,
                      partition_end: str | None, error: str) -> None:
    """A failure row per failed step of a failed run (the run-failure sensor), unless the step's load
    wrote its own; in one transaction."""
    conn = connect()
    try:
        with conn.cursor() as cur:
            for step in steps:
                write(cur, Entry(run_id, step, partition_start, partition_end, "failure", error=error),
                      unless_logged=True)
        conn.commit()
    finally:
        conn.close()
