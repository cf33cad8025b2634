"""Checks on staged snapshots, computed with Spark on the rows the staging step just produced
(from the zero counts alone, with no Spark job, when the window staged no row).

ERROR checks are blocking: a failure stops the warehouse assets of those days in the same run
(and automation waits for a passing evaluation). Known quirks of real data are WARN.

Each check is one :class:`StagedCheck` holding its spec and its evaluation, so a check cannot be
declared without being evaluated, or evaluated under another name or severity than declared.
The per-table ones derive from the table contract (primary key, required columns, foreign keys,
event column); the value ranges and the rules across columns or tables are declared here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Callable

import pyarrow.parquet as pq
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dvd_platform.checks.results import SAMPLE_ROWS, result, spec
from dvd_platform.contract.tables import TABLES, ForeignKey, TableSpec
from dvd_platform.resources.lake import LakeResource
from dvd_platform.resources.lake_state import read_state
from dvd_platform.resources.thresholds import CheckThresholds
from dvd_platform.transforms.staging import DUPLICATE_KEYS

ERROR, WARN = AssetCheckSeverity.ERROR, AssetCheckSeverity.WARN

#: One check's results over the window, one per day.
PerDay = dict[date, AssetCheckResult]
#: A staged asset's results, one list per day of the window.
DayResults = dict[date, list[AssetCheckResult]]


@dataclass(frozen=True)
class StagedCheck:
    """One check of ``stg_<table>``: what it is (name, severity, description) and how it is evaluated."""

    name: str
    description: str
    evaluate: Callable[[StagedCheck, Evaluation], PerDay]
    severity: AssetCheckSeverity = ERROR
    condition: str | None = None  # SQL an offending row meets: counted with the others in one pass
    # SQL an offending row meets once its foreign keys are resolved (it may name CARRIED columns): counted
    # in the foreign-key checks' pass; ``query`` says it in SQL over the staged tables
    resolved_condition: str | None = None
    query: str | None = None

    @property
    def blocking(self) -> bool:
        """ERROR checks hold their dependents for the day; a WARN must never stop a load."""
        return self.severity == ERROR

    def spec(self, table: str) -> AssetCheckSpec:
        return spec(f"stg_{table}", self.name, self.description, blocking=self.blocking)

    def run(self, ev: Evaluation) -> PerDay:
        return self.evaluate(self, ev)


@dataclass
class Evaluation:
    """What the checks of one staged asset read: the window's rows, and what they share (computed once)."""

    contract: TableSpec
    staged: DataFrame | None  # None: the window has no file to stage (its days held only their headers)
    counts: dict[date, dict[str, int]]
    days: list[date]
    lake: LakeResource
    snapshot_paths: dict[date, str]
    thresholds: CheckThresholds
    checks: tuple[StagedCheck, ...]

    @cached_property
    def offending(self) -> dict[str, dict[date, int]]:
        """Offending rows per row-level check and day, from the staging step's one-pass day profile."""
        names = [c.name for c in self.checks if c.condition] + [DUPLICATE_KEYS]
        return {n: {day: figures.get(n, 0) for day, figures in self.counts.items()} for n in names}

    @property
    def no_rows(self) -> bool:
        """No row was staged in the window: a check that compares rows with another table has nothing to
        compare, and runs no Spark job."""
        return not any(figures.get("rows_out", 0) for figures in self.counts.values())

    @cached_property
    def shown(self) -> list[str]:
        """The columns a sample row shows: the key, the first few others, the day."""
        key = list(self.contract.primary_key)
        return list(dict.fromkeys(key + [c for c in self.contract.columns if c != "last_update"][:6] + ["dt"]))

    @cached_property
    def resolved(self) -> DataFrame:
        """The staged rows, each foreign key joined to the referenced table's keys (``_resolved(fk)`` null
        when it resolves to nothing) and the referenced columns a rule compares with (``CARRIED``: each key's
        latest staged value). The referenced keys are distinct, so no row is repeated."""
        rows = self.staged
        for fk in self.contract.foreign_keys:
            carried = CARRIED.get((self.contract.name, fk.column), ())
            state = self.history(fk.table)
            key = F.col(fk.referenced_column).alias(_resolved(fk))
            keys = (state.groupBy(key).agg(*[F.max_by(c, "dt").alias(c) for c in carried]) if carried
                    else state.select(key).distinct())
            rows = rows.join(keys, rows[fk.column] == keys[_resolved(fk)], "left")
        return rows

    @cached_property
    def resolved_counts(self) -> dict[str, dict[date, int]]:
        """Per day, in one Spark job over the resolved rows: the rows whose foreign key resolves to nothing
        (by the key's column) and the rows that meet a rule's ``resolved_condition`` (by the rule's name).
        Reading a referenced table's state may first build its weekly snapshot (``lake_state``). Empty, with
        no job, when nothing was staged."""
        conditions = {fk.column: F.col(fk.column).isNotNull() & F.col(_resolved(fk)).isNull()
                      for fk in self.contract.foreign_keys}
        conditions |= {c.name: F.expr(c.resolved_condition) for c in self.checks if c.resolved_condition}
        if self.no_rows or not conditions:
            return {}
        per_day = self.resolved.groupBy("dt").agg(*[F.count(F.when(c, 1)).alias(n) for n, c in conditions.items()]
                                                  ).collect()
        return {name: {r["dt"]: r[name] for r in per_day} for name in conditions}

    def sample(self, condition: str) -> list:
        return self.staged.where(F.expr(condition)).select(*self.shown).limit(SAMPLE_ROWS).collect()

    def history(self, table: str) -> DataFrame:
        """``table``'s state up to the window's last day, each key's latest row (what a key may resolve to);
        read from its weekly state snapshot plus the days after, so its cost does not grow with history."""
        last = max(self.days)
        return read_state(self.lake, self.staged.sparkSession, table, before=last, upto=last)

    def spread(self, check: StagedCheck, per_day: dict[date, int], query: str, samples: Callable[[], list]) -> PerDay:
        """One result per day; sample rows (taken once, only when some day offends) go to their day."""
        rows = samples() if any(per_day.values()) else []
        out = {}
        for day in self.days:
            n = per_day.get(day, 0)
            day_samples = [r for r in rows if r["dt"] == day] if n else None
            out[day] = result(check.name, n, severity=check.severity, query=query, samples=day_samples)
        return out


def _resolved(fk: ForeignKey) -> str:
    return f"_resolved_{fk.column}"


def _rows_meeting_condition(check: StagedCheck, ev: Evaluation) -> PerDay:
    return ev.spread(check, ev.offending[check.name], f"SELECT * FROM stg_{ev.contract.name} WHERE {check.condition}",
                     lambda: ev.sample(check.condition))


def _primary_key(check: StagedCheck, ev: Evaluation) -> PerDay:
    """Per day: staged rows beyond the first of each key (from the day profile; a key twice counts 1), plus
    the rows without a key (the check's condition)."""
    key = ", ".join(ev.contract.primary_key)
    dup, null_key = ev.offending[DUPLICATE_KEYS], ev.offending[check.name]
    bad = {d: dup.get(d, 0) + null_key.get(d, 0) for d in set(dup) | set(null_key)}

    def samples() -> list:
        duplicates = ev.staged.groupBy(*ev.contract.primary_key, "dt").count().where("count > 1")
        return duplicates.limit(SAMPLE_ROWS).collect() + ev.sample(check.condition)

    return ev.spread(check, bad, f"SELECT {key}, dt, count(*) FROM stg_{ev.contract.name} GROUP BY {key}, dt "
                     f"HAVING count(*) > 1 -- plus rows where {check.condition}", samples)


def _foreign_key(fk: ForeignKey) -> StagedCheck:
    """Keys that resolve to no staged row of the referenced table up to the window's last day."""

    def evaluate(check: StagedCheck, ev: Evaluation) -> PerDay:
        query = (f"SELECT * FROM stg_{ev.contract.name} t WHERE NOT EXISTS (SELECT 1 FROM stg_{fk.table} r "
                 f"WHERE r.{fk.referenced_column} = t.{fk.column} AND r.dt <= <last day>)")
        orphan = F.col(fk.column).isNotNull() & F.col(_resolved(fk)).isNull()
        return ev.spread(check, ev.resolved_counts.get(fk.column, {}), query,
                         lambda: ev.resolved.where(orphan).select(*ev.shown).limit(SAMPLE_ROWS).collect())

    severity = WARN if fk.may_lag else ERROR
    return StagedCheck(f"fk_{fk.column}", f"{fk.column} resolves to a staged {fk.table} ({severity.value})",
                       evaluate, severity)


def _rows_meeting_resolved_condition(check: StagedCheck, ev: Evaluation) -> PerDay:
    """Rows that meet the check's ``resolved_condition``, counted in the foreign-key checks' pass."""
    carried = [c for (table, _), columns in CARRIED.items() if table == ev.contract.name for c in columns]
    return ev.spread(check, ev.resolved_counts.get(check.name, {}), check.query or check.resolved_condition,
                     lambda: ev.resolved.where(F.expr(check.resolved_condition)).select(*ev.shown, *carried)
                     .limit(SAMPLE_ROWS).collect())


def _schema_contract(check: StagedCheck, ev: Evaluation) -> PerDay:
    """Read the written Parquet's own schema (its footer, with pyarrow: no Spark job) and compare with
    the contract: one result for the window, reported on each day."""
    expected = list(ev.contract.columns) + ["dt"]
    written = next((os.path.join(p, f) for p in ev.snapshot_paths.values() for f in sorted(os.listdir(p))
                    if f.endswith(".parquet")), None)
    actual = pq.read_schema(written).names if written else expected
    missing = [c for c in expected if c not in actual]
    added = [c for c in actual if c not in expected]
    outcome = result(check.name, len(missing) + len(added), severity=check.severity,
                     query=f"parquet schema of {written or '(no rows written)'}",
                     missing_columns=", ".join(missing) or "none", added_columns=", ".join(added) or "none")
    return dict.fromkeys(ev.days, outcome)


def _quarantine_ratio(check: StagedCheck, ev: Evaluation) -> PerDay:
    no_rows = {"rows_in": 0, "rows_quarantined": 0}
    return {day: _quarantine_check({day: ev.counts.get(day, no_rows)}, ev.thresholds.quarantine_ratio)
            for day in ev.days}


def _quarantine_check(counts: dict, threshold: float) -> AssetCheckResult:
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


def _value_range(name: str, valid: str, severity: AssetCheckSeverity = ERROR) -> StagedCheck:
    """Rows that do not satisfy ``valid`` (SQL) offend."""
    return StagedCheck(name, f"{valid} ({severity.value})", _rows_meeting_condition, severity, f"NOT ({valid})")


#: Value ranges, per table.
RANGES: dict[str, tuple[StagedCheck, ...]] = {
    "payment": (_value_range("amount_not_negative", "amount >= 0"),
                _value_range("amount_not_zero", "amount <> 0", WARN)),
    "film": (_value_range("rates_and_length_positive", "rental_rate > 0 AND replacement_cost > 0 AND length > 0"),),
    "rental": (_value_range("returned", "return_date IS NOT NULL", WARN),),
}

#: Columns of a referenced table that a rule of the referencing table compares with, by (table, foreign-key
#: column): the foreign-key resolution brings them along under their own names.
CARRIED: dict[tuple[str, str], tuple[str, ...]] = {("payment", "rental_id"): ("rental_date",)}

#: Rules across columns or tables, per table.
RULES: dict[str, tuple[StagedCheck, ...]] = {
    "rental": (StagedCheck("return_after_rental", "return_date >= rental_date", _rows_meeting_condition,
                           condition="return_date < rental_date"),),
    "payment": (StagedCheck("paid_before_rental", "payments dated before their rental (a known pagila quirk, WARN)",
                            _rows_meeting_resolved_condition, WARN, resolved_condition="payment_date < rental_date",
                            query="SELECT p.* FROM stg_payment p JOIN stg_rental r USING (rental_id) "
                                  "WHERE p.payment_date < r.rental_date"),),
}

SCHEMA_CONTRACT = StagedCheck("schema_contract", "the snapshot's Parquet schema has exactly the contract's columns",
                              _schema_contract)
QUARANTINE_RATIO = StagedCheck("quarantine_ratio", "quarantined / input rows: ERROR above the threshold "
                               "(DVD_QUARANTINE_ERROR_RATIO, default 0.05) fails the day; under it, the count is "
                               "reported", _quarantine_ratio)


def _any_null(columns: tuple[str, ...]) -> str:
    return " OR ".join(f"{c} IS NULL" for c in columns)


def staged_checks(table: str) -> tuple[StagedCheck, ...]:
    """Every check of ``stg_<table>``: the contract's (key, required columns, foreign keys, event day),
    the file checks, then the table's ranges and rules."""
    contract = TABLES[table]
    key, required, event = contract.primary_key, contract.required, contract.event_column
    checks = [StagedCheck("primary_key", f"{', '.join(key)} unique and not null per day", _primary_key,
                          condition=_any_null(key)),
              SCHEMA_CONTRACT, QUARANTINE_RATIO]
    if required:
        checks.append(StagedCheck("required_columns", f"not null: {', '.join(required)}", _rows_meeting_condition,
                                  condition=_any_null(required)))
    checks += [_foreign_key(fk) for fk in contract.foreign_keys]
    checks += RANGES.get(table, ())
    if event:
        checks.append(StagedCheck("event_time_in_partition", f"{event} falls on the partition's UTC day",
                                  _rows_meeting_condition, condition=f"to_date({event}) <> dt"))
    checks += RULES.get(table, ())
    return tuple(checks)


def row_conditions(table: str) -> dict[str, str]:
    """The row-level checks' SQL conditions (an offending row meets it), counted in staging's day profile."""
    return {c.name: c.condition for c in staged_checks(table) if c.condition}


def staged_check_specs(table: str) -> list[AssetCheckSpec]:
    return [check.spec(table) for check in staged_checks(table)]


def run_staged_checks(table: str, staged: DataFrame | None, counts: dict, days: list[date], lake: LakeResource,
                      snapshot_paths: dict[date, str], thresholds: CheckThresholds) -> DayResults:
    """Evaluate every check of ``stg_<table>`` on the window's staged rows, per day."""
    checks = staged_checks(table)
    ev = Evaluation(TABLES[table], staged, counts, days, lake, snapshot_paths, thresholds, checks)
    out: DayResults = {day: [] for day in days}
    for check in checks:
        for day, outcome in check.run(ev).items():
            out[day].append(outcome)
    return out
