"""Daily drops exported from the operational (OLTP) pagila database.

:class:`OltpDropSource` is a :class:`~dvd_platform.contract.drops.DropSource`: it writes
a day's 15 files in the drop layout, and :func:`dvd_platform.contract.drops.upload_drops` uploads
them with the seeder's manifest (bytes, md5, rows, columns), manifest last. So an
exported day is the same contract, verified by the same raw assets, as a file drop.

Which rows go on day D mirrors the seeder (cut in UTC):

- ``rental`` / ``payment``: the rows whose ``rental_date`` / ``payment_date`` falls on D.
- Reference tables: on the database's first day (the UTC day of its earliest rental
  or payment, which is the seeder's first day) the whole table, a full snapshot; on
  later days the rows whose ``last_update`` falls on D (changed or new that day).

Rows are ordered by primary key, columns in the contract's order, timestamps in UTC
(``+00``), written by ``COPY (SELECT ...) TO STDOUT WITH (FORMAT csv, HEADER)``, whose
CSV is the landing dialect (empty field = NULL, minimal quoting, ``\\n``). COPY streams
into the day's file on disk: no table is ever held in memory. Each day is read in one
REPEATABLE READ, READ ONLY transaction, so its 15 files are one consistent snapshot.

An OLTP database holds the current state only: a row changed after the first day is
in the first day's snapshot with its latest values (and again on the day it changed),
so its earlier versions cannot be recovered. A source whose reference rows carry a
``last_update`` after the first day without having changed (pagila stamps them all
2022-02-15) re-sends them, unchanged, on that day: harmless, an unchanged row makes no
new SCD2 version.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Sequence

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_REPEATABLE_READ, parse_dsn

from dvd_platform.contract.drops import SeedError, drop_path
from dvd_platform.contract.tables import TABLES, TableSpec

#: COPY's read size into the file; memory stays at this whatever the table's size.
COPY_CHUNK_BYTES = 1 << 20


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def export_query(spec: TableSpec, *, full: bool) -> sql.Composed:
    """The SELECT of one table for one day (bounds as %(lo)s / %(hi)s): the contract's columns, by primary key."""
    columns = sql.SQL(", ").join(map(sql.Identifier, spec.columns))
    order = sql.SQL(", ").join(map(sql.Identifier, spec.primary_key))
    table = sql.Identifier(spec.name)
    if spec.is_event:
        where = sql.SQL(" WHERE {col} >= %(lo)s AND {col} < %(hi)s").format(col=sql.Identifier(spec.event_column))
    elif full:
        where = sql.SQL("")
    else:
        where = sql.SQL(" WHERE last_update >= %(lo)s AND last_update < %(hi)s")
    return sql.SQL("SELECT {columns} FROM {table}{where} ORDER BY {order}").format(
        columns=columns, table=table, where=where, order=order)


class OltpDropSource:
    """Drops read from a pagila-shaped OLTP database (a read-only role is enough)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        params = parse_dsn(dsn)
        # The manifest names the source without credentials.
        self.description = (f"oltp:{params.get('host', 'localhost')}:{params.get('port', '5432')}"
                             f"/{params.get('dbname', '')}")

    def connect(self):
        """A UTC session: timestamps are written with +00 and days cut in UTC, whatever the server's zone."""
        try:
            conn = psycopg2.connect(self.dsn, options="-c timezone=UTC", application_name="dvd_platform_oltp_export",
                                    connect_timeout=10)
        except psycopg2.OperationalError as exc:  # libpq's message names host and port, never the password
            raise SeedError(f"cannot connect to the OLTP database ({self.description}): {str(exc).strip()}") from exc
        conn.set_session(isolation_level=ISOLATION_LEVEL_REPEATABLE_READ, readonly=True)
        return conn

    @staticmethod
    def event_days(cur) -> tuple[date, date]:
        cur.execute("""SELECT (least((SELECT min(rental_date) FROM rental), (SELECT min(payment_date) FROM payment))
                               AT TIME ZONE 'UTC')::date,
                              (greatest((SELECT max(rental_date) FROM rental), (SELECT max(payment_date) FROM payment))
                               AT TIME ZONE 'UTC')::date""")
        first, last = cur.fetchone()
        if first is None:
            raise SeedError("the OLTP database has no rentals or payments: nothing to export")
        return first, last

    def day_range(self) -> tuple[date, date]:
        """The UTC days of the earliest and latest event: the first is the full snapshot's day."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                return self.event_days(cur)
        finally:
            conn.close()

    def write_days(self, days: Sequence[date], out_dir: Path) -> None:
        """Write every table of each day, each day in its own consistent snapshot."""
        conn = self.connect()
        try:
            for day in sorted(set(days)):
                self.write_day(conn, day, out_dir)
        finally:
            conn.close()

    def write_day(self, conn, day: date, out_dir: Path) -> None:
        """One day's 15 files from one REPEATABLE READ snapshot."""
        bounds = {"lo": utc_midnight(day), "hi": utc_midnight(day + timedelta(1))}
        try:
            with conn.cursor() as cur:
                first, _ = self.event_days(cur)
                for spec in TABLES.values():
                    copy = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(
                        export_query(spec, full=day == first))
                    path = drop_path(out_dir, spec.name, day)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "wb") as out:
                        # COPY takes no bind parameters: mogrify binds the day's bounds client-side.
                        cur.copy_expert(cur.mogrify(copy, bounds).decode(), out, size=COPY_CHUNK_BYTES)
        finally:
            conn.rollback()  # read-only: ends the snapshot
