"""``dvd-platform oltp load-sample``: a pagila-shaped OLTP database to export from.

The database is (re)created from the DDL in ``sql/oltp/`` and filled from a drop
source (the pagila folder or the generator) by replaying its drops in day order:
the first day's snapshot and every day's events are COPYed in, later reference rows
are upserted, so the database ends in the source's current state, with each row's
``last_update`` as the source stamped it. One transaction: a failed load leaves no
half-filled database (foreign keys are checked at its commit).
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Callable, Sequence

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

from dvd_platform.contract.drops import DropSource, SeedError, drop_path
from dvd_platform.contract.tables import TABLES, TableSpec
from dvd_platform.package_files import SQL_DIR

OLTP_SQL_DIR = SQL_DIR / "oltp"


def _copy_in(cur, table: str, spec: TableSpec, path: Path) -> None:
    columns = sql.SQL(", ").join(map(sql.Identifier, spec.columns))
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER)").format(sql.Identifier(table), columns)
    with open(path, "rb") as stream:
        cur.copy_expert(statement.as_string(cur), stream)


def _upsert(cur, spec: TableSpec, path: Path) -> None:
    """Changed and new reference rows of a later day replace the current ones (their last_update included)."""
    temp = f"load_{spec.name}"
    cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {})").format(
        sql.Identifier(temp), sql.Identifier(spec.name)))
    cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(temp)))
    _copy_in(cur, temp, spec, path)
    columns = sql.SQL(", ").join(map(sql.Identifier, spec.columns))
    updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                 for c in spec.columns if c not in spec.primary_key)
    cur.execute(sql.SQL("INSERT INTO {table} ({columns}) SELECT {columns} FROM {temp} "
                        "ON CONFLICT ({pk}) DO UPDATE SET {updates}").format(
        table=sql.Identifier(spec.name), columns=columns, temp=sql.Identifier(temp),
        pk=sql.SQL(", ").join(map(sql.Identifier, spec.primary_key)), updates=updates))


def _has_rows(path: Path) -> bool:
    with open(path, "rb") as stream:
        stream.readline()
        return bool(stream.read(1))


def apply_ddl(cur) -> None:
    """Create the OLTP schema (``sql/oltp/``, files in name order) in the cursor's database: a sample
    database's, or a scratch one the tests compare with the contract."""
    for ddl in sorted((e for e in OLTP_SQL_DIR.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name):
        cur.execute(ddl.read_text())


#: Contract types -> the PostgreSQL type a sample column of that type is added as (decimals apart).
PG_TYPES = {"int": "integer", "string": "text", "timestamp": "timestamptz", "date": "date", "bool": "boolean",
            "text[]": "text[]"}


def follow_contract(cur, log: Callable[[str], None] = print) -> None:
    """Add to the sample's tables the contract columns ``sql/oltp/`` does not have yet.

    Why: a column added to the contract can then be tried end to end (generate, export, stage) before
    the OLTP DDL file follows; ``test_landing_contract_is_the_oltp_ddl`` is what says the DDL is behind.
    A real source's schema is never changed: this runs on the sample database only.
    """
    cur.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'")
    present: dict[str, set[str]] = {}
    for table, column in cur.fetchall():
        present.setdefault(table, set()).add(column)
    for table, spec in TABLES.items():
        for column in spec.schema:
            if column.name in present.get(table, set()):
                continue
            kind = column.type.replace("decimal", "numeric") if column.type.startswith("decimal(") else PG_TYPES[column.type]
            cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                sql.Identifier(table), sql.Identifier(column.name), sql.SQL(kind)))  # kind: PG_TYPES or decimal(p,s)
            log(f"sample OLTP: added contract column {table}.{column.name} ({kind}), which sql/oltp/ lacks")


def create_database(admin_dsn: str, oltp_dsn: str) -> None:
    """Drop and create the OLTP database named in ``oltp_dsn``, apply the DDL, and let its role read it."""
    target = parse_dsn(oltp_dsn)
    name, reader = target["dbname"], target["user"]
    admin = psycopg2.connect(make_dsn(admin_dsn, dbname="postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        admin.close()
    conn = psycopg2.connect(make_dsn(admin_dsn, dbname=name))
    try:
        with conn, conn.cursor() as cur:
            apply_ddl(cur)
            follow_contract(cur)
            db, role = sql.Identifier(name), sql.Identifier(reader)
            cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
            cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, role))
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role))
            cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(role))
    finally:
        conn.close()


def load_sample(admin_dsn: str, oltp_dsn: str, source: DropSource, days: Sequence[date],
                log: Callable[[str], None] = print) -> dict[str, int]:
    """(Re)create the OLTP database and replay ``days`` of ``source`` into it; returns rows per table.

    ``days`` must start on the source's first day: that drop holds the reference snapshot.
    """
    first, _ = source.day_range()
    if not days or days[0] != first:
        raise SeedError(f"an OLTP sample starts on the source's first day {first} (its reference snapshot)")
    create_database(admin_dsn, oltp_dsn)
    counts = {table: 0 for table in TABLES}
    with tempfile.TemporaryDirectory(prefix="dvd-oltp-sample-") as tmp:
        out_dir = Path(tmp)
        source.write_days(list(days), out_dir)
        conn = psycopg2.connect(make_dsn(admin_dsn, dbname=parse_dsn(oltp_dsn)["dbname"]))
        try:
            with conn, conn.cursor() as cur:
                for day in days:
                    for table, spec in TABLES.items():
                        path = drop_path(out_dir, table, day)
                        if not _has_rows(path):
                            continue
                        if spec.is_event or day == first:
                            _copy_in(cur, table, spec, path)
                        else:
                            _upsert(cur, spec, path)
                        counts[table] += cur.rowcount
                cur.execute("ANALYZE")
        finally:
            conn.close()
    log(f"loaded {len(days)} days {days[0]}..{days[-1]} of {source.description}: "
        + ", ".join(f"{t}={n:,}" for t, n in counts.items()))
    return counts
