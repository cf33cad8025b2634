"""A plain-SQL reference for the pipeline benchmark: the same job without Spark or Dagster.

Issue 19 asks that the platform's whole-range run be measured against "the same pagila job done
with plain SQL (``psql \\copy`` of the drops into stage tables + the platform's own ``sql/load``
statements, no Spark, no Dagster), measured in the same benchmark run: platform / reference <= 5x".
Without such a reference a figure like "364 s for 213 days" says nothing about how much of it is
the work itself and how much is the machinery around it.

What ``run_reference`` does, on the benchmark stack's PostgreSQL cluster:

Not timed (the platform's seeding and its cluster's bootstrap are not timed either):
    a fresh database (``dvd_reference``, owned by the loader role, with the ``dw``/``dw_audit``
    schemas as the stack's bootstrap makes them) migrated by the platform's own
    ``apply_migrations`` (its seconds are reported apart as ``migrate_seconds``; the platform
    applies them inside its range run); the source's drop files of every day written to a temp
    dir by ``source.write_days``; empty text tables for the raw rows.
Timed (``wall_seconds``, and per phase):
    ``copy``
        ONE ``psql`` process running one ``\\copy ... (FORMAT csv, HEADER MATCH)`` per drop file
        of every staged table (actor and film_actor are not staged by the platform either) into
        UNLOGGED text tables, each row tagged with its drop day.
    ``typed``
        The text cast per the contract's types (``contract/tables.py``), trimmed, empty = NULL, as
        the platform's staging parses it (``transforms/staging.py``).
    ``verify``
        The assumptions below, checked; a violation raises ``ReferenceAssumptionError``.
    ``stage``
        Per load, an UNLOGGED table in ``dw_stage`` shaped exactly as
        ``LOAD_SPECS[asset].stage_columns``, filled with what ``transforms/warehouse.py`` computes.
    ``load``
        The platform's own ``sql/load/<asset>.sql``, unmodified, formatted as the loader formats
        it (``{stage}`` the stage table, ``{target}`` the partition parent) and run with the
        window's ``Window.params`` through the loader's ``statement_runner``, in one SERIALIZABLE
        transaction per load, after ``dw.ensure_month_partitions`` for partitioned targets; in the
        asset graph's order, the monthly mart last over the months the days touch (as
        ``runner.run_plan`` launches it).

Limits (what the reference does NOT do, so it stays plain SQL):

* **One snapshot only.** Every reference (non-event) row must be in the first day's drop, one row
  per key: then each SCD2 member has a single state, so one version valid from ``-infinity`` with
  ``version_day`` = the first day (what ``customer_versions``/``film_versions`` give a member first
  seen that day), and type-1 "latest" and inventory "as of the rental day" are that row. The
  pagila folder (``FolderSource``) is such a snapshot; the generator's later days change reference
  rows, and the reference then refuses (``ReferenceAssumptionError``) instead of computing
  something else. Event rows must have unique, non-null keys (the platform would de-duplicate or
  quarantine them).
* **No quarantine.** A value that does not cast fails the reference (the platform quarantines it).
* **Keys.** SCD2 keys are the natural ids, not Spark's xxhash keys: ``compare_warehouses`` compares
  the two warehouses by natural keys only.
* **No month swap, locks, audit rows or stage validation.** ``fact_payment`` takes the delete/insert
  path on the partition parent for the whole window (the loader swaps whole months); no advisory
  locks, ``dw_audit.load_log`` rows or stage checks (no concurrency, nothing to audit).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from time import perf_counter

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import ISOLATION_LEVEL_SERIALIZABLE, make_dsn, parse_dsn

from dvd_platform.contract.tables import STAGED_TABLES, TABLES
from dvd_platform.dev.stack.postgres import find_pg_bindir
from dvd_platform.io_managers.postgres import LOAD_SPECS
from dvd_platform.warehouse.loader import SQL_LOAD_SPECS, load_sql
from dvd_platform.warehouse.migrations import apply_migrations
from dvd_platform.warehouse.replace import statement_runner
from dvd_platform.warehouse.stage import STAGE_SCHEMA
from dvd_platform.warehouse.window import Window

REFERENCE_DB = "dvd_reference"
RAW = "ref_raw"  # the drops' text, one table per staged table, plus the drop day
TYPED = "ref_stg"  # the same rows typed per the contract (the platform's staged layer)
DAY_SETTING = "ref.dt"  # the drop day a \copy's rows get (the raw tables' default for dt)
#: Contract type -> PostgreSQL type (``contract/tables.py``; decimal(p,s) maps to numeric(p,s)).
PG_TYPES = {"int": "int", "string": "text", "timestamp": "timestamptz", "date": "date", "bool": "boolean",
            "text[]": "text[]"}

#: What ``transforms/warehouse.py`` computes for each load, under the one-snapshot assumption, in the
#: order of ``LOAD_SPECS[asset].stage_columns`` (inserted by that column list, so a count mismatch fails).
STAGE_SELECTS: dict[str, str] = {
    # customer_versions: one version per customer, denormalized with its address, city and country.
    "dim_customer": """
        SELECT c.customer_id, c.customer_id, c.first_name, c.last_name, c.email, a.address, a.district, ci.city,
               co.country, a.postal_code, a.phone, c.store_id, c.activebool, c.create_date,
               '-infinity'::timestamptz, c.dt
          FROM ref_stg.customer c
          LEFT JOIN ref_stg.address a ON a.address_id = c.address_id
          LEFT JOIN ref_stg.city ci ON ci.city_id = a.city_id
          LEFT JOIN ref_stg.country co ON co.country_id = ci.country_id""",
    # film_versions: categories are the sorted distinct names of the film's links (array_sort(collect_set)).
    "dim_film": """
        SELECT f.film_id, f.film_id, f.title, f.description, f.release_year, l.name, coalesce(fc.categories, '{}'),
               f.rating, f.length, f.rental_duration, f.rental_rate, f.replacement_cost, f.special_features,
               '-infinity'::timestamptz, f.dt
          FROM ref_stg.film f
          LEFT JOIN ref_stg.language l ON l.language_id = f.language_id
          LEFT JOIN (SELECT fc.film_id, array_agg(DISTINCT cat.name COLLATE "C" ORDER BY cat.name COLLATE "C")
                            AS categories
                       FROM ref_stg.film_category fc JOIN ref_stg.category cat USING (category_id)
                      GROUP BY fc.film_id) fc ON fc.film_id = f.film_id""",
    # store_rows: Spark's concat_ws of a missing manager is NULL (left join), PostgreSQL's would be ''.
    "dim_store": """
        SELECT s.store_id, s.store_id, s.manager_staff_id,
               CASE WHEN m.staff_id IS NOT NULL THEN concat_ws(' ', m.first_name, m.last_name) END,
               a.address, ci.city, co.country
          FROM ref_stg.store s
          LEFT JOIN ref_stg.staff m ON m.staff_id = s.manager_staff_id
          LEFT JOIN ref_stg.address a ON a.address_id = s.address_id
          LEFT JOIN ref_stg.city ci ON ci.city_id = a.city_id
          LEFT JOIN ref_stg.country co ON co.country_id = ci.country_id""",
    "dim_staff": """
        SELECT staff_id, staff_id, first_name, last_name, email, store_id, active, username FROM ref_stg.staff""",
    "bridge_film_category": """
        SELECT DISTINCT fc.film_id, cat.name
          FROM ref_stg.film_category fc JOIN ref_stg.category cat USING (category_id)""",
    # rental_rows: the inventory's film and store as of the rental's day.
    "fact_rental": """
        SELECT r.rental_id, r.rental_date, r.return_date, r.inventory_id, r.customer_id, r.staff_id, i.film_id,
               i.store_id
          FROM ref_stg.rental r LEFT JOIN ref_stg.inventory i ON i.inventory_id = r.inventory_id AND i.dt <= r.dt""",
    "fact_payment": """
        SELECT payment_id, payment_date, customer_id, staff_id, rental_id, amount FROM ref_stg.payment""",
}


class ReferenceAssumptionError(RuntimeError):
    """The drops are not one snapshot (or have duplicate/missing keys): the reference would compute
    something other than the platform, so it refuses."""


@dataclass(frozen=True)
class Phases:
    """Seconds per timed phase, in the order they ran."""

    seconds: dict[str, float]

    def timed(self, name: str, work: Callable[[], object]) -> object:
        started = perf_counter()
        result = work()
        self.seconds[name] = perf_counter() - started
        return result


# --------------------------------------------------------------------------- the database


def reference_dsn(loader_dsn: str) -> str:
    """The loader's DSN, pointed at the reference database."""
    return make_dsn(loader_dsn, dbname=REFERENCE_DB)


def create_database(admin_dsn: str, loader_dsn: str) -> str:
    """A fresh reference database owned by the loader, its schemas made as the stack's bootstrap makes the
    warehouse's (``dev/stack/postgres.py``); returns the loader's DSN for it."""
    loader = sql.Identifier(parse_dsn(loader_dsn)["user"])
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(REFERENCE_DB)))
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(REFERENCE_DB), loader))
    conn.close()
    conn = psycopg2.connect(make_dsn(admin_dsn, dbname=REFERENCE_DB))
    conn.autocommit = True
    with conn.cursor() as cur:
        for schema in ("dw", "dw_audit"):
            cur.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema), loader))
    conn.close()
    return reference_dsn(loader_dsn)


def drop_database(admin_dsn: str) -> None:
    """Drop the reference database, so that the sections after it find the cluster as the range left it."""
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(REFERENCE_DB)))
    conn.close()


def connect(dsn: str):
    """A UTC session, as the warehouse resource opens them (days and months are cut in UTC)."""
    return psycopg2.connect(dsn, options="-c timezone=UTC", application_name="dvd_reference")


def create_raw_tables(conn) -> None:
    """One UNLOGGED text table per staged table; ``dt`` defaults to the day the copy script sets."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(RAW)))
        for table in STAGED_TABLES:
            columns = [sql.SQL("{} text").format(sql.Identifier(c)) for c in TABLES[table].columns]
            cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({}, dt date NOT NULL DEFAULT current_setting({})::date)")
                        .format(sql.Identifier(RAW, table), sql.SQL(", ").join(columns), sql.Literal(DAY_SETTING)))
    conn.commit()


# --------------------------------------------------------------------------- the timed phases


def copy_script(drops: Path, days: list[date]) -> str:
    """The psql script: per day, set the day, then ``\\copy`` each staged table's drop file (its header
    checked against the contract's columns and skipped: ``HEADER MATCH``)."""
    lines = ["\\set ON_ERROR_STOP on"]
    for day in days:
        lines.append(f"SET {DAY_SETTING} = '{day.isoformat()}';")
        for table in STAGED_TABLES:
            path = drops / table / f"dt={day.isoformat()}" / f"{table}.csv"
            if "'" in str(path) or not path.is_file():
                raise RuntimeError(f"{path}: no such drop file (or a quote in its path)")
            columns = ", ".join(TABLES[table].columns)
            lines.append(f"\\copy {RAW}.{table} ({columns}) FROM '{path}' WITH (FORMAT csv, HEADER MATCH)")
    return "\n".join(lines) + "\n"


def run_psql(dsn: str, script: Path) -> None:
    """Run ``script`` in ONE psql process (connection settings through libpq's environment, not argv)."""
    params = parse_dsn(dsn)
    env = {**os.environ, "PGHOST": params["host"], "PGPORT": str(params["port"]), "PGUSER": params["user"],
           "PGPASSWORD": params["password"], "PGDATABASE": params["dbname"], "PGAPPNAME": "dvd_reference_copy",
           "PGTZ": "UTC"}
    psql = str(find_pg_bindir() / "psql")  # the cluster's own client, as the stack finds its server
    done = subprocess.run([psql, "-X", "-q", "-f", str(script)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"psql {script} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def typed_column(name: str, kind: str) -> sql.Composable:
    """A raw text column parsed as the platform's staging parses it: trimmed, empty = NULL, then cast."""
    value = sql.SQL("nullif(trim({}), '')").format(sql.Identifier(name))
    pg_type = f"numeric{kind[7:]}" if kind.startswith("decimal(") else PG_TYPES[kind]
    if pg_type == "text":
        return sql.SQL("{} AS {}").format(value, sql.Identifier(name))
    return sql.SQL("{}::{} AS {}").format(value, sql.SQL(pg_type), sql.Identifier(name))


def build_typed(conn) -> None:
    """The typed copy of every raw table (the staged layer's rows, plus their drop day)."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(TYPED)))
        for table in STAGED_TABLES:
            columns = [typed_column(name, kind) for name, kind in TABLES[table].types.items()]
            cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT {}, dt FROM {}").format(
                sql.Identifier(TYPED, table), sql.SQL(", ").join(columns), sql.Identifier(RAW, table)))
    conn.commit()


def verify_snapshot(conn, first_day: date) -> None:
    """Refuse drops the reference would get wrong: per table, rows with a NULL key or a key seen twice (across
    all days), and for reference tables rows dropped on another day than the first."""
    parts = []
    for table in STAGED_TABLES:
        spec = TABLES[table]
        key = sql.SQL(", ").join(sql.Identifier(c) for c in spec.primary_key)
        null_key = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in spec.primary_key)
        later = sql.SQL("0") if spec.is_event else sql.SQL("count(*) FILTER (WHERE dt <> {})").format(
            sql.Literal(first_day))
        parts.append(sql.SQL("SELECT {name}, count(*) FILTER (WHERE {null_key}), count(*) - count(DISTINCT ({key}, 0)),"
                             " {later} FROM {table}").format(
            name=sql.Literal(table), null_key=null_key, key=key, later=later, table=sql.Identifier(TYPED, table)))
    with conn.cursor() as cur:
        cur.execute(sql.SQL(" UNION ALL ").join(parts))
        bad = [row for row in cur.fetchall() if any(row[1:])]
    conn.commit()
    if bad:
        raise ReferenceAssumptionError(
            "the plain-SQL reference handles one snapshot of the reference tables (all in the first day's drop, "
            "one row per key) and unique non-null event keys; these drops are not that, so it would compute "
            "something other than the platform: " + "; ".join(
                f"{t}: {n} null keys, {d} repeated keys, {l} rows on later days" for t, n, d, l in bad))


def stage_table(asset: str) -> sql.Identifier:
    return sql.Identifier(STAGE_SCHEMA, f"{asset}_reference")


def build_stage(conn, asset: str) -> int:
    """The load's stage table, shaped exactly as ``LOAD_SPECS[asset].stage_columns``, filled from the typed
    rows; its rows."""
    columns = LOAD_SPECS[asset].stage_columns
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(stage_table(asset), sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in columns)))
        cur.execute(sql.SQL("INSERT INTO {} ({}) ").format(
            stage_table(asset), sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns))
            + sql.SQL(STAGE_SELECTS[asset]))
        rows = cur.rowcount
    conn.commit()
    return rows


def apply_load(conn, asset: str, window: Window) -> int:
    """``sql/load/<asset>.sql`` as the loader applies it: partitions ensured first (READ COMMITTED, as
    ``loader._ensure_partitions``), then the statement formatted with the stage and target and run with the
    window's params in one SERIALIZABLE transaction; the rows it reports loaded."""
    spec = LOAD_SPECS.get(asset) or SQL_LOAD_SPECS[asset]
    if spec.partition_parent:
        with conn.cursor() as cur:
            cur.execute("SELECT dw.ensure_month_partitions(%s, %s, %s)",
                        (spec.partition_parent, window.params["window_start"], window.params["window_end"]))
        conn.commit()
    statement = load_sql(asset)
    if spec.stage_columns:  # the marts have no stage and are run unformatted, as run_sql_load runs them
        target = sql.Identifier(*spec.partition_parent.split(".")) if spec.partition_parent else None
        statement = statement.format(stage=stage_table(asset), target=target)
    conn.set_session(isolation_level=ISOLATION_LEVEL_SERIALIZABLE)
    try:
        with conn.cursor() as cur:
            rows = statement_runner(statement, window)(cur)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.set_session(isolation_level=None)
    return rows


def load_order() -> list[tuple[str, bool]]:
    """The loads in the asset graph's topological order, each with whether it is monthly; the monthly ones
    last (``runner.run_plan`` launches them in a second run, after the days'). Read from the platform's
    definitions, so a new dependency between loads is followed here too."""
    from dagster import AssetKey

    from dvd_platform.definitions import defs
    from dvd_platform.partitions import monthly_partitions

    graph = defs.resolve_asset_graph()
    loads = set(LOAD_SPECS) | set(SQL_LOAD_SPECS)
    ordered = [key.to_user_string() for key in graph.toposorted_asset_keys if key.to_user_string() in loads]
    if set(ordered) != loads:
        raise RuntimeError(f"loads missing from the asset graph: {sorted(loads - set(ordered))}")
    monthly = {name for name in ordered if graph.get(AssetKey(name)).partitions_def == monthly_partitions}
    return [(name, False) for name in ordered if name not in monthly] + [(name, True) for name in ordered
                                                                         if name in monthly]


def month_window(first_day: date, last_day: date) -> Window:
    """The whole months ``first_day..last_day`` touches: the monthly mart's run window."""
    following = (last_day.replace(day=1) + timedelta(32)).replace(day=1)
    return Window(first_day.replace(day=1), following - timedelta(1))


# --------------------------------------------------------------------------- the whole reference


def prepare(admin_dsn: str, loader_dsn: str, source, days: list[date], drops: Path) -> tuple[str, float]:
    """Not timed: the fresh database, migrated, its raw tables, and the drop files; the DSN and the
    migrations' seconds."""
    dsn = create_database(admin_dsn, loader_dsn)
    started = perf_counter()
    apply_migrations(dsn)
    migrate_seconds = perf_counter() - started
    conn = connect(dsn)
    try:
        create_raw_tables(conn)
    finally:
        conn.close()
    source.write_days(days, drops)
    return dsn, migrate_seconds


def run_reference(admin_dsn: str, loader_dsn: str, source, first_day: date, last_day: date) -> dict:
    """The plain-SQL job over ``first_day..last_day`` of ``source`` in a fresh database (module docstring);
    its wall seconds, per phase, and the rows each stage and load reported. Raises
    ``ReferenceAssumptionError`` for drops it cannot reproduce."""
    days = [first_day + timedelta(n) for n in range((last_day - first_day).days + 1)]
    order = load_order()
    with tempfile.TemporaryDirectory(prefix="dvd-sql-reference-") as scratch:
        drops, script = Path(scratch) / "drops", Path(scratch) / "copy.sql"
        dsn, migrate_seconds = prepare(admin_dsn, loader_dsn, source, days, drops)
        script.write_text(copy_script(drops, days))
        conn = connect(dsn)
        phases, rows = Phases({}), {}
        started = perf_counter()
        try:
            phases.timed("copy", lambda: run_psql(dsn, script))
            phases.timed("typed", lambda: build_typed(conn))
            phases.timed("verify", lambda: verify_snapshot(conn, first_day))
            for asset in (name for name, _ in order if name in LOAD_SPECS):
                rows[f"stage:{asset}"] = phases.timed(f"stage:{asset}", lambda a=asset: build_stage(conn, a))
            for asset, monthly in order:
                window = month_window(first_day, last_day) if monthly else Window(first_day, last_day)
                rows[f"load:{asset}"] = phases.timed(f"load:{asset}", lambda a=asset, w=window: apply_load(conn, a, w))
            wall = perf_counter() - started
        finally:
            conn.close()
    return {"wall_seconds": wall, "phases": phases.seconds, "rows": rows, "load_order": [name for name, _ in order],
            "migrate_seconds_not_timed": migrate_seconds, "days": len(days),
            "drop_files": len(days) * len(STAGED_TABLES)}


# --------------------------------------------------------------------------- did it do the same job?

#: Counted per table by the server itself (``query_to_xml`` runs the count it is given), so every table of
#: ``dw`` is compared, partitions included, without listing them here.
_COUNT = "(xpath('/row/c/text()', query_to_xml({query}, false, true, '')))[1]::text::bigint"

#: Per day: a fact table's rows, their SCD2 keys replaced by the (natural id, valid_from) of the version
#: they are bound to, fingerprinted.
_FACT_BY_DAY = """
        SELECT f.{day}, count(*), md5(string_agg(jsonb_build_array(
                   to_jsonb(f) - 'customer_key' - 'film_key', c.customer_id, c.valid_from, d.film_id,
                   d.valid_from)::text,
                   ',' ORDER BY f.{id}, f.{ts}))
          FROM dw.{table} f JOIN dw.dim_customer c USING (customer_key) JOIN dw.dim_film d USING (film_key)
         GROUP BY 1"""

#: name -> (how many leading columns are the key, the query). Rows are matched by natural keys only: the
#: reference's SCD2 keys are the natural ids, the platform's hash (id, valid_from).
COMPARISONS: dict[str, tuple[int, str]] = {
    "row_counts": (1, "SELECT c.relname, " + _COUNT.format(query="format('SELECT count(*) AS c FROM dw.%I', c.relname)")
                   + " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                     " WHERE n.nspname = 'dw' AND c.relkind IN ('r', 'p')"),
    "fact_totals": (1, "SELECT 'fact_rental', count(*), NULL::numeric FROM dw.fact_rental"
                       " UNION ALL SELECT 'fact_payment', count(*), sum(amount) FROM dw.fact_payment"),
    "unknown_members": (2, "SELECT table_name::text, column_name::text, " + _COUNT.format(
        query="format('SELECT count(*) AS c FROM dw.%I WHERE %I = -1', table_name, column_name)")
        + " FROM information_schema.columns WHERE table_schema = 'dw'"
          " AND table_name IN ('fact_rental', 'fact_payment') AND column_name LIKE '%\\_key'"),
    "mart_daily_revenue": (2, "SELECT date, store_id, rentals, payments, revenue, active_customers"
                              " FROM dw.mart_daily_revenue"),
    "mart_category_monthly": (2, "SELECT month, category, rentals, revenue FROM dw.mart_category_monthly"),
    "bridge_film_category": (2, "SELECT film_id, category, weight FROM dw.bridge_film_category"),
    "dim_customer": (2, "SELECT customer_id, valid_from, (to_jsonb(d) - 'customer_key')::text FROM dw.dim_customer d"),
    "dim_film": (2, "SELECT film_id, valid_from, (to_jsonb(d) - 'film_key')::text FROM dw.dim_film d"),
    "dim_store": (1, "SELECT store_id, to_jsonb(d)::text FROM dw.dim_store d"),
    "dim_staff": (1, "SELECT staff_id, to_jsonb(d)::text FROM dw.dim_staff d"),
    "fact_rental_by_day": (1, _FACT_BY_DAY.format(table="fact_rental", day="rental_date_key", id="rental_id",
                                                  ts="rental_ts")),
    "fact_payment_by_day": (1, _FACT_BY_DAY.format(table="fact_payment", day="payment_date_key", id="payment_id",
                                                   ts="payment_ts")),
}
SHOWN = 10  # differing keys shown per comparison


def _plain(value: object) -> object:
    """A value as JSON shows it (numbers and booleans kept, the rest as text)."""
    return value if value is None or isinstance(value, (bool, int)) else str(value)


def comparison_rows(dsn: str) -> dict[str, dict[tuple, tuple]]:
    """Each comparison's rows in one warehouse, as key -> values."""
    conn = connect(dsn)
    try:
        found = {}
        with conn.cursor() as cur:
            for name, (width, query) in COMPARISONS.items():
                cur.execute(query)
                found[name] = {row[:width]: row[width:] for row in cur.fetchall()}
        conn.rollback()
        return found
    finally:
        conn.close()


def differences(platform: dict[tuple, tuple], reference: dict[tuple, tuple]) -> dict | None:
    """The keys whose values differ or that one side lacks (None when none)."""
    keys = sorted((k for k in platform.keys() | reference.keys() if platform.get(k) != reference.get(k)), key=str)
    if not keys:
        return None
    shown = [{"key": [_plain(v) for v in k],
              "platform": None if k not in platform else [_plain(v) for v in platform[k]],
              "reference": None if k not in reference else [_plain(v) for v in reference[k]]} for k in keys[:SHOWN]]
    return {"keys_differing": len(keys), "examples": shown}


def compare_warehouses(platform_dsn: str, reference_dsn: str) -> dict:
    """Whether the platform's warehouse and the reference's hold the same result, compared by natural keys
    (``COMPARISONS``); the differences, and the facts' totals on both sides."""
    platform, reference = comparison_rows(platform_dsn), comparison_rows(reference_dsn)
    found = {name: differences(platform[name], reference[name]) for name in COMPARISONS}
    found = {name: diff for name, diff in found.items() if diff}
    totals = {side: {k[0]: [_plain(v) for v in values] for k, values in rows["fact_totals"].items()}
              for side, rows in (("platform", platform), ("reference", reference))}
    if not all(totals["platform"].get(fact, [0])[0] for fact in ("fact_rental", "fact_payment")):
        found["empty"] = "the platform's warehouse has no rentals or no payments: nothing was compared"
    return {"same_result": not found, "differences": found, "fact_totals": totals,
            "compared_keys": {name: len(platform[name].keys() | reference[name].keys()) for name in COMPARISONS}}
