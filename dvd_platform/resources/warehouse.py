"""The PostgreSQL warehouse resource: connections (with retries), queries, migrations, and loads.

The load itself lives in ``dvd_platform.warehouse``: ``loader.py`` (stage -> validate ->
ensure partitions -> replace -> audit), ``window.py`` (the days a load replaces),
``locks.py`` (the locks a load declares), ``stage.py``, ``replace.py`` and ``audit.py``.
This resource holds the connection settings and hands its loads to the loader.
"""

from __future__ import annotations

import time

import psycopg2
from dagster import ConfigurableResource
from pydantic import PrivateAttr

from dvd_platform.warehouse import loader
from dvd_platform.warehouse.errors import WarehouseConnectionError, WarehouseLoadError, WarehouseUnavailable
from dvd_platform.warehouse.loader import LoadResult, LoadSpec
from dvd_platform.warehouse.migrations import apply_migrations
from dvd_platform.warehouse.window import Window

__all__ = ["WarehouseResource", "WarehouseLoadError", "WarehouseConnectionError", "WarehouseUnavailable",
           "TRANSIENT_CONNECT_ERRORS", "is_transient_connect_error", "LoadResult", "LoadSpec"]

# libpq's wording of the connection faults that pass by themselves: nothing answered, the connection
# was cut, or the server is restarting. Anything else the server answers (a bad password, an unknown
# database or role, pg_hba refusing the host) stays wrong however often it is retried.
TRANSIENT_CONNECT_ERRORS = (
    "connection refused",
    "connection reset",
    "server closed the connection unexpectedly",
    "timeout expired",
    "the database system is starting up",
    "the database system is shutting down",
)


def is_transient_connect_error(message: str) -> bool:
    """True when libpq's message says the server was unreachable or restarting, not that it refused us."""
    lowered = message.lower()
    return any(fault in lowered for fault in TRANSIENT_CONNECT_ERRORS)


class WarehouseResource(ConfigurableResource):
    dsn: str
    max_attempts: int = 5  # SERIALIZABLE transactions retried on serialization failures / deadlocks / lock timeouts
    # A partition swap's detach waits at most this long for readers of the table; new readers queue
    # behind it meanwhile, so it gives up (and the transaction is retried) rather than stall them.
    swap_lock_timeout_seconds: float = 10.0
    connect_attempts: int = 5  # refused / reset / timed out / restarting: retried with backoff
    connect_backoff_seconds: float = 1.0
    _migrated: bool = PrivateAttr(default=False)

    def connect(self):
        """A UTC session (days and months are cut in UTC whatever the server's time zone).

        Only transient connection faults (``TRANSIENT_CONNECT_ERRORS``) are retried, with
        exponential backoff: a bad password fails at once instead of after half a minute of
        backoff, and data errors never reach this point.
        """
        for attempt in range(1, self.connect_attempts + 1):
            try:
                return psycopg2.connect(self.dsn, options="-c timezone=UTC", application_name="dvd_platform",
                                        connect_timeout=10)
            except psycopg2.OperationalError as exc:
                message = str(exc).strip()  # libpq's message names host and port, never the password
                if not is_transient_connect_error(message):
                    raise WarehouseConnectionError(f"cannot connect to the warehouse (not retried): {message}") from exc
                if attempt == self.connect_attempts:
                    raise WarehouseUnavailable(f"warehouse unreachable after {attempt} attempts: {message}") from exc
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

    def query_each(self, statement, params_seq) -> list[list[tuple]]:
        """Run one statement once per parameter set, on one connection; the rows of each.

        Why: a check evaluated per day of a 213-day range made a connection per day (a backend fork,
        about 10 ms each). Each statement is still its own read-only transaction (autocommit), as on
        its own connection: it takes its snapshot after its locks (READ COMMITTED), so one waiting
        behind a partition swap sees the swapped rows, and it holds no lock past its own end."""
        conn = self.connect()
        try:
            conn.set_session(readonly=True, autocommit=True)
            with conn.cursor() as cur:
                out = []
                for params in params_seq:
                    cur.execute(statement, params)
                    out.append(cur.fetchall())
            return out
        finally:
            conn.close()

    def migrate(self) -> list[str]:
        """Apply pending migrations, once for this resource (Dagster makes one per run).

        The loader calls it before every load; an advisory lock in ``apply_migrations``
        serializes concurrent runs, and the later ones find nothing left to do.
        Why not ``setup_for_execution``: Dagster sets up a run's resources before its first
        step, so an unreachable warehouse would fail the run's raw and staging steps too,
        and the run-failure sensor would migrate as well.
        """
        if self._migrated:
            return []
        conn = self.connect()
        try:
            applied = apply_migrations(conn)
        finally:
            conn.close()
        self._migrated = True
        return applied

    def load(self, asset: str, spec: LoadSpec, df, window: Window, run_id: str,
             rows_quarantined: int | None = None, inputs: str | None = None,
             expected_rows: int | None = None) -> LoadResult:
        """Load ``df`` into ``asset``'s tables for ``window`` (``loader.load``)."""
        return loader.load(self, asset, spec, df, window, run_id, rows_quarantined, inputs, expected_rows)

    def last_inputs(self, asset: str) -> str | None:
        """The input fingerprint of ``asset``'s last successful load (``loader.last_inputs``)."""
        return loader.last_inputs(self, asset)

    def record_skip(self, asset: str, window: Window, run_id: str, inputs: str) -> LoadResult:
        """Log a load skipped for unchanged inputs (``loader.record_skip``)."""
        return loader.record_skip(self, asset, window, run_id, inputs)

    def run_sql_load(self, asset: str, window: Window, run_id: str) -> LoadResult:
        """Compute ``asset`` inside the warehouse for ``window`` (``loader.run_sql_load``)."""
        return loader.run_sql_load(self, asset, window, run_id)
