"""Asset checks generated from ``sql_checks.yaml`` (the seeds' {check_sql, expected_result} idea,
with a name, a target asset and a severity), so adding a rule needs no Python."""

# No `from __future__ import annotations`: Dagster reads the check functions' `context` annotation as a type.

import operator
from importlib.resources import files
from typing import TYPE_CHECKING

import yaml
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetKey,
    MetadataValue,
    Output,
    asset_check,
)

from dvd_platform.checks.results import latest_materializations
from dvd_platform.partitions import daily_partitions, window_days
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.warehouse.window import Window

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

RULES_FILE = files(__package__) / "sql_checks.yaml"  # package data: found wherever the package is installed
OPERATORS = {"==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
REQUIRED_KEYS = {"name", "asset", "sql", "expectation", "severity"}


class RuleError(ValueError):
    """A rule in sql_checks.yaml is malformed; the message names it."""


def parse_expectation(text: str) -> tuple[str, float]:
    op, _, number = str(text).strip().partition(" ")
    if op not in OPERATORS:
        raise RuleError(f"expectation {text!r}: operator must be one of {', '.join(OPERATORS)}")
    try:
        return op, float(number)
    except ValueError as exc:
        raise RuleError(f"expectation {text!r}: {number!r} is not a number") from exc


def _build(rule: dict) -> AssetChecksDefinition:
    missing = REQUIRED_KEYS - set(rule)
    if missing:
        raise RuleError(f"rule {rule.get('name', rule)!r} lacks {', '.join(sorted(missing))}")
    try:
        op, threshold = parse_expectation(rule["expectation"])
        severity = AssetCheckSeverity(str(rule["severity"]).upper())
    except ValueError as exc:  # name the rule (a bad severity is a plain ValueError otherwise)
        raise RuleError(f"rule {rule['name']!r} on {rule['asset']}: {exc}") from exc
    sql_text = rule["sql"].strip()

    @asset_check(asset=AssetKey(rule["asset"]), name=rule["name"], blocking=severity == AssetCheckSeverity.ERROR,
                 partitions_def=daily_partitions,
                 description=f"{sql_text} -- expect {rule['expectation']} ({severity.value}), per day")
    def _check(context: AssetCheckExecutionContext, warehouse: WarehouseResource):
        """One evaluation per day of the run (a rule without window parameters is queried once)."""
        key = AssetKey(rule["asset"])
        days = window_days(context.op_execution_context.partition_time_window)
        targets = latest_materializations(context.instance, key, [d.isoformat() for d in days])
        per_day = "%(" in sql_text
        params = [Window(day, day).params for day in (days if per_day else days[:1])]
        values = [rows[0][0] for rows in warehouse.query_each(sql_text, params)]
        for day, value in zip(days, values if per_day else values * len(days)):
            yield AssetCheckEvaluation(
                asset_key=key, check_name=rule["name"], severity=severity, blocking=severity == AssetCheckSeverity.ERROR,
                passed=value is not None and OPERATORS[op](float(value), threshold),
                partition=day.isoformat(), target_materialization_data=targets.get(day.isoformat()),
                metadata={"value": float(value) if value is not None else None, "expectation": rule["expectation"],
                          "query": MetadataValue.md(f"```sql\n{sql_text}\n```")},
            )
        yield Output(None)  # the check's output, which Dagster expects of a check step

    return _check


def load_sql_checks(path: "Traversable" = RULES_FILE) -> list[AssetChecksDefinition]:
    rules = yaml.safe_load(path.read_text()) or []
    seen = set()
    for rule in rules:
        key = (rule.get("asset"), rule.get("name"))
        if key in seen:
            raise RuleError(f"{path}: two rules named {key[1]!r} on {key[0]}")
        seen.add(key)
    return [_build(rule) for rule in rules]
