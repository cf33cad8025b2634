"""Checks on staged snapshots, computed with Spark on the rows the staging step just produced.

ERROR checks are blocking: a failure stops the warehouse assets of those days in the same run
(and automation waits for a passing evaluation). Known quirks of real data are WARN.
"""

from __future__ import annotations

import os
from datetime import date

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dvd_platform.checks.results import SAMPLE_ROWS, result, spec
from dvd_platform.resources.lake import LakeResource
from dvd_platform.contract.tables import TABLES, ForeignKey
from dvd_platform.transforms.schemas import staged_schema

ERROR, WARN = AssetCheckSeverity.ERROR, AssetCheckSeverity.WARN

#: Value ranges: (check name, SQL condition a valid row satisfies, severity).
RANGES: dict[str, tuple[tuple[str, str, AssetCheckSeverity], ...]] = {
    "payment": (("amount_not_negative", "amount >= 0", ERROR), ("amount_not_zero", "amount <> 0", WARN)),
    "film": (("rates_and_length_positive", "rental_rate > 0 AND replacement_cost > 0 AND length > 0", ERROR),),
    "rental": (("returned", "return_date IS NOT NULL", WARN),),
}


def _fk_severity(fk: ForeignKey) -> AssetCheckSeverity:
    """A key that may land before the row it references is a warning, not an error."""
    return WARN if fk.may_lag else ERROR


def staged_check_specs(table: str) -> list[AssetCheckSpec]:
    asset = f"stg_{table}"
    specs = [
        spec(asset, "primary_key", f"{', '.join(TABLES[table].primary_key)} unique and not null per day"),
        spec(asset, "schema_contract", "the snapshot's Parquet schema has exactly the contract's columns"),
        spec(asset, "quarantine_ratio", "quarantined / input rows: ERROR above the threshold "
             "(DVD_QUARANTINE_ERROR_RATIO, default 0.05) fails the day; under it, the count is reported"),
    ]
    if TABLES[table].required:
        specs.append(spec(asset, "required_columns", f"not null: {', '.join(TABLES[table].required)}"))
    for fk in TABLES[table].foreign_keys:
        severity = _fk_severity(fk)
        specs.append(spec(asset, f"fk_{fk.column}", f"{fk.column} resolves to a staged {fk.table} "
                          f"({severity.value})", blocking=severity == ERROR))
    for name, condition, severity in RANGES.get(table, ()):
        specs.append(spec(asset, name, f"{condition} ({severity.value})", blocking=severity == ERROR))
    if TABLES[table].is_event:
        specs.append(spec(asset, "event_time_in_partition", f"{TABLES[table].event_column} falls on the partition's UTC day"))
    if table == "rental":
        specs.append(spec(asset, "return_after_rental", "return_date >= rental_date"))
    if table == "payment":
        specs.append(spec(asset, "paid_before_rental", "payments dated before their rental (a known pagila quirk, WARN)",
                          blocking=False))
    return specs


#: A staged check's results, one list per day of the window.
DayResults = dict[date, list[AssetCheckResult]]


def _row_conditions(table: str) -> dict[str, str]:
    """SQL conditions an offending row meets, one per row-level check (evaluated in one pass)."""
    spec_ = TABLES[table]
    conditions = {"null_key": " OR ".join(f"{k} IS NULL" for k in spec_.primary_key)}
    if spec_.required:
        conditions["required"] = " OR ".join(f"{c} IS NULL" for c in spec_.required)
    for name, condition, _ in RANGES.get(table, ()):
        conditions[name] = f"NOT ({condition})"
    if spec_.is_event:
        conditions["event_day"] = f"to_date({spec_.event_column}) <> dt"
    if table == "rental":
        conditions["return_order"] = "return_date < rental_date"
    return conditions


def _spread(out: DayResults, name: str, per_day: dict[date, int], severity: AssetCheckSeverity, query: str,
            samples) -> None:
    """One result per day of ``out``; sample rows (taken once, only when some day offends) go to their day."""
    rows = samples() if any(per_day.values()) else []
    for day, results in out.items():
        n = per_day.get(day, 0)
        day_samples = [r for r in rows if r["dt"] == day] if n else None
        results.append(result(name, n, severity=severity, query=query, samples=day_samples))


def _per_day(df: DataFrame) -> dict[date, int]:
    return {r["dt"]: r["count"] for r in df.groupBy("dt").count().collect()}


def run_staged_checks(table: str, staged: DataFrame, counts: dict, days: list[date], lake: LakeResource,
                      snapshot_paths: dict[date, str]) -> DayResults:
    """Evaluate every check of ``stg_<table>`` on the window's staged rows, per day."""
    out: DayResults = {day: [] for day in days}
    _row_checks(table, staged, out)
    _reference_checks(table, staged, max(days), lake, out)
    schema = _schema_check(staged.sparkSession, table, snapshot_paths)
    for day, results in out.items():
        results.append(schema)
        results.append(_quarantine_check({day: counts.get(day, {"rows_in": 0, "rows_quarantined": 0})}))
    return out


def _row_checks(table: str, staged: DataFrame, out: DayResults) -> None:
    """Key, required, range, event-day and order checks: one grouped aggregation over the rows."""
    key_cols = list(TABLES[table].primary_key)
    show = _shown_columns(table)
    conditions = _row_conditions(table)
    agg = staged.groupBy("dt").agg(*[F.sum(F.when(F.expr(c), 1).otherwise(0)).alias(n) for n, c in conditions.items()])
    offending = {n: {} for n in conditions}
    for row in agg.collect():
        for n in conditions:
            offending[n][row["dt"]] = row[n] or 0

    def sample(name: str):
        return lambda: _sample(staged, F.expr(conditions[name]), show)

    duplicates = staged.groupBy(*key_cols, "dt").count().where("count > 1")
    pk_bad = _per_day(duplicates)
    pk_bad = {d: pk_bad.get(d, 0) + offending["null_key"].get(d, 0) for d in set(pk_bad) | set(offending["null_key"])}
    _spread(out, "primary_key", pk_bad, ERROR,
            f"SELECT {', '.join(key_cols)}, dt, count(*) FROM stg_{table} GROUP BY {', '.join(key_cols)}, dt "
            f"HAVING count(*) > 1 -- plus rows where {conditions['null_key']}",
            lambda: duplicates.limit(SAMPLE_ROWS).collect() + _sample(staged, F.expr(conditions["null_key"]), show))
    if "required" in conditions:
        _spread(out, "required_columns", offending["required"], ERROR,
                f"SELECT * FROM stg_{table} WHERE {conditions['required']}", sample("required"))
    for name, condition, severity in RANGES.get(table, ()):
        _spread(out, name, offending[name], severity, f"SELECT * FROM stg_{table} WHERE NOT ({condition})", sample(name))
    if "event_day" in conditions:
        _spread(out, "event_time_in_partition", offending["event_day"], ERROR,
                f"SELECT * FROM stg_{table} WHERE {conditions['event_day']}", sample("event_day"))
    if table == "rental":
        _spread(out, "return_after_rental", offending["return_order"], ERROR,
                "SELECT * FROM stg_rental WHERE return_date < rental_date", sample("return_order"))


def _reference_checks(table: str, staged: DataFrame, last: date, lake: LakeResource, out: DayResults) -> None:
    """Foreign keys against the referenced staged tables up to the window's last day, and (payments)
    payments dated before their rental."""
    spark, show = staged.sparkSession, _shown_columns(table)
    history_days = _days_until(lake, last)
    for fk in TABLES[table].foreign_keys:
        referenced = lake.read_days(spark, "staged", f"stg_{fk.table}", history_days(fk.table),
                                    staged_schema(fk.table), required=False
                                    ).select(F.col(fk.referenced_column).alias(fk.column)).distinct()
        orphans = staged.where(F.col(fk.column).isNotNull()).join(referenced, fk.column, "left_anti")
        _spread(out, f"fk_{fk.column}", _per_day(orphans), _fk_severity(fk),
                f"SELECT * FROM stg_{table} t WHERE NOT EXISTS (SELECT 1 FROM stg_{fk.table} r "
                f"WHERE r.{fk.referenced_column} = t.{fk.column} AND r.dt <= <last day>)",
                lambda: orphans.select(*show).limit(SAMPLE_ROWS).collect())
    if table == "payment":
        rentals = lake.read_days(spark, "staged", "stg_rental", history_days("rental"), staged_schema("rental"),
                                 required=False).select("rental_id", "rental_date")
        early = staged.join(rentals, "rental_id").where(F.col("payment_date") < F.col("rental_date"))
        _spread(out, "paid_before_rental", _per_day(early), WARN,
                "SELECT p.* FROM stg_payment p JOIN stg_rental r USING (rental_id) WHERE p.payment_date < r.rental_date",
                lambda: early.select(*show, "rental_date").limit(SAMPLE_ROWS).collect())


def _shown_columns(table: str) -> list[str]:
    """The columns a sample row shows: the key, the first few others, the day."""
    key_cols = list(TABLES[table].primary_key)
    return list(dict.fromkeys(key_cols + [c for c in TABLES[table].columns if c != "last_update"][:6] + ["dt"]))


def _sample(df: DataFrame, condition, columns: list[str]) -> list:
    return df.where(condition).select(*columns).limit(SAMPLE_ROWS).collect()


def _days_until(lake: LakeResource, last: date):
    def days(table: str) -> list[date]:
        return [d for d in lake.snapshot_days("staged", f"stg_{table}") if d <= last]
    return days


def _schema_check(spark, table: str, snapshot_paths: dict[date, str]) -> AssetCheckResult:
    """Read the written Parquet's own schema (no schema imposed) and compare with the contract."""
    expected = list(TABLES[table].columns) + ["dt"]
    written = [p for p in snapshot_paths.values() if any(f.endswith(".parquet") for f in os.listdir(p))]
    actual = spark.read.parquet(written[0]).columns if written else expected
    missing = [c for c in expected if c not in actual]
    added = [c for c in actual if c not in expected]
    return result("schema_contract", len(missing) + len(added), severity=ERROR,
                  query=f"parquet schema of {written[0] if written else '(no rows written)'}",
                  missing_columns=", ".join(missing) or "none", added_columns=", ".join(added) or "none")


def _quarantine_check(counts: dict) -> AssetCheckResult:
    threshold = float(os.environ.get("DVD_QUARANTINE_ERROR_RATIO", "0.05"))
    rows_in = sum(c["rows_in"] for c in counts.values())
    quarantined = sum(c["rows_quarantined"] for c in counts.values())
    ratio = quarantined / rows_in if rows_in else 0.0
    worst = max(((d, c["rows_quarantined"] / c["rows_in"]) for d, c in counts.items() if c["rows_in"]),
                key=lambda x: x[1], default=(None, 0.0))
    # Passed at or under the threshold even with rows quarantined (counted here and in the run log):
    # a blocking check's failed result holds automation whatever its severity.
    severity = ERROR if worst[1] > threshold else WARN
    return result("quarantine_ratio", quarantined, severity=severity, passed=worst[1] <= threshold,
                  query="rows quarantined / rows read, per day", ratio=round(ratio, 6), threshold=threshold,
                  worst_day=str(worst[0]), worst_day_ratio=round(worst[1], 6))
