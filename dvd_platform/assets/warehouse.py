"""Warehouse assets: dimensions, the category bridge and facts, loaded into PostgreSQL.

Spark computes the rows from the staged snapshots; the warehouse IO manager
loads them (COPY + one transaction per partition window). Dimensions come
before facts in the graph, and every asset here is daily-partitioned with a
single-run backfill policy: a range backfill is one Spark pass and one load.
"""

import functools
import hashlib
import json
from decimal import Decimal
from pathlib import Path

from dagster import AssetExecutionContext, AssetIn, Output, asset
from pyspark.sql import functions as F

from dvd_platform.automation import follows_checked_deps
from dvd_platform.checks.results import evaluations
from dvd_platform.checks.warehouse import fact_checks, scd2_check, warehouse_check_specs

from dvd_platform.contract import tables as tables_contract
from dvd_platform.io_managers.postgres import LOAD_SPECS, WarehouseLoad
from dvd_platform.package_files import SQL_DIR
from dvd_platform.partitions import daily_partitions, single_run, window_days
from dvd_platform.resources.lake import LakeResource
from dvd_platform.resources import lake_state
from dvd_platform.resources.lake_state import latest_inputs, read_latest
from dvd_platform.resources.spark import SparkResource
from dvd_platform.resources.thresholds import CheckThresholds
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.transforms import schemas
from dvd_platform.transforms import warehouse as T
from dvd_platform.warehouse import copy_in, stage
from dvd_platform.warehouse.fixups import report_fixups
from dvd_platform.warehouse.loader import load_sql_text
from dvd_platform.warehouse.window import Window

AS_OF = {"history": "as_of"}
COMMON = dict(
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    io_manager_key="warehouse_io_manager",
    kinds={"spark", "postgres"},
    tags={"dvd/engine": "spark"},
    owners=["team:data-platform"],
    # The sensor's and the schedule's runs load the warehouse with staging; automation loads the days
    # they left out: the good days of a range whose staged step failed a check on another day.
    automation_condition=follows_checked_deps(),
)


def _ins(**tables: dict) -> dict[str, AssetIn]:
    return {name: AssetIn(key=f"stg_{name}", metadata=meta) for name, meta in tables.items()}


@asset(ins=_ins(customer=AS_OF, address=AS_OF, city=AS_OF, country=AS_OF), group_name="warehouse",
       check_specs=warehouse_check_specs("dim_customer"), **COMMON)
def dim_customer(context: AssetExecutionContext, customer, address, city, country, lake: LakeResource,
                 warehouse: WarehouseResource):
    """Customers, SCD type 2: a new version when a customer's name, e-mail, address (or its city/country),
    store or status changes; the first version is valid from -infinity, keys derive from (customer_id, valid_from)."""
    sources = {"customer": customer, "address": address, "city": city, "country": country}
    yield Output(_scd2_load(context, lake, sources, T.customer_versions))
    yield from _table_wide(context, scd2_check(warehouse, "dim_customer"))
    yield from report_fixups(warehouse, "dim_customer")


@asset(ins=_ins(film=AS_OF, language=AS_OF, film_category=AS_OF, category=AS_OF), group_name="warehouse",
       check_specs=warehouse_check_specs("dim_film"), **COMMON)
def dim_film(context: AssetExecutionContext, film, language, film_category, category, lake: LakeResource,
             warehouse: WarehouseResource):
    """Films, SCD type 2 (title, rates, language, categories, ...), like dim_customer."""
    sources = {"film": film, "language": language, "film_category": film_category, "category": category}
    yield Output(_scd2_load(context, lake, sources, T.film_versions))
    yield from _table_wide(context, scd2_check(warehouse, "dim_film"))
    yield from report_fixups(warehouse, "dim_film")


def _scd2_load(context: AssetExecutionContext, lake: LakeResource, sources: dict, versions) -> WarehouseLoad:
    """The versions that start on the window's days, or none, without computing them, when no source table
    staged a row on those days (counted from the snapshots' Parquet footers).

    Why exact: a version starts on day d only for a member whose own row, or a row it denormalizes, was
    staged on d (the candidates of ``customer_versions`` / ``film_versions``). With none, the window has
    no versions, and the load still drops stale ones (a re-drop that removed a change). Why worth it:
    most days change no reference table, and the SCD2 plan costs about 15 Spark jobs per dimension."""
    days = window_days(context.partition_time_window)
    staged = {table: lake.rows_per_day("staged", f"stg_{table}", days) for table in sources}
    if not any(any(per_day.values()) for per_day in staged.values()):
        context.log.info(f"no staged row of {', '.join(sources)} on the window's days: no new versions, "
                         "the SCD2 computation skipped")
        return WarehouseLoad(None)
    return WarehouseLoad(versions(*sources.values(), days), expected_rows=_versions_bound(lake, staged, days))


def _versions_bound(lake: LakeResource, staged: dict[str, dict], days: list) -> int:
    """At most this many versions start on the window's days (``staged``: each source's staged rows per day, the
    member table first), from the snapshots' footers: a small load then goes through the client, not the
    executors (``WarehouseLoad.expected_rows``), which saved 1-2 s per dimension load.

    Why an upper bound: on a day when only the member table staged rows, only those members are candidates;
    on a day when a table it denormalizes staged rows, at most every member ever staged is (each candidate
    has at most one version a day)."""
    member, *others = staged
    members = None
    bound = 0
    for day in days:
        if any(staged[table][day] for table in others):
            if members is None:
                members = _all_staged_rows(lake, member)
            bound += members
        else:
            bound += staged[member][day]
    return bound


def _all_staged_rows(lake: LakeResource, table: str) -> int:
    """Rows of every staged snapshot of ``table`` (footers): at least its distinct keys. It lists every day's
    snapshot (most days of a reference table have no Parquet file), as ``latest_inputs`` does."""
    asset = f"stg_{table}"
    return sum(lake.rows_per_day("staged", asset, lake.snapshot_days("staged", asset)).values())


@asset(deps=["stg_film_category", "stg_category"], group_name="warehouse", **COMMON)
def bridge_film_category(context: AssetExecutionContext, lake: LakeResource, spark: SparkResource,
                         warehouse: WarehouseResource) -> WarehouseLoad:
    """Film <-> category bridge with weight 1/n (a film has 1 to 3 categories), for allocating revenue."""
    return _type1_load(context, lake, spark, warehouse, ("film_category", "category"), T.bridge_rows)


@asset(deps=["stg_store", "stg_staff", "stg_address", "stg_city", "stg_country"], group_name="warehouse", **COMMON)
def dim_store(context: AssetExecutionContext, lake: LakeResource, spark: SparkResource, warehouse: WarehouseResource):
    """Stores (type 1: latest state), with their manager's name and address; store_key = store_id."""
    yield Output(_type1_load(context, lake, spark, warehouse, ("store", "staff", "address", "city", "country"),
                             T.store_rows))
    yield from report_fixups(warehouse, "dim_store")


@asset(deps=["stg_staff"], group_name="warehouse", **COMMON)
def dim_staff(context: AssetExecutionContext, lake: LakeResource, spark: SparkResource, warehouse: WarehouseResource):
    """Staff (type 1: latest state); staff_key = staff_id."""
    yield Output(_type1_load(context, lake, spark, warehouse, ("staff",), T.staff_rows))
    yield from report_fixups(warehouse, "dim_staff")


def _type1_load(context: AssetExecutionContext, lake: LakeResource, spark: SparkResource,
                warehouse: WarehouseResource, tables: tuple[str, ...], rows) -> WarehouseLoad:
    """Each member's latest state, computed from the sources' latest staged state, or a skip when those
    inputs are the ones the asset's last successful load read.

    Why: a type-1 dimension does not depend on the window, only on every staged day of its sources, so
    most daily runs (whose reference tables did not change) would recompute and upsert the same rows
    (Spark every run: 1 to 3 s of a day's run). Why exact: the fingerprint names the version of every
    staged snapshot with rows (``latest_inputs``) and the code that turns them into rows (``_code``), and
    the load writes nothing else; a re-staged day, even with the same rows, recomputes. It assumes that
    only loads write ``dw`` (a manual edit of these tables stays until their sources next change)."""
    asset = context.asset_key.path[-1]
    versions = {table: latest_inputs(lake, table) for table in tables}
    inputs = hashlib.sha256(json.dumps(versions, sort_keys=True).encode() + _code(asset).encode()).hexdigest()
    if warehouse.last_inputs(asset) == inputs:
        context.log.info(f"{', '.join(tables)}: no staged snapshot changed since {asset}'s last load, "
                         "which is kept (load skipped, no Spark job)")
        return WarehouseLoad(None, inputs=inputs, skip=True)
    return WarehouseLoad(rows(*(read_latest(lake, spark.session, table) for table in tables)), inputs=inputs,
                         expected_rows=type1_bound(lake, tables))


def type1_bound(lake: LakeResource, tables: tuple[str, ...]) -> int:
    """At most this many rows in a type-1 load (``WarehouseLoad.expected_rows``, as ``_versions_bound``): one per
    key of its first table's latest state (the others are joined on their keys, one latest row each), so at
    most the rows of that table's staged snapshots."""
    return _all_staged_rows(lake, tables[0])


#: The modules a type-1 load's rows depend on besides its inputs (with its stage columns, its load SQL and
#: the migrations): a deploy that changes any of them reloads each type-1 table once.
_CODE_MODULES = (T, schemas, lake_state, tables_contract, copy_in, stage)


@functools.cache
def _code(asset: str) -> str:
    """sha256 of the code that turns ``asset``'s inputs into its rows."""
    digest = hashlib.sha256(repr(LOAD_SPECS[asset]).encode() + load_sql_text(asset).encode())
    for module in _CODE_MODULES:
        digest.update(Path(module.__file__).read_bytes())
    for migration in sorted(SQL_DIR.iterdir(), key=lambda f: f.name):
        if migration.name.endswith(".sql"):
            digest.update(migration.read_bytes())
    return digest.hexdigest()


def _table_wide(context: AssetExecutionContext, check) -> list:
    """A check of the whole table (one query), reported on every day of the window."""
    return list(evaluations(context, {day.isoformat(): [check] for day in window_days(context.partition_time_window)}))


def _quarantined(lake: LakeResource, table: str, context: AssetExecutionContext) -> int:
    """The window's quarantined rows of ``table``, from the quarantine snapshots' footers (no Spark job)."""
    return sum(lake.rows_per_day("quarantine", f"stg_{table}", window_days(context.partition_time_window)).values())


def _staged_per_day(lake: LakeResource, table: str, context: AssetExecutionContext) -> dict:
    """Staged rows per day of the window, from the snapshots' footers: the facts do not count their input
    again with Spark (the reconciliation checks compare these with what the load left in the warehouse)."""
    return lake.rows_per_day("staged", f"stg_{table}", window_days(context.partition_time_window))


def _window(context: AssetExecutionContext) -> Window:
    days = window_days(context.partition_time_window)
    return Window(days[0], days[-1])


@asset(ins=_ins(rental={}, inventory=AS_OF), deps=[dim_customer, dim_film, dim_store, dim_staff],
       group_name="warehouse", check_specs=warehouse_check_specs("fact_rental"), **COMMON)
def fact_rental(context: AssetExecutionContext, rental, inventory, lake: LakeResource,
                warehouse: WarehouseResource, check_thresholds: CheckThresholds):
    """One row per rental, bound to the dimension versions valid at rental time. The store is the
    inventory item's store (as of the rental's day). Loading a rental completes its late-arriving payments."""
    per_day = _staged_per_day(lake, "rental", context)
    rows = T.rental_rows(rental, inventory) if any(per_day.values()) else None  # no rentals: no Spark job
    yield Output(WarehouseLoad(rows, _quarantined(lake, "rental", context), expected_rows=sum(per_day.values())))
    yield from _per_day(context, fact_checks(warehouse, "fact_rental", _window(context), per_day,
                                             thresholds=check_thresholds))
    yield from report_fixups(warehouse, "fact_rental")


@asset(ins=_ins(payment={}), deps=[fact_rental, dim_customer, dim_staff], group_name="warehouse",
       check_specs=warehouse_check_specs("fact_payment"), **COMMON)
def fact_payment(context: AssetExecutionContext, payment, lake: LakeResource,
                 warehouse: WarehouseResource, check_thresholds: CheckThresholds):
    """One row per payment (the seeds' fact_sales at payment grain), with the rental's role-played
    date keys, film and store; unknown (-1) until the rental loads, then completed."""
    per_day = _staged_per_day(lake, "payment", context)
    amounts, rows = {}, None  # no payments in the window: no Spark job
    if any(per_day.values()):
        stats = payment.groupBy("dt").agg(F.sum("amount").alias("amount")).collect()
        amounts = {r["dt"]: r["amount"] if r["amount"] is not None else Decimal(0) for r in stats}
        rows = T.payment_rows(payment)
    yield Output(WarehouseLoad(rows, _quarantined(lake, "payment", context), expected_rows=sum(per_day.values())))
    yield from _per_day(context, fact_checks(warehouse, "fact_payment", _window(context), per_day, amounts,
                                             thresholds=check_thresholds))


def _per_day(context: AssetExecutionContext, day_results: dict) -> list:
    return list(evaluations(context, {day.isoformat(): results for day, results in day_results.items()}))


warehouse_assets = [dim_customer, dim_film, bridge_film_category, dim_store, dim_staff, fact_rental, fact_payment]
