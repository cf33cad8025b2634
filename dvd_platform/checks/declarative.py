"""Asset checks generated from ``sql_checks.yaml`` (the seeds' {check_sql, expected_result} idea,
with a name, a target asset and a severity), so adding a rule needs no Python."""

# No `from __future__ import annotations`: Dagster reads the check functions' `context` annotation as a type.

import operator
from datetime import date, timedelta
from importlib.resources import files
from typing import TYPE_CHECKING

import yaml
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetKey,
    MetadataValue,
    asset_check,
)

from dvd_platform.partitions import daily_partitions
from dvd_platform.resources.warehouse import Window, WarehouseResource
from dvd_platform.tags import RANGE_END_TAG, RANGE_START_TAG

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


def run_window(tags: dict[str, str]) -> Window:
    """The run's days: its partition or partition range; the whole history for an unpartitioned run."""
    if RANGE_START_TAG in tags:
        return Window(date.fromisoformat(tags[RANGE_START_TAG]), date.fromisoformat(tags[RANGE_END_TAG]))
    if "dagster/partition" in tags:
        day = date.fromisoformat(tags["dagster/partition"])
        return Window(day, day)
    return Window(daily_partitions.start.date(), date.today() + timedelta(1))


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
                 description=f"{sql_text} -- expect {rule['expectation']} ({severity.value})")
    def _check(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        window = run_window(context.run.tags)
        value = warehouse.query(sql_text, window.params)[0][0]
        passed = value is not None and OPERATORS[op](float(value), threshold)
        return AssetCheckResult(
            passed=passed, severity=severity,
            metadata={"value": float(value) if value is not None else None, "expectation": rule["expectation"],
                      "window": str(window), "query": MetadataValue.md(f"```sql\n{sql_text}\n```")},
        )

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
