"""Data-quality checks: every check fails on crafted bad data and passes on good data; a blocking
check stops its dependents for the day; the sample's quirks are reported as WARN with their counts;
the marts' automation waits for their upstream blocking checks.

The staged (Spark) checks run on crafted DataFrames through ``run_staged_checks`` against a
private lake; the warehouse checks and the YAML rules run against a scratch PostgreSQL database
(migrated, dropped afterwards), so the session warehouse other tests read is not touched.
Crafted drops for end-to-end runs use October 2022 days and ids >= 800000.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg2.errors
import pytest
import yaml
from pyspark.sql import functions as F
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    AssetSpec,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    evaluate_automation_conditions,
    materialize,
)

from dvd_platform.checks import declarative
from dvd_platform.checks.declarative import RuleError, load_sql_checks, parse_expectation
from dvd_platform.checks.staged import _quarantine_check, row_conditions, run_staged_checks, staged_check_specs
from dvd_platform.checks.warehouse import fact_checks, mart_checks, scd2_check, warehouse_check_specs
from dvd_platform.contract.tables import STAGED_TABLES, TABLES
from dvd_platform.resources.lake import LakeResource
from dvd_platform.resources.thresholds import CheckThresholds
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.partitions import daily_partitions
from dvd_platform.tags import RANGE_END_TAG, RANGE_START_TAG
from dvd_platform.settings import ENV_VARS
from dvd_platform.transforms.schemas import staged_schema
from dvd_platform.transforms.staging import day_profile
from dvd_platform.warehouse.migrations import apply_migrations
from dvd_platform.warehouse.window import Window
from dvd_platform_tests.crafted import drop, row as crafted_row
from dvd_platform_tests.scratch import scratch_database
from dvd_platform_tests.spark_session import live_spark

ERROR, WARN = AssetCheckSeverity.ERROR, AssetCheckSeverity.WARN
UTC = timezone.utc


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def meta(result, key: str):
    value = result.metadata[key]
    return getattr(value, "value", value)


def by_name(results) -> dict:
    out = {r.check_name: r for r in results}
    assert len(out) == len(results), "a check reported twice"
    return out


def assert_outcome(result, passed: bool, severity: AssetCheckSeverity, offending: int | None = None):
    assert result.passed is passed, (result.check_name, result.metadata)
    assert result.severity == severity, result.check_name
    if offending is not None:
        assert meta(result, "offending_rows") == offending, (result.check_name, result.metadata)
    if not passed and offending:
        assert "samples" in result.metadata or result.check_name in {"schema_contract", "quarantine_ratio",
                                                                     "reconciliation", "freshness",
                                                                     "totals_match_facts"}, result.check_name


# ============================================================================ staged (Spark) checks

D0 = date(2022, 10, 1)  # reference snapshot day
D = date(2022, 10, 5)  # the checked window
LATER = date(2022, 10, 20)  # a snapshot after the window: must not resolve keys of D


def frame(spark, table: str, rows: list[dict]):
    columns = list(TABLES[table].columns) + ["dt"]
    unknown = {c for r in rows for c in r} - set(columns)
    assert not unknown, unknown
    return spark.createDataFrame([tuple(r.get(c) for c in columns) for r in rows], staged_schema(table))


def rental(rental_id, inventory_id=800001, customer_id=800001, staff_id=800001, at="2022-10-05 10:00",
           returned="2022-10-07 10:00", dt=D) -> dict:
    return {"rental_id": rental_id, "rental_date": ts(at) if at else None, "inventory_id": inventory_id,
            "customer_id": customer_id, "return_date": ts(returned) if returned else None, "staff_id": staff_id,
            "last_update": ts("2022-10-05 10:00"), "dt": dt}


def payment(payment_id, rental_id=800001, customer_id=800001, staff_id=800001, amount="2.99",
            at="2022-10-05 12:00", dt=D) -> dict:
    return {"payment_id": payment_id, "customer_id": customer_id, "staff_id": staff_id, "rental_id": rental_id,
            "amount": Decimal(amount) if amount is not None else None, "payment_date": ts(at), "dt": dt}


def film(film_id, title="A FILM", rate="2.99", cost="19.99", length=90, language_id=1, dt=D0) -> dict:
    return {"film_id": film_id, "title": title, "language_id": language_id, "rental_duration": 3,
            "rental_rate": Decimal(rate), "length": length, "replacement_cost": Decimal(cost), "rating": "PG",
            "last_update": ts("2022-10-01 00:00"), "special_features": ["Trailers"], "dt": dt}


def inventory(inventory_id, film_id=800001, store_id=800001, dt=D0) -> dict:
    return {"inventory_id": inventory_id, "film_id": film_id, "store_id": store_id,
            "last_update": ts("2022-10-01 00:00"), "dt": dt}


NO_QUARANTINE = {D: {"rows_in": 10, "rows_out": 10, "rows_quarantined": 0}}
MUCH_QUARANTINE = {D: {"rows_in": 100, "rows_out": 90, "rows_quarantined": 10}}  # 10 % > 5 %: ERROR
LITTLE_QUARANTINE = {D: {"rows_in": 1000, "rows_out": 999, "rows_quarantined": 1}}  # 0.1 %: WARN


@pytest.fixture(scope="module")
def reference_lake(tmp_path_factory, stack) -> LakeResource:
    """A private lake with the reference snapshots the FK and paid-before-rental checks read."""
    spark = live_spark()
    lake = LakeResource(root=str(tmp_path_factory.mktemp("checks-lake")))
    refs = {
        "inventory": [inventory(800001, dt=D0), inventory(800009, dt=LATER)],
        "customer": [{"customer_id": 800001, "store_id": 800001, "first_name": "A", "last_name": "B",
                      "address_id": 1, "dt": D0}],
        "staff": [{"staff_id": 800001, "first_name": "S", "last_name": "T", "store_id": 800001, "dt": D0}],
        "film": [film(800001, dt=D0)],
        "store": [{"store_id": 800001, "address_id": 1, "dt": D0}],
        # Rental 800001 has an older version (D0) with another rental_date: a payment is compared with the
        # latest (D's, 10:00), once.
        "rental": [rental(800001, at="2022-10-05 13:00", dt=D0), rental(800001, dt=D),
                   rental(800099, at="2022-10-20 10:00", dt=LATER)],
    }
    for table, rows in refs.items():
        for day in sorted({r["dt"] for r in rows}):
            lake.write_days(frame(spark, table, [r for r in rows if r["dt"] == day]), "staged", f"stg_{table}", [day])
    return lake


@pytest.fixture
def lake(reference_lake) -> LakeResource:
    return reference_lake


def staged_run(spark, lake, tmp_path, table, rows, counts=NO_QUARANTINE, snapshot=None) -> dict:
    """Write the rows as the window's snapshot (as the IO manager does) and run the checks on them."""
    df = frame(spark, table, rows)
    if snapshot is None:
        snapshot = {D: str(_write_snapshot(df, tmp_path / f"{table}-{uuid.uuid4().hex[:6]}"))}
    # The row-level figures as the staging step profiles its rows (all of these are staged), the row counts crafted.
    profile = day_profile(df.withColumn("_reason", F.lit("")), TABLES[table].primary_key, row_conditions(table))
    counts = {day: {**profile.get(day, {}), **figures} for day, figures in counts.items()}
    # The default thresholds (quarantine: 5 %).
    results = by_name(run_staged_checks(table, df, counts, [D], lake, snapshot, CheckThresholds())[D])
    assert set(results) == {s.name for s in staged_check_specs(table)}, "every declared check reports"
    return results


def _write_snapshot(df, path: Path) -> Path:
    df.coalesce(1).write.parquet(str(path))
    return path


def test_check_specs_blocking_matches_severity():
    """ERROR checks are blocking, WARN ones are not (a WARN must never stop a load)."""
    warn = {("stg_payment", "fk_rental_id"), ("stg_payment", "amount_not_zero"), ("stg_payment", "paid_before_rental"),
            ("stg_rental", "returned")}
    for table in STAGED_TABLES:
        for spec in staged_check_specs(table):
            assert spec.blocking == ((spec.asset_key.path[0], spec.name) not in warn), spec
    warn_wh = {"unknown_dimension_keys", "volume", "freshness"}
    for asset in ("fact_rental", "fact_payment", "dim_customer", "dim_film", "mart_daily_revenue",
                  "mart_category_monthly"):
        specs = warehouse_check_specs(asset)
        assert specs
        for spec in specs:
            assert spec.blocking == (spec.name not in warn_wh), spec


def test_rental_checks_pass_on_good_rows(spark, lake, tmp_path):
    results = staged_run(spark, lake, tmp_path, "rental",
                         [rental(800001), rental(800002, inventory_id=800001, returned="2022-10-05 11:00")])
    for name, r in results.items():
        assert_outcome(r, True, WARN if name in ("returned", "quarantine_ratio") else ERROR, 0)
    assert meta(results["schema_contract"], "missing_columns") == "none"


def test_rental_checks_fail_on_crafted_bad_rows(spark, lake, tmp_path):
    rows = [
        rental(800001),
        rental(800002), rental(800002),  # duplicate key
        rental(None),  # null key
        rental(800003, customer_id=None),  # required column missing
        rental(800004, inventory_id=800009),  # inventory staged only on a later day
        rental(800005, customer_id=999999, staff_id=999999),  # orphans
        rental(800006, returned=None),  # still out (WARN)
        rental(800007, at="2022-10-06 00:30"),  # event on the next day than its partition
        rental(800008, at="2022-10-05 10:00", returned="2022-10-05 09:00"),  # returned before rented
    ]
    r = staged_run(spark, lake, tmp_path, "rental", rows, counts=MUCH_QUARANTINE)
    assert_outcome(r["primary_key"], False, ERROR, 2)  # one duplicate group + one null key
    assert_outcome(r["required_columns"], False, ERROR, 1)
    assert_outcome(r["fk_inventory_id"], False, ERROR, 1)
    assert_outcome(r["fk_customer_id"], False, ERROR, 1)  # a NULL customer_id is required_columns' business
    assert_outcome(r["fk_staff_id"], False, ERROR, 1)
    assert_outcome(r["returned"], False, WARN, 1)
    assert_outcome(r["event_time_in_partition"], False, ERROR, 1)
    assert_outcome(r["return_after_rental"], False, ERROR, 1)
    assert_outcome(r["quarantine_ratio"], False, ERROR, 10)
    assert meta(r["quarantine_ratio"], "worst_day_ratio") == 0.1
    assert_outcome(r["schema_contract"], True, ERROR, 0)
    samples = meta(r["fk_inventory_id"], "samples")
    assert [s["rental_id"] for s in samples] == [800004]
    assert [s["rental_id"] for s in meta(r["return_after_rental"], "samples")] == [800008]
    assert "return_date < rental_date" in meta(r["return_after_rental"], "query")


@pytest.mark.parametrize("case", ["duplicate", "null"])
def test_primary_key_fails_alone(spark, lake, tmp_path, case):
    """Composite key (film_category): a duplicate pair, or a NULL part, fails primary_key and nothing else."""
    good = [{"film_id": 800001, "category_id": 1, "dt": D}, {"film_id": 800001, "category_id": 2, "dt": D}]
    bad = {"duplicate": [{"film_id": 800001, "category_id": 2, "dt": D}],
           "null": [{"film_id": 800002, "category_id": None, "dt": D}]}[case]
    r = staged_run(spark, lake, tmp_path, "film_category", good)
    assert r["primary_key"].passed
    r = staged_run(spark, lake, tmp_path, "film_category", good + bad)
    assert_outcome(r["primary_key"], False, ERROR, 1)
    assert [n for n, x in r.items() if not x.passed] == ["primary_key"]


def test_payment_checks_pass_on_good_rows(spark, lake, tmp_path):
    r = staged_run(spark, lake, tmp_path, "payment", [payment(800100), payment(800101, amount="0.99")])
    warn = {"fk_rental_id", "amount_not_zero", "paid_before_rental", "quarantine_ratio"}
    for name, x in r.items():
        assert_outcome(x, True, WARN if name in warn else ERROR, 0)


def test_payment_checks_fail_on_crafted_bad_rows(spark, lake, tmp_path):
    rows = [
        payment(800100),
        payment(800101, amount="-1.00"),
        payment(800102, amount="0.00"),
        payment(800103, customer_id=999999),
        payment(800104, rental_id=999999),  # unknown rental: late-arriving, WARN
        payment(800105, rental_id=800099),  # rental staged only on a later day: also unresolved for D
        payment(800106, at="2022-10-05 09:00"),  # before its rental (10:00)
        payment(800107, at="2022-10-04 23:59"),  # before its rental and outside its partition day
        payment(800108, staff_id=None),
    ]
    r = staged_run(spark, lake, tmp_path, "payment", rows, counts=LITTLE_QUARANTINE)
    assert_outcome(r["primary_key"], True, ERROR, 0)
    assert_outcome(r["amount_not_negative"], False, ERROR, 1)
    assert_outcome(r["amount_not_zero"], False, WARN, 1)
    assert_outcome(r["fk_customer_id"], False, ERROR, 1)
    assert_outcome(r["fk_rental_id"], False, WARN, 2)
    assert_outcome(r["paid_before_rental"], False, WARN, 2)
    assert {s["payment_id"] for s in meta(r["paid_before_rental"], "samples")} == {800106, 800107}
    assert_outcome(r["event_time_in_partition"], False, ERROR, 1)
    assert_outcome(r["required_columns"], False, ERROR, 1)
    assert_outcome(r["quarantine_ratio"], True, WARN, 1)  # quarantined rows, counted, but under the threshold


def test_film_range_check(spark, lake, tmp_path):
    r = staged_run(spark, lake, tmp_path, "film", [film(800001, dt=D), film(800002, length=1, rate="0.01", dt=D)])
    assert_outcome(r["rates_and_length_positive"], True, ERROR, 0)
    assert r["required_columns"].passed
    bad = [film(800003, rate="0.00", dt=D), film(800004, cost="0.00", dt=D), film(800005, length=0, dt=D),
           film(800006, title=None, dt=D)]
    r = staged_run(spark, lake, tmp_path, "film", [film(800001, dt=D)] + bad)
    assert_outcome(r["rates_and_length_positive"], False, ERROR, 3)
    assert_outcome(r["required_columns"], False, ERROR, 1)
    assert {n for n, x in r.items() if not x.passed} == {"rates_and_length_positive", "required_columns"}


def test_inventory_foreign_keys(spark, lake, tmp_path):
    r = staged_run(spark, lake, tmp_path, "inventory", [inventory(800001, dt=D)])
    assert all(x.passed for x in r.values()), {n: x.metadata for n, x in r.items() if not x.passed}
    r = staged_run(spark, lake, tmp_path, "inventory",
                   [inventory(800001, dt=D), inventory(800002, film_id=999999, dt=D),
                    inventory(800003, store_id=999999, dt=D), inventory(800004, film_id=None, dt=D)])
    assert_outcome(r["fk_film_id"], False, ERROR, 1)  # the NULL film_id is not an orphan ...
    assert_outcome(r["fk_store_id"], False, ERROR, 1)
    assert_outcome(r["required_columns"], False, ERROR, 1)  # ... it is a missing required column


def test_schema_contract_fails_on_a_snapshot_with_the_wrong_columns(spark, lake, tmp_path):
    good = frame(spark, "category", [{"category_id": 800001, "name": "X", "dt": D}])
    wrong = good.drop("last_update").withColumnRenamed("name", "category_name")
    path = _write_snapshot(wrong, tmp_path / "wrong")
    r = staged_run(spark, lake, tmp_path, "category", [{"category_id": 800001, "name": "X", "dt": D}],
                   snapshot={D: str(path)})
    assert_outcome(r["schema_contract"], False, ERROR, 3)
    assert meta(r["schema_contract"], "missing_columns") == "name, last_update"
    assert meta(r["schema_contract"], "added_columns") == "category_name"
    # A day without rows has an empty snapshot directory: nothing to compare, passes.
    empty = tmp_path / "empty"
    empty.mkdir()
    r = staged_run(spark, lake, tmp_path, "category", [], snapshot={D: str(empty)})
    assert r["schema_contract"].passed and all(x.passed for x in r.values())


def test_quarantine_ratio_threshold():
    default = CheckThresholds().quarantine_ratio
    assert default == 0.05
    assert_outcome(_quarantine_check(MUCH_QUARANTINE, default), False, ERROR, 10)
    # Under the threshold: passed (a failed blocking result would hold automation), the rows counted.
    assert_outcome(_quarantine_check(LITTLE_QUARANTINE, default), True, WARN, 1)
    assert_outcome(_quarantine_check(NO_QUARANTINE, default), True, WARN, 0)
    assert_outcome(_quarantine_check({}, default), True, WARN, 0)
    # The worst day decides the severity, not the range's average.
    two_days = {D: {"rows_in": 10, "rows_out": 9, "rows_quarantined": 1},
                D0: {"rows_in": 10_000, "rows_out": 10_000, "rows_quarantined": 0}}
    result = _quarantine_check(two_days, default)
    assert_outcome(result, False, ERROR, 1)
    assert meta(result, "worst_day") == str(D)
    assert _quarantine_check(MUCH_QUARANTINE, 0.2).severity == WARN


def test_thresholds_come_from_the_environment_when_a_run_starts(monkeypatch):
    """The code location binds the thresholds to their variables (EnvVar: read when resources are built,
    not at import); the defaults the README states are the resource's, which `stack up` writes."""
    from dagster import build_resources

    from dvd_platform.definitions import defs

    monkeypatch.setenv("DVD_QUARANTINE_ERROR_RATIO", "0.2")
    monkeypatch.setenv("DVD_FRESHNESS_LAG_DAYS", "5")
    with build_resources({"thresholds": defs.resources["check_thresholds"]}) as resources:
        assert (resources.thresholds.quarantine_ratio, resources.thresholds.freshness_lag_days) == (0.2, 5)
    defaults = CheckThresholds()
    assert ENV_VARS["DVD_QUARANTINE_ERROR_RATIO"].endswith(f"(default {defaults.quarantine_error_ratio}).")
    assert ENV_VARS["DVD_FRESHNESS_LAG_DAYS"].endswith(f"(default {defaults.freshness_lag_days}).")


# ============================================================================ warehouse (SQL) checks


@pytest.fixture(scope="module")
def scratch_dsn(settings_env):
    """A fresh, migrated warehouse database owned by the loader; dropped afterwards."""
    with scratch_database(settings_env, "dvd_checks") as dsns:
        apply_migrations(dsns["loader"])
        yield dsns["loader"]


@pytest.fixture
def wh(scratch_dsn) -> WarehouseResource:
    """The scratch warehouse, emptied (unknown members kept) and with one known member per dimension."""
    resource = WarehouseResource(dsn=scratch_dsn)
    execute(resource, """
        TRUNCATE dw.fact_rental, dw.fact_payment, dw.mart_daily_revenue, dw.mart_category_monthly;
        DELETE FROM dw.dim_customer WHERE customer_key <> -1;
        DELETE FROM dw.dim_film WHERE film_key <> -1;
        DELETE FROM dw.dim_store WHERE store_key <> -1;
        DELETE FROM dw.dim_staff WHERE staff_key <> -1;
        INSERT INTO dw.dim_customer (customer_key, customer_id, valid_from, is_current) VALUES (800001, 800001, '-infinity', true);
        INSERT INTO dw.dim_film (film_key, film_id, valid_from, is_current) VALUES (800001, 800001, '-infinity', true);
        INSERT INTO dw.dim_store (store_key, store_id) VALUES (1, 1);
        INSERT INTO dw.dim_staff (staff_key, staff_id) VALUES (1, 1);
    """)
    return resource


def execute(warehouse: WarehouseResource, statement: str, params=None) -> list[tuple]:
    return warehouse.query(statement, params)


def add_rentals(wh, day: date, n: int, first_id: int, *, film_key=800001, returned=True, hour=10):
    execute(wh, """
        INSERT INTO dw.fact_rental (rental_id, rental_ts, rental_date_key, customer_key, film_key, store_key, staff_key,
                                    is_returned, customer_id, film_id, store_id, staff_id)
        SELECT %(first)s + g, %(at)s, to_char(%(day)s::date, 'YYYYMMDD')::int, 800001, %(film)s, 1, 1, %(ret)s,
               800001, 800001, 1, 1
          FROM generate_series(0, %(n)s - 1) g""",
            {"first": first_id, "at": datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour),
             "day": day, "film": film_key, "ret": returned, "n": n})


def add_payment(wh, payment_id: int, at: datetime, amount: str, rental_id: int | None = None, *, film_key=800001):
    execute(wh, """
        INSERT INTO dw.fact_payment (payment_id, payment_ts, payment_date_key, rental_date_key, customer_key, staff_key,
                                     store_key, film_key, rental_id, amount, customer_id, staff_id)
        VALUES (%(id)s, %(at)s, to_char(%(at)s AT TIME ZONE 'UTC', 'YYYYMMDD')::int,
                CASE WHEN %(film)s = -1 THEN -1 ELSE to_char(%(at)s AT TIME ZONE 'UTC', 'YYYYMMDD')::int END,
                800001, 1, CASE WHEN %(film)s = -1 THEN -1 ELSE 1 END, %(film)s, %(rental)s, %(amount)s, 800001, 1)""",
            {"id": payment_id, "at": at, "amount": Decimal(amount), "rental": rental_id, "film": film_key})


W = date(2022, 10, 10)
WINDOW = Window(W, W)
DEFAULTS = CheckThresholds()


def test_fact_rental_checks(wh):
    add_rentals(wh, W, 3, 800000)
    r = by_name(fact_checks(wh, "fact_rental", WINDOW, {W: 3}, thresholds=DEFAULTS)[W])
    assert set(r) == {s.name for s in warehouse_check_specs("fact_rental")}
    assert_outcome(r["reconciliation"], True, ERROR, 0)
    assert_outcome(r["unknown_dimension_keys"], True, WARN, 0)
    assert_outcome(r["volume"], True, WARN, 0)
    # Rows outside the window do not count.
    add_rentals(wh, W + timedelta(1), 4, 800100)
    assert by_name(fact_checks(wh, "fact_rental", WINDOW, {W: 3}, thresholds=DEFAULTS)[W])["reconciliation"].passed

    # Bad: staged rows missing from the fact, two rows bound to unknown members of different
    # dimensions, a staged day with nothing loaded.
    add_rentals(wh, W, 1, 800010, film_key=-1)
    execute(wh, "UPDATE dw.fact_rental SET customer_key = -1 WHERE rental_id = 800000")
    window = Window(W - timedelta(1), W)
    days = fact_checks(wh, "fact_rental", window, {W - timedelta(1): 2, W: 7}, thresholds=DEFAULTS)
    before, r = by_name(days[W - timedelta(1)]), by_name(days[W])
    assert_outcome(r["reconciliation"], False, ERROR, 3)  # each day against its own staged rows
    assert meta(r["reconciliation"], "fact_rows") == 4
    assert_outcome(before["reconciliation"], False, ERROR, 2)
    assert_outcome(r["unknown_dimension_keys"], False, WARN, 2)
    assert meta(r["unknown_dimension_keys"], "unknown_film_key") == 1
    assert meta(r["unknown_dimension_keys"], "unknown_customer_key") == 1
    assert_outcome(before["volume"], False, ERROR, 1)  # a staged day without loaded rows is an ERROR
    assert meta(before["volume"], "days_without_rows") == 1
    assert_outcome(r["volume"], True, WARN, 0)


def test_volume_outlier_is_a_warning(wh):
    for n in range(1, 8):  # seven previous days of 10 rentals
        add_rentals(wh, W - timedelta(n), 10, 800000 + 100 * n)
    add_rentals(wh, W, 30, 800900)  # 3x the median: fine
    r = fact_checks(wh, "fact_rental", WINDOW, {W: 30}, thresholds=DEFAULTS)[W]
    assert_outcome(by_name(r)["volume"], True, WARN, 0)
    add_rentals(wh, W, 20, 800950)  # 50 rows = 5x the median of the previous 28 days
    volume = by_name(fact_checks(wh, "fact_rental", WINDOW, {W: 50}, thresholds=DEFAULTS)[W])["volume"]
    assert_outcome(volume, False, WARN, 1)
    assert meta(volume, "samples") == [{"day": str(W), "rows": 50, "median_28d": 10}]


def test_fact_payment_checks(wh):
    add_rentals(wh, W, 1, 800001)
    add_payment(wh, 800001, ts("2022-10-10 12:00"), "2.99", 800001)
    add_payment(wh, 800002, ts("2022-10-10 13:00"), "1.01", 800001)
    add_payment(wh, 800003, datetime.now(UTC) - timedelta(hours=1), "1.00")  # today: fresh
    r = by_name(fact_checks(wh, "fact_payment", WINDOW, {W: 2}, {W: Decimal("4.00")}, thresholds=DEFAULTS)[W])
    assert set(r) == {s.name for s in warehouse_check_specs("fact_payment")}
    for name, x in r.items():
        assert_outcome(x, True, ERROR if name in ("reconciliation", "unknown_after_rental_loaded") else WARN, 0)
    # One cent off is a reconciliation failure even with the right row count.
    r = by_name(fact_checks(wh, "fact_payment", WINDOW, {W: 2}, {W: Decimal("4.01")}, thresholds=DEFAULTS)[W])
    assert_outcome(r["reconciliation"], False, ERROR, 1)
    # A payment still on unknown keys although its rental is loaded; the newest payment is old.
    add_payment(wh, 800004, ts("2022-10-10 14:00"), "3.00", 800001, film_key=-1)
    execute(wh, "DELETE FROM dw.fact_payment WHERE payment_id = 800003")
    r = by_name(fact_checks(wh, "fact_payment", WINDOW, {W: 3}, {W: Decimal("7.00")}, thresholds=DEFAULTS)[W])
    assert_outcome(r["reconciliation"], True, ERROR, 0)
    assert_outcome(r["unknown_after_rental_loaded"], False, ERROR, 1)
    assert meta(r["unknown_after_rental_loaded"], "samples")[0]["payment_id"] == 800004
    assert_outcome(r["unknown_dimension_keys"], False, WARN, 1)
    assert_outcome(r["freshness"], False, WARN, 1)
    assert meta(r["freshness"], "newest_day") == "2022-10-10"
    lenient = CheckThresholds(freshness_lag_days=100_000)  # the lag is the resource's
    fresh = by_name(fact_checks(wh, "fact_payment", WINDOW, {W: 3}, {W: Decimal("7.00")}, thresholds=lenient)[W])
    assert fresh["freshness"].passed and meta(fresh["freshness"], "allowed_lag_days") == 100_000
    # A payment whose rental is not loaded may keep unknown keys (it is completed later).
    execute(wh, "UPDATE dw.fact_payment SET rental_id = 899999 WHERE payment_id = 800004")
    r = by_name(fact_checks(wh, "fact_payment", WINDOW, {W: 3}, {W: Decimal("7.00")}, thresholds=DEFAULTS)[W])
    assert r["unknown_after_rental_loaded"].passed and not r["unknown_dimension_keys"].passed


@pytest.mark.parametrize("asset,nk", [("dim_customer", "customer_id"), ("dim_film", "film_id")])
def test_scd2_integrity(wh, asset, nk):
    key = asset.replace("dim_", "") + "_key"
    versions = f"INSERT INTO dw.{asset} ({key}, {nk}, valid_from, valid_to, is_current) VALUES (%s, %s, %s, %s, %s)"
    execute(wh, versions, (810001, 810001, "-infinity", ts("2022-10-03 00:00"), False))
    execute(wh, versions, (810002, 810001, ts("2022-10-03 00:00"), None, True))
    assert_outcome(scd2_check(wh, asset), True, ERROR, 0)
    # No current version; and overlapping ranges (the first version closes after the second opens).
    execute(wh, versions, (810003, 810003, "-infinity", ts("2022-10-03 00:00"), False))
    execute(wh, versions, (810004, 810004, "-infinity", ts("2022-10-05 00:00"), False))
    execute(wh, versions, (810005, 810004, ts("2022-10-03 00:00"), None, True))
    result = scd2_check(wh, asset)
    assert_outcome(result, False, ERROR, 2)
    assert {s[nk]: (s["current_versions"], s["overlapping"]) for s in meta(result, "samples")} == {
        810003: (0, 0), 810004: (1, 1)}


def mart_check(wh: WarehouseResource, mart: str, window: Window):
    return mart_checks(wh, mart, {"only": window})["only"]


def test_mart_totals_match_facts(wh):
    add_rentals(wh, W, 2, 800001)
    add_payment(wh, 800001, ts("2022-10-10 12:00"), "2.99", 800001)
    add_payment(wh, 800002, ts("2022-10-10 13:00"), "1.00", 800002)
    for mart in ("mart_daily_revenue", "mart_category_monthly"):
        wh.run_sql_load(mart, WINDOW, "test-checks")
        assert_outcome(mart_check(wh, mart, WINDOW), True, ERROR, 0)
    execute(wh, "UPDATE dw.mart_daily_revenue SET revenue = revenue + 0.01, rentals = rentals + 1")
    result = mart_check(wh, "mart_daily_revenue", WINDOW)
    assert_outcome(result, False, ERROR, 2)
    assert meta(result, "rentals_difference") == 1
    assert abs(meta(result, "revenue_difference") - 0.01) < 1e-9
    # Category revenue is split by weights: a sub-micro-cent remainder is tolerated, a cent is not.
    execute(wh, "INSERT INTO dw.mart_category_monthly VALUES ('2022-10-01', 'Rounding', 0, 0.0000001)")
    assert mart_check(wh, "mart_category_monthly", WINDOW).passed
    execute(wh, "UPDATE dw.mart_category_monthly SET revenue = 0.01 WHERE category = 'Rounding'")
    assert_outcome(mart_check(wh, "mart_category_monthly", Window(date(2022, 10, 31), date(2022, 10, 31))),
                   False, ERROR, 1)


def test_mart_totals_are_judged_per_partition(wh):
    """A range's partitions are checked in one snapshot, but each against its own window."""
    add_rentals(wh, W, 1, 800001)
    add_rentals(wh, W + timedelta(1), 1, 800002)
    add_payment(wh, 800001, ts("2022-10-10 12:00"), "2.99", 800001)
    add_payment(wh, 800002, ts("2022-10-11 12:00"), "1.00", 800002)
    both = Window(W, W + timedelta(1))
    wh.run_sql_load("mart_daily_revenue", both, "test-checks")
    execute(wh, "UPDATE dw.mart_daily_revenue SET revenue = revenue + 0.05 WHERE date = '2022-10-11'")
    days = {"2022-10-10": WINDOW, "2022-10-11": Window(W + timedelta(1), W + timedelta(1))}
    results = mart_checks(wh, "mart_daily_revenue", days)
    assert {k: r.passed for k, r in results.items()} == {"2022-10-10": True, "2022-10-11": False}
    assert abs(meta(results["2022-10-11"], "revenue_difference") - 0.05) < 1e-9


# ============================================================================ declarative YAML rules


def run_rules(wh: WarehouseResource, window: Window, *, per_day: bool = False) -> dict:
    """Execute every YAML rule as Dagster runs it (an in-process run of the checks alone, with the
    run's range tags): {"asset:name": (passed, value, severity)}, or with ``per_day``
    {("asset:name", day): (passed, value)}."""
    checks = load_sql_checks()
    result = materialize(
        [AssetSpec("fact_payment", partitions_def=daily_partitions), AssetSpec("fact_rental", partitions_def=daily_partitions),
         *checks],
        selection=AssetSelection.all_asset_checks(),
        resources={"warehouse": wh},
        tags={RANGE_START_TAG: window.first_day.isoformat(), RANGE_END_TAG: window.last_day.isoformat()},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,  # a failing blocking (ERROR) rule fails the run
    )
    out = {}
    for event in result.get_asset_check_evaluations():
        name = f"{event.asset_key.to_user_string()}:{event.check_name}"
        if per_day:
            out[name, event.partition] = (event.passed, event.metadata["value"].value)
        else:
            out[name] = (event.passed, event.metadata["value"].value, event.severity.value)
    return out


def test_yaml_rules_pass_and_fail(wh):
    rules = yaml.safe_load(declarative.RULES_FILE.read_text())
    names = {f"{r['asset']}:{r['name']}" for r in rules}
    add_rentals(wh, W, 2, 800001)
    add_payment(wh, 800001, ts("2022-10-10 12:00"), "2.99", 800001)
    # Outside the window: a negative, a zero payment and an open rental on the next day do not count.
    add_payment(wh, 800002, ts("2022-10-11 12:00"), "-1.00")
    add_payment(wh, 800003, ts("2022-10-11 13:00"), "0.00")
    add_rentals(wh, W + timedelta(1), 1, 800100, returned=False)
    good = run_rules(wh, WINDOW)
    assert set(good) == names
    assert {n: (p, v) for n, (p, v, _) in good.items()} == {
        "fact_payment:table_not_empty": (True, 3.0), "fact_rental:table_not_empty": (True, 3.0),
        "fact_payment:no_negative_amounts": (True, 0.0), "fact_payment:zero_amount_payments": (True, 0.0),
        "fact_rental:rentals_not_returned": (True, 0.0)}
    assert {n: s for n, (_, _, s) in good.items()} == {
        "fact_payment:table_not_empty": "WARN", "fact_rental:table_not_empty": "WARN",
        "fact_payment:no_negative_amounts": "ERROR", "fact_payment:zero_amount_payments": "WARN",
        "fact_rental:rentals_not_returned": "WARN"}
    # The next day's window sees them.
    bad = run_rules(wh, Window(W + timedelta(1), W + timedelta(1)))
    assert {n: (p, v) for n, (p, v, _) in bad.items() if not p} == {
        "fact_payment:no_negative_amounts": (False, 1.0), "fact_payment:zero_amount_payments": (False, 1.0),
        "fact_rental:rentals_not_returned": (False, 1.0)}
    # Empty tables fail table_not_empty.
    execute(wh, "TRUNCATE dw.fact_rental, dw.fact_payment")
    empty = run_rules(wh, WINDOW)
    assert not empty["fact_payment:table_not_empty"][0] and not empty["fact_rental:table_not_empty"][0]


def test_query_each_runs_every_statement_in_its_own_read_only_transaction(wh):
    """One connection, but each day's query is its own READ COMMITTED transaction (a fresh snapshot taken
    after its locks, none held past it, as on a connection of its own), and a rule cannot write."""
    first, second = wh.query_each("SELECT now(), current_setting('transaction_isolation'), pg_sleep(0.02)", [{}, {}])
    assert first[0][0] != second[0][0], "both statements ran in one transaction"
    assert first[0][1] == second[0][1] == "read committed"
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        wh.query_each("CREATE TABLE dw.written_by_a_rule (x int)", [{}])


def test_yaml_rules_judge_each_day_of_a_range(wh):
    """A two-day run queries each day's window (on one connection): the bad day fails, the good one passes."""
    add_rentals(wh, W, 1, 800001)
    add_payment(wh, 800001, ts("2022-10-10 12:00"), "2.99", 800001)
    add_payment(wh, 800002, ts("2022-10-11 12:00"), "-1.00")
    days = run_rules(wh, Window(W, W + timedelta(1)), per_day=True)
    assert days["fact_payment:no_negative_amounts", "2022-10-10"] == (True, 0.0)
    assert days["fact_payment:no_negative_amounts", "2022-10-11"] == (False, 1.0)
    # A rule without window parameters is one value for every day.
    assert days["fact_payment:table_not_empty", "2022-10-10"] == days["fact_payment:table_not_empty", "2022-10-11"] \
        == (True, 2.0)


def test_parse_expectation_and_window_params():
    assert parse_expectation("== 0") == ("==", 0.0)
    assert parse_expectation(" >= 2.5 ") == (">=", 2.5)
    for bad in ("=> 0", "0", "== zero", ""):
        with pytest.raises(RuleError):
            parse_expectation(bad)
    params = Window(date(2022, 10, 1), date(2022, 10, 3)).params
    assert params["window_start"] == ts("2022-10-01 00:00") and params["window_end"] == ts("2022-10-04 00:00")


RULE = {"name": "r", "asset": "fact_payment", "sql": "SELECT 0", "expectation": "== 0", "severity": "WARN"}


@pytest.mark.parametrize("rules,message", [
    ([{k: v for k, v in RULE.items() if k != "sql"}], "lacks sql"),
    ([{**RULE, "expectation": "=~ 0"}], "operator"),
    ([{**RULE, "expectation": "== lots"}], "not a number"),
    ([{**RULE, "severity": "FATAL"}], "'FATAL' is not a valid"),
    ([RULE, {**RULE, "sql": "SELECT 1"}], "two rules named 'r'"),
])
def test_malformed_rule_raises_rule_error(tmp_path, rules, message):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    with pytest.raises(RuleError, match=message) as info:
        load_sql_checks(path)
    assert "'r'" in str(info.value)  # the message names the rule
    path.write_text(yaml.safe_dump([RULE]))
    assert len(load_sql_checks(path)) == 1


# ============================================================================ automation gate


def _ticker(defs, instance: DagsterInstance, key: AssetKey):
    """``key``'s automation condition evaluated tick after tick, as the daemon would, long after the days
    in question (so no day is the latest); each call returns the partitions that tick requests."""
    cursor = None

    def tick() -> set:
        nonlocal cursor
        result = evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=AssetSelection.assets(key),
            evaluation_time=datetime(2022, 11, 20, 1, tzinfo=UTC), cursor=cursor)
        cursor = result.cursor
        return set(result.get_requested_partitions(key))

    return tick


def test_marts_automation_follows_any_day_gated_on_that_days_checks():
    """Evaluate the marts' automation condition on the real asset graph, long after the days in
    question (so no day is the latest): a day whose facts landed healthy is requested; a day whose
    fact failed a blocking check *for that day* is held, and only that day; a WARN check failing
    does not hold; a passing re-evaluation of that day releases it."""
    from dvd_platform.automation import follows_checked_deps
    from dvd_platform.checks.results import latest_materializations
    from dvd_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    mart = AssetKey("mart_daily_revenue")
    assert graph.get(mart).automation_condition == follows_checked_deps()
    deps = sorted(graph.get(mart).parent_keys)
    assert [d.to_user_string() for d in deps] == ["dim_store", "fact_payment", "fact_rental"]
    blocking = {d: [c for c in graph.get(d).check_keys if graph.get(c).blocking] for d in deps}
    reconciliation = AssetCheckKey(AssetKey("fact_rental"), "reconciliation")
    volume = AssetCheckKey(AssetKey("fact_payment"), "volume")
    assert reconciliation in blocking[AssetKey("fact_rental")] and volume not in blocking[AssetKey("fact_payment")]

    instance = DagsterInstance.ephemeral()

    def land(day: str, failing=(), assets=deps):
        for key in assets:
            instance.report_runless_asset_event(AssetMaterialization(asset_key=key, partition=day))
        for key in assets:
            target = latest_materializations(instance, key, [day])[day]
            run_id = str(uuid.uuid4())  # each landing's evaluations as one run's (one per check and day)
            for check_key in blocking[key] + ([volume] if key == volume.asset_key else []):
                evaluation = AssetCheckEvaluation(
                    asset_key=key, check_name=check_key.name, passed=check_key not in failing, partition=day,
                    severity=ERROR if check_key in blocking[key] else WARN, metadata={},
                    blocking=check_key in blocking[key], target_materialization_data=target)
                instance.report_dagster_event(DagsterEvent(DagsterEventType.ASSET_CHECK_EVALUATION.value, "land",
                                                           event_specific_data=evaluation), run_id=run_id)

    tick = _ticker(defs, instance, mart)

    assert tick() == set()  # nothing upstream yet
    land("2022-10-02", failing={volume})  # healthy (a WARN check failing does not block)
    assert tick() == {"2022-10-02"}
    land("2022-10-03", failing={reconciliation})  # that day's fact failed a blocking check
    assert tick() == set()
    land("2022-10-05")  # another day lands healthy while 10-03 is held: it alone is requested
    assert tick() == {"2022-10-05"}
    assert tick() == set()  # 10-03 stays held
    land("2022-10-03", failing={reconciliation}, assets=[AssetKey("fact_rental")])  # a re-run, still failing
    assert tick() == set()
    land("2022-10-03", assets=[AssetKey("fact_rental")])  # the same re-run, the check passes now
    assert tick() == {"2022-10-03"}


def test_an_upstream_day_that_lands_while_the_marts_run_is_in_flight_runs_the_mart_again():
    """A mart run automation launched reads the facts, then a re-drop's facts land before that run
    ends: the mart's own materialization is newer than the facts' but holds the old rows, so automation
    must request that day once more, also when it was one day of a range run (not the run's last). A
    clean automated run needs nothing more, and neither does an update by a run automation did not
    launch (here: reports, as the sensor's run would) of the facts and then the mart."""
    from dagster._core.events import AssetMaterializationPlannedData, StepMaterializationData
    from dagster._core.storage.tags import AUTOMATION_CONDITION_TAG
    from dagster._core.test_utils import create_run_for_test

    from dvd_platform.definitions import defs

    mart, fact, days = AssetKey("mart_daily_revenue"), AssetKey("fact_payment"), ["2022-10-02", "2022-10-03"]
    instance = DagsterInstance.ephemeral()
    tick = _ticker(defs, instance, mart)

    def land(keys, on) -> None:
        for key in keys:
            for day in on:
                instance.report_runless_asset_event(AssetMaterialization(asset_key=key, partition=day))

    def event(run_id: str, kind: DagsterEventType, data=None) -> None:
        instance.report_dagster_event(DagsterEvent(kind.value, "__ASSET_JOB", event_specific_data=data), run_id=run_id)

    def automated_run(on: list[str], facts_land_on: list[str], tick_in_between: bool = False) -> None:
        """A run automation launched for the mart's days ``on``; the facts of ``facts_land_on`` land while it runs."""
        run = create_run_for_test(instance, job_name="__ASSET_JOB", status=DagsterRunStatus.STARTED,
                                  tags={AUTOMATION_CONDITION_TAG: "true"})
        for day in on:
            event(run.run_id, DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                  AssetMaterializationPlannedData(mart, partition=day))
        if tick_in_between:
            assert tick() == set()  # in flight
        land([fact], facts_land_on)
        assert tick() == set()  # not while it runs
        for day in on:  # the run's rows were read before the facts landed
            event(run.run_id, DagsterEventType.ASSET_MATERIALIZATION,
                  StepMaterializationData(AssetMaterialization(asset_key=mart, partition=day)))
        event(run.run_id, DagsterEventType.RUN_SUCCESS)

    assert tick() == set()
    land(defs.resolve_asset_graph().get(mart).parent_keys, days)
    assert tick() == set(days)
    # A range run of both days; the first day's facts land before the next tick (which sees the request
    # and the facts' update at once) ...
    automated_run(days, facts_land_on=days[:1])
    assert tick() == {days[0]}  # its rows predate the facts: once more, that day alone
    # ... or after it.
    automated_run(days[:1], facts_land_on=days[:1], tick_in_between=True)
    assert tick() == {days[0]}
    automated_run(days[:1], facts_land_on=[])  # nothing landed meanwhile
    assert tick() == set()
    land([fact, mart], days)  # a run automation did not launch, of the facts and then the mart: handled
    assert tick() == set()


# ============================================================================ end to end


def test_orphan_foreign_key_blocks_its_dependents_for_that_day(sample_loaded, s3, settings_env, run_range, pg, defs):
    good_day, bad_day = date(2022, 10, 1), date(2022, 10, 2)

    def row(rental_id: int, day: date, inventory_id: int) -> list[str]:
        at = f"{day} 10:00:00+00"
        return crafted_row("rental", rental_id=rental_id, rental_date=at, inventory_id=inventory_id, customer_id=1,
                           return_date=f"{day} 20:00:00+00", staff_id=1, last_update=at)

    drop(s3, settings_env["DVD_LANDING_BUCKET"], {
        good_day: {"rental": [row(800001, good_day, 1)],
                   "payment": [crafted_row("payment", payment_id=800001, customer_id=1, staff_id=1, rental_id=800001,
                                           amount="2.99", payment_date=f"{good_day} 11:00:00+00")]},
        bad_day: {"rental": [row(800002, bad_day, 1), row(800003, bad_day, 999999)]},  # no such inventory item
    })
    good = run_range(good_day, good_day)
    assert good.ok, good.lines()
    assert good.materialized["fact_rental"] == 1 and good.materialized["mart_daily_revenue"] == 1

    bad = run_range(bad_day, bad_day)
    assert not bad.ok
    assert bad.materialized.get("stg_rental") == 1  # the staged snapshot is written (and inspectable) ...
    assert bad.checks["stg_rental:fk_inventory_id"] == (False, "ERROR")  # ... its blocking check fails
    assert bad.failed_blocking_checks == ["stg_rental:fk_inventory_id"]
    evaluation = next(e.event_specific_data for e in bad.result.all_events
                      if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
                      and e.event_specific_data.check_name == "fk_inventory_id")
    assert evaluation.metadata["offending_rows"].value == 1
    assert [s["rental_id"] for s in evaluation.metadata["samples"].value] == [800003]
    # Everything downstream of stg_rental is held for the day; the rest of the graph loads.
    graph = defs.resolve_asset_graph()
    downstream = {k.to_user_string() for k in AssetSelection.assets("stg_rental").downstream(include_self=False)
                  .resolve(graph)}
    # (stg_payment depends on stg_rental: its FK checks read the staged rentals.)
    assert downstream == {"stg_payment", "fact_rental", "fact_payment", "mart_daily_revenue", "mart_category_monthly",
                          "revenue_chart"}
    daily = downstream - {"mart_category_monthly"}
    assert not daily & set(bad.materialized), bad.materialized
    # The month is redrawn after the days' run from the facts that did load: day B is not in them.
    assert bad.materialized.get("mart_category_monthly") == 1, bad.materialized
    assert {"dim_customer", "dim_film", "dim_store", "dim_staff", "bridge_film_category"} <= set(bad.materialized)
    with pg.cursor() as cur:
        cur.execute("SELECT rental_id FROM dw.fact_rental WHERE rental_id BETWEEN 800001 AND 800003")
        assert cur.fetchall() == [(800001,)]  # day A loaded, no row of day B (not even its valid one)
        cur.execute("SELECT count(*) FROM dw.fact_payment WHERE payment_id = 800001")
        assert cur.fetchone() == (1,)


def test_sample_errors_pass_and_quirks_are_warnings_with_counts(sample_loaded, dagster_instance, truth):
    """Every figure is the truth module's count over the sample's CSVs (pagila: 14,665 payments
    before their rental, 183 rentals out, 24 zero payments, 4 low days of its rental tail)."""
    first, last, summary = sample_loaded
    assert [n for n, (passed, severity) in summary.checks.items() if severity == "ERROR" and not passed] == []
    # Read the evaluations back from the instance's event log (what the UI shows): one per check and
    # partition, over the command's runs (the days, then the months).
    evaluations: dict[str, list] = {}
    for run_id in [summary.run_id] + [run.run_id for run in summary.follow_ups]:
        for record in dagster_instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
            e = record.dagster_event.event_specific_data
            evaluations.setdefault(f"{e.asset_key.to_user_string()}:{e.check_name}", []).append(e)
    assert set(evaluations) == set(summary.checks)
    days = (last - first).days + 1
    for name, per_partition in evaluations.items():  # every partition reports every check, once
        partitions = [e.partition for e in per_partition]
        assert len(partitions) == len(set(partitions)) and None not in partitions, name
        assert len(partitions) == (days if not name.startswith("mart_category_monthly") else
                                   (last.year - first.year) * 12 + last.month - first.month + 1), name
    warnings = {n: es for n, es in evaluations.items() if not all(e.passed for e in es)}
    assert all(e.severity == WARN for es in warnings.values() for e in es if not e.passed)

    def figure(name: str, key: str = "offending_rows"):
        return sum(e.metadata[key].value or 0 for e in evaluations[name])

    def failing_days(name: str) -> list[str]:
        return sorted(e.partition for e in evaluations[name] if not e.passed)

    rental_outliers = truth.volume_outliers(truth.rentals_per_day)
    payment_outliers = truth.volume_outliers(truth.payments_per_day)
    expected = {
        ("stg_payment:paid_before_rental", "offending_rows"): truth.paid_before_rental,
        ("stg_rental:returned", "offending_rows"): truth.not_returned,
        ("stg_payment:amount_not_zero", "offending_rows"): truth.zero_amounts,
        ("fact_payment:zero_amount_payments", "value"): truth.zero_amounts,
        ("fact_rental:rentals_not_returned", "value"): truth.not_returned,
        # Every day with staged rows was loaded (else volume would be an ERROR); outliers are WARN.
        ("fact_rental:volume", "offending_rows"): len(rental_outliers),
        ("fact_payment:volume", "offending_rows"): len(payment_outliers),
        # The sample is years old: stale, as reported on every day.
        ("fact_payment:freshness", "offending_rows"): days,
    }
    assert {name: figure(name, key) for name, key in expected} == {name: n for (name, _), n in expected.items()}
    assert figure("fact_rental:volume", "days_without_rows") == figure("fact_payment:volume", "days_without_rows") == 0
    assert failing_days("fact_rental:volume") == [str(day) for day in rental_outliers]
    assert failing_days("fact_payment:volume") == [str(day) for day in payment_outliers]
    if truth.paid_before_rental:  # up to 10 sample rows, each on the day that reports it
        samples = [(e.partition, s) for e in evaluations["stg_payment:paid_before_rental"] if "samples" in e.metadata
                   for s in e.metadata["samples"].value]
        assert 0 < len(samples) <= 10
        assert all(s["payment_date"] < s["rental_date"] and s["dt"] == day for day, s in samples)
    assert set(warnings) == {name for (name, _), n in expected.items() if n}
    # Everything else passed, e.g. every payment's rental resolves once the whole range is staged.
    assert not failing_days("stg_payment:fk_rental_id")
    assert not failing_days("fact_payment:unknown_dimension_keys")
