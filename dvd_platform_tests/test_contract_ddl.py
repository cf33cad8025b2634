"""The declared columns against the DDL: a column changed on one side fails here until the other follows.

Both comparisons read PostgreSQL's own catalogue (``information_schema.columns``) of one scratch
database (dropped afterwards; the session warehouse is not touched) that holds the migrated
warehouse (``sql/*.sql``) and the pagila-shaped OLTP schema (``sql/oltp/``):

- each load's stage columns (``LOAD_SPECS``) exist in the ``dw`` table it loads, with the same
  type (the table has more: the keys, validity and flags its load SQL computes);
- each landing table of the contract (``contract/tables.py``) is the OLTP table the exporter
  selects it from: the same columns in the same order, of types the contract's parse.
"""

from __future__ import annotations

import psycopg2
import pytest

from dvd_platform.contract.tables import TABLES
from dvd_platform.dev.oltp_sample import apply_ddl, follow_contract
from dvd_platform.io_managers.postgres import LOAD_SPECS
from dvd_platform.warehouse.migrations import apply_migrations
from dvd_platform_tests.scratch import scratch_database

#: LOAD_SPECS spellings -> information_schema's.
LOAD_TYPE_NAMES = {"int": "integer", "timestamptz": "timestamp with time zone"}
#: Contract types -> the OLTP types a drop of them may be exported from (decimals apart: see _parses).
OLTP_TYPES = {"int": {"integer", "smallint"}, "string": {"text", "character"}, "bool": {"boolean"},
              "timestamp": {"timestamp with time zone"}, "date": {"date"}, "text[]": {"text[]"}}

CATALOGUE = """
    SELECT table_schema, table_name, column_name, data_type, udt_name, numeric_precision, numeric_scale
      FROM information_schema.columns
     WHERE table_schema IN ('dw', 'public')
     ORDER BY table_schema, table_name, ordinal_position"""


def _pg_type(data_type: str, udt_name: str, precision: int | None, scale: int | None) -> str:
    """information_schema's type, with an array's element type and a numeric's precision spelled out."""
    if data_type == "ARRAY":
        return udt_name.lstrip("_") + "[]"
    if data_type == "numeric" and precision is not None:
        return f"numeric({precision},{scale})"
    return data_type


@pytest.fixture(scope="module")
def catalogue(settings_env) -> dict[str, dict[str, dict[str, str]]]:
    """schema -> table -> column -> type (columns in table order), of the migrated warehouse and the OLTP DDL."""
    with scratch_database(settings_env, "dvd_ddl") as dsns:
        apply_migrations(dsns["loader"])
        conn = psycopg2.connect(dsns["loader"])
        try:
            with conn, conn.cursor() as cur:
                apply_ddl(cur)  # the OLTP tables, in schema public (the loader owns the database)
                cur.execute(CATALOGUE)
                rows = cur.fetchall()
        finally:
            conn.close()
    found: dict[str, dict[str, dict[str, str]]] = {}
    for schema, table, column, *kind in rows:
        found.setdefault(schema, {}).setdefault(table, {})[column] = _pg_type(*kind)
    return found


@pytest.mark.parametrize("asset", sorted(LOAD_SPECS))
def test_load_spec_columns_are_the_warehouse_ddls(catalogue, asset):
    table = catalogue["dw"].get(asset)
    assert table, f"dw.{asset} is missing"
    declared = {column: LOAD_TYPE_NAMES.get(kind, kind) for column, kind in LOAD_SPECS[asset].stage_columns}
    differ = {column: (kind, table.get(column, "missing")) for column, kind in declared.items()
              if table.get(column) != kind}
    assert not differ, f"dw.{asset}: LOAD_SPECS column -> (its type, the DDL's): {differ}"


def _parses(contract_type: str, pg_type: str) -> bool:
    """A value of the OLTP column's type is written as text the contract's type parses."""
    if contract_type.startswith("decimal("):
        precision, scale = map(int, contract_type[len("decimal("):-1].split(","))
        if not pg_type.startswith("numeric("):
            return False
        pg_precision, pg_scale = map(int, pg_type[len("numeric("):-1].split(","))
        return pg_scale == scale and pg_precision <= precision
    return pg_type in OLTP_TYPES[contract_type]


@pytest.mark.parametrize("table", list(TABLES))
def test_landing_contract_is_the_oltp_ddl(catalogue, table):
    oltp = catalogue["public"].get(table)
    assert oltp, f"the OLTP DDL (sql/oltp/) has no table {table}"
    assert list(oltp) == list(TABLES[table].columns), f"{table}: the OLTP DDL's columns (left) are not the contract's"
    differ = {c.name: (c.type, oltp[c.name]) for c in TABLES[table].schema if not _parses(c.type, oltp[c.name])}
    assert not differ, f"{table}: contract column -> (its type, the OLTP DDL's): {differ}"


def test_the_sample_oltp_database_gains_contract_columns_its_ddl_lacks(settings_env):
    """The sample database (not the DDL the comparison above reads) follows the contract: a contract
    column sql/oltp/ lacks is added with its type, so a new column can be exported before the DDL follows."""
    with scratch_database(settings_env, "dvd_follow") as dsns:
        conn = psycopg2.connect(dsns["loader"])
        try:
            with conn, conn.cursor() as cur:
                apply_ddl(cur)
                cur.execute("ALTER TABLE rental DROP COLUMN return_date; ALTER TABLE film DROP COLUMN rental_rate")
                added: list[str] = []
                follow_contract(cur, log=added.append)
                cur.execute(CATALOGUE)
                types = {(table, column): _pg_type(*kind) for schema, table, column, *kind in cur.fetchall()}
        finally:
            conn.close()
    assert any("rental.return_date" in line for line in added) and any("film.rental_rate" in line for line in added)
    assert types[("rental", "return_date")] == "timestamp with time zone"
    # Every contract column is there now (also one the DDL has never had), of a type the contract parses.
    differ = {(t, c.name): types.get((t, c.name), "missing") for t, spec in TABLES.items() for c in spec.schema
              if (t, c.name) not in types or not _parses(c.type, types[(t, c.name)])}
    assert not differ, differ
