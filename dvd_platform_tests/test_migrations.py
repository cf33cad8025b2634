"""Warehouse migrations against a real PostgreSQL: contract tables, partitions, runner safety.

Each test gets a fresh database (owned by the loader, with schemas dw/dw_audit
as the stack's bootstrap creates them) and drops it afterwards, so the session
warehouse other tests load into is never touched.
"""

from __future__ import annotations

import shutil
import threading
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from dvd_platform.settings import PROJECT_ROOT
from dvd_platform_tests.scratch import scratch_database
from dvd_platform.warehouse.migrations import MigrationError, apply_migrations, discover_migrations

SQL_DIR = PROJECT_ROOT / "sql"


@pytest.fixture
def fresh_db(settings_env):
    """DSNs (loader, analyst) of a new empty warehouse database, dropped after the test."""
    with scratch_database(settings_env, "dvd_mig") as dsns:
        yield dsns


@pytest.fixture
def migrated(fresh_db):
    apply_migrations(fresh_db["loader"])
    return fresh_db


@pytest.fixture
def loader_conn(migrated):
    conn = psycopg2.connect(migrated["loader"])
    yield conn
    conn.close()


def _columns(cur, schema: str, table: str) -> dict[str, str]:
    cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (schema, table),
    )
    return dict(cur.fetchall())


def _versions() -> list[str]:
    return [m.version for m in discover_migrations(SQL_DIR)]


def test_apply_twice_applies_nothing_the_second_time(fresh_db):
    first = apply_migrations(fresh_db["loader"])
    assert first == _versions() and first[0] == "001"
    assert apply_migrations(fresh_db["loader"]) == []
    with psycopg2.connect(fresh_db["loader"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT version, name, length(checksum) FROM dw_audit.schema_migrations ORDER BY version")
        rows = cur.fetchall()
    conn.close()
    assert [r[0] for r in rows] == first
    assert all(name.startswith(version + "_") and n == 64 for version, name, n in rows)


def test_runner_accepts_an_open_connection_and_restores_it(fresh_db):
    conn = psycopg2.connect(fresh_db["loader"])
    try:
        assert apply_migrations(conn) == _versions()
        assert conn.autocommit is False and not conn.closed
        with conn.cursor() as cur:  # the session lock was released: another session can take it
            cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
            assert cur.fetchone()[0] == 0
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        with pytest.raises(MigrationError, match="transaction in progress"):
            apply_migrations(conn)
    finally:
        conn.close()


CONTRACT = {
    ("dw", "dim_date"): {"date_key": "integer", "date": "date", "month_name": "text", "day_of_week": "integer",
                         "is_weekend": "boolean", "quarter": "integer"},
    ("dw", "dim_customer"): {"customer_key": "bigint", "customer_id": "integer", "postal_code": "text",
                             "create_date": "date", "valid_from": "timestamp with time zone",
                             "valid_to": "timestamp with time zone", "is_current": "boolean"},
    ("dw", "dim_film"): {"film_key": "bigint", "film_id": "integer", "categories": "ARRAY",
                         "special_features": "ARRAY", "rental_rate": "numeric", "replacement_cost": "numeric",
                         "is_current": "boolean"},
    ("dw", "bridge_film_category"): {"film_id": "integer", "category": "text", "weight": "numeric"},
    ("dw", "dim_store"): {"store_key": "bigint", "store_id": "integer", "manager_staff_id": "integer",
                          "manager_name": "text", "country": "text"},
    ("dw", "dim_staff"): {"staff_key": "bigint", "staff_id": "integer", "username": "text", "active": "boolean"},
    ("dw", "fact_rental"): {"rental_id": "integer", "rental_ts": "timestamp with time zone",
                            "rental_date_key": "integer", "return_date_key": "integer", "customer_key": "bigint",
                            "film_key": "bigint", "store_key": "bigint", "staff_key": "bigint",
                            "rental_duration_hours": "numeric", "is_returned": "boolean"},
    ("dw", "fact_payment"): {"payment_id": "integer", "payment_ts": "timestamp with time zone",
                             "payment_date_key": "integer", "rental_date_key": "integer", "film_key": "bigint",
                             "rental_id": "integer", "amount": "numeric"},
    ("dw", "mart_daily_revenue"): {"date": "date", "store_id": "integer", "rentals": "integer",
                                   "payments": "integer", "revenue": "numeric", "active_customers": "integer"},
    ("dw", "mart_category_monthly"): {"month": "date", "category": "text", "rentals": "integer",
                                      "revenue": "numeric"},
    ("dw_audit", "load_log"): {"load_id": "bigint", "run_id": "text", "asset": "text", "partition_start": "date",
                               "rows_quarantined": "bigint", "started_at": "timestamp with time zone",
                               "status": "text", "error": "text"},
    ("dw_audit", "schema_migrations"): {"version": "text", "name": "text", "checksum": "text",
                                        "applied_at": "timestamp with time zone"},
}


def test_contract_tables_and_columns_exist(loader_conn):
    with loader_conn.cursor() as cur:
        for (schema, table), expected in CONTRACT.items():
            columns = _columns(cur, schema, table)
            assert columns, f"{schema}.{table} is missing"
            missing = {c: t for c, t in expected.items() if columns.get(c) != t}
            assert not missing, f"{schema}.{table}: wrong or missing columns {missing} (have {columns})"

        cur.execute(
            """SELECT c.relname, c.relkind, pg_get_expr(c.relpartbound, c.oid)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'dw' AND c.relname IN ('fact_rental', 'fact_payment',
                                                         'fact_rental_default', 'fact_payment_default')"""
        )
        kinds = {name: (kind, bound) for name, kind, bound in cur.fetchall()}
        assert kinds["fact_rental"][0] == "p" and kinds["fact_payment"][0] == "p"
        assert kinds["fact_rental_default"] == ("r", "DEFAULT")
        assert kinds["fact_payment_default"] == ("r", "DEFAULT")

        cur.execute(
            """SELECT a.attname FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
               WHERE i.indrelid = 'dw.fact_payment'::regclass AND i.indnatts = 1"""
        )
        single = {r[0] for r in cur.fetchall()}
        assert {"payment_date_key", "rental_date_key", "return_date_key", "customer_key", "staff_key",
                "store_key", "film_key", "payment_ts", "rental_id"} <= single

        cur.execute(
            """SELECT conrelid::regclass::text, confrelid::regclass::text, count(*)
               FROM pg_constraint WHERE contype = 'f' AND conrelid = 'dw.fact_rental'::regclass
               GROUP BY 1, 2"""
        )
        fks = {target: n for _, target, n in cur.fetchall()}
        assert fks == {"dw.dim_date": 2, "dw.dim_customer": 1, "dw.dim_film": 1, "dw.dim_store": 1, "dw.dim_staff": 1}

        cur.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'dw' AND tablename = 'dim_customer'")
        defs = " | ".join(r[0] for r in cur.fetchall())
        assert "(customer_id) WHERE is_current" in defs and "UNIQUE INDEX" in defs
        assert "(customer_id, valid_from)" in defs


def test_unknown_members_exist(loader_conn):
    with loader_conn.cursor() as cur:
        cur.execute("SELECT customer_id, first_name, last_name, valid_from::text, valid_to, is_current "
                    "FROM dw.dim_customer WHERE customer_key = -1")
        assert cur.fetchone() == (-1, "Unknown", "Unknown", "-infinity", None, True)
        cur.execute("SELECT film_id, title, is_current, valid_from::text FROM dw.dim_film WHERE film_key = -1")
        assert cur.fetchone() == (-1, "Unknown", True, "-infinity")
        cur.execute("SELECT store_id FROM dw.dim_store WHERE store_key = -1")
        assert cur.fetchone() == (-1,)
        cur.execute("SELECT staff_id FROM dw.dim_staff WHERE staff_key = -1")
        assert cur.fetchone() == (-1,)
        cur.execute("SELECT date FROM dw.dim_date WHERE date_key = -1")
        assert cur.fetchone() == (None,)
        # Keys are given by the loader (derived), never generated.
        with pytest.raises(psycopg2.errors.NotNullViolation):
            cur.execute("INSERT INTO dw.dim_store (store_id) VALUES (1)")
    loader_conn.rollback()
    with loader_conn.cursor() as cur:
        # A second current version of a customer is rejected.
        cur.execute("INSERT INTO dw.dim_customer (customer_key, customer_id, valid_from, is_current) VALUES (70, 7, '2022-01-01', true)")
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("INSERT INTO dw.dim_customer (customer_key, customer_id, valid_from, is_current) VALUES (71, 7, '2022-02-01', true)")
    loader_conn.rollback()


def test_dim_date_is_populated(loader_conn):
    with loader_conn.cursor() as cur:
        cur.execute("SELECT date_key, year, quarter, month, month_name, day, day_of_week, is_weekend "
                    "FROM dw.dim_date WHERE date = '2022-02-14'")
        assert cur.fetchone() == (20220214, 2022, 1, 2, "February", 14, 1, False)
        cur.execute("SELECT day_of_week, is_weekend FROM dw.dim_date WHERE date_key = 20220213")
        assert cur.fetchone() == (7, True)  # a Sunday
        cur.execute("SELECT min(date), max(date), count(*) FILTER (WHERE date IS NOT NULL) FROM dw.dim_date")
        first, last, n = cur.fetchone()
        assert (first, last) == (date(2000, 1, 1), date(2040, 12, 31))
        assert n == (last - first).days + 1


def test_analyst_can_read_but_not_write(migrated):
    conn = psycopg2.connect(migrated["analyst"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM dw.dim_date WHERE date_key = -1")
            assert cur.fetchone() == (1,)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("DELETE FROM dw.mart_daily_revenue")
    finally:
        conn.close()


def _insert_rental(cur, rental_id: int, ts: str) -> str:
    cur.execute(
        """INSERT INTO dw.fact_rental (rental_id, rental_ts, rental_date_key, customer_key, film_key, store_key,
                                       staff_key, is_returned, customer_id)
           VALUES (%s, %s, 20220214, -1, -1, -1, -1, false, -1)
           RETURNING tableoid::regclass::text""",
        (rental_id, ts),
    )
    return cur.fetchone()[0]


def test_ensure_month_partitions(loader_conn):
    with loader_conn.cursor() as cur:
        cur.execute("SELECT dw.ensure_month_partitions('dw.fact_rental', '2022-02-14', '2022-04-02')")
        assert cur.fetchone() == (3,)
        loader_conn.commit()
        cur.execute("SELECT dw.ensure_month_partitions('dw.fact_rental', '2022-02-14', '2022-04-02')")
        assert cur.fetchone() == (0,)
        cur.execute("SELECT dw.ensure_month_partitions('dw.fact_rental', '2022-04-02', '2022-04-02')")
        assert cur.fetchone() == (0,)
        cur.execute(
            """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'dw.fact_rental'::regclass ORDER BY 1"""
        )
        parts = dict(cur.fetchall())
        assert sorted(parts) == ["fact_rental_default", "fact_rental_p2022_02", "fact_rental_p2022_03",
                                 "fact_rental_p2022_04"]

        # Month boundaries are UTC whatever the session time zone.
        cur.execute("SET TIME ZONE 'America/New_York'")
        assert _insert_rental(cur, 1, "2022-02-14 10:00+00") == "dw.fact_rental_p2022_02"
        assert _insert_rental(cur, 2, "2022-03-01 00:30+01") == "dw.fact_rental_p2022_02"  # Feb 28 23:30 UTC
        assert _insert_rental(cur, 3, "2022-02-28 20:00-05") == "dw.fact_rental_p2022_03"  # Mar 1 01:00 UTC
        assert _insert_rental(cur, 4, "2022-07-01 00:00+00") == "dw.fact_rental_default"
        cur.execute("SELECT count(*) FROM dw.fact_rental_default")
        assert cur.fetchone() == (1,)
        cur.execute("SELECT count(*) FROM dw.fact_rental_p2022_02")
        assert cur.fetchone() == (2,)
        loader_conn.commit()

        # A month whose rows sit in the default partition is a clear error naming parent and month.
        with pytest.raises(psycopg2.errors.CheckViolation, match=r"dw\.fact_rental.*2022-07"):
            cur.execute("SELECT dw.ensure_month_partitions('dw.fact_rental', '2022-06-01', '2022-08-01')")
        loader_conn.rollback()

        # Other parents work the same, and bad input is rejected clearly.
        cur.execute("SELECT dw.ensure_month_partitions('dw.fact_payment', '2022-12-31 23:00-05', '2023-01-02')")
        assert cur.fetchone() == (1,)  # 2023-01-01 04:00 UTC: only January
        cur.execute("SELECT to_regclass('dw.fact_payment_p2023_01') IS NOT NULL")
        assert cur.fetchone() == (True,)
        loader_conn.commit()
        with pytest.raises(psycopg2.errors.UndefinedTable):
            cur.execute("SELECT dw.ensure_month_partitions('dw.nope', '2022-01-01', '2022-02-01')")
        loader_conn.rollback()
        with pytest.raises(psycopg2.errors.WrongObjectType):
            cur.execute("SELECT dw.ensure_month_partitions('dw.dim_date', '2022-01-01', '2022-02-01')")
        loader_conn.rollback()


def test_ensure_month_partitions_concurrent_callers(migrated):
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            conn = psycopg2.connect(migrated["loader"])
            try:
                barrier.wait()
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT dw.ensure_month_partitions('dw.fact_payment', '2021-01-01', '2022-01-01')")
                    results.append(cur.fetchone()[0])
            finally:
                conn.close()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(results) == [0, 0, 0, 12]


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    target.mkdir()
    for migration in discover_migrations(SQL_DIR):
        shutil.copy(migration.path, target / migration.name)
    return target


def test_changed_checksum_raises(fresh_db, sql_copy):
    assert apply_migrations(fresh_db["loader"], sql_copy) == _versions()
    edited = sorted(sql_copy.glob("002_*.sql"))[0]
    edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=edited.name):
        apply_migrations(fresh_db["loader"], sql_copy)


def test_new_file_is_applied_and_failing_file_rolls_back(fresh_db, sql_copy):
    apply_migrations(fresh_db["loader"], sql_copy)
    (sql_copy / "900_extra.sql").write_text("CREATE TABLE dw.extra (id int);")
    (sql_copy / "901_broken.sql").write_text("CREATE TABLE dw.half (id int);\nSELECT * FROM dw.missing_table;")
    with pytest.raises(MigrationError, match="901_broken.sql"):
        apply_migrations(fresh_db["loader"], sql_copy)
    conn = psycopg2.connect(fresh_db["loader"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('dw.extra') IS NOT NULL, to_regclass('dw.half') IS NOT NULL")
            assert cur.fetchone() == (True, False)
            cur.execute("SELECT max(version) FROM dw_audit.schema_migrations")
            assert cur.fetchone() == ("900",)
    finally:
        conn.close()


def test_file_names(fresh_db, sql_copy):
    (sql_copy / "oltp").mkdir()
    (sql_copy / "oltp" / "pagila-schema.sql").write_text("this is not run")
    (sql_copy / "oltp" / "999_looks_like_a_migration.sql").write_text("this is not run either")
    assert apply_migrations(fresh_db["loader"], sql_copy) == _versions()

    (sql_copy / "7_Bad-Name.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="7_Bad-Name.sql"):
        apply_migrations(fresh_db["loader"], sql_copy)
    (sql_copy / "7_Bad-Name.sql").unlink()

    (sql_copy / "001_duplicate_version.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="version 001"):
        apply_migrations(fresh_db["loader"], sql_copy)


def test_concurrent_runners_apply_once(fresh_db):
    barrier = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(apply_migrations(fresh_db["loader"]))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(results, key=len) == [[], _versions()]
    conn = psycopg2.connect(fresh_db["loader"])
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT version) FROM dw_audit.schema_migrations")
            assert cur.fetchone() == (len(_versions()), len(_versions()))
            cur.execute("SELECT count(*) FROM dw.dim_customer WHERE customer_key = -1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()
