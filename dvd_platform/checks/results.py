"""Turn counts of offending rows into check results that explain themselves, one per partition.

Every check of the platform is partitioned like its asset: a range run reports one evaluation
per day (per month for the monthly mart), so the UI shows which day failed and automation gates
each day on that day's result. Dagster attributes an ``AssetCheckResult`` to a partition only in a
single-partition step, so range steps emit ``AssetCheckEvaluation`` events, each pointing at the
partition's materialization it checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    MetadataValue,
    Output,
    PartitionsDefinition,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.storage.event_log.base import AssetRecordsFilter

from dvd_platform.partitions import daily_partitions

SAMPLE_ROWS = 10


def result(name: str, offending: int, *, severity: AssetCheckSeverity, query: str, samples: list | None = None,
           asset_key=None, passed: bool | None = None, **extra) -> AssetCheckResult:
    """A check result: passed when nothing offends; metadata holds the count, up to 10 sample
    offending rows and the query that found them."""
    metadata = {"offending_rows": offending, "query": MetadataValue.md(f"```sql\n{query.strip()}\n```"), **extra}
    if samples:
        metadata["samples"] = MetadataValue.json([_jsonable(s) for s in samples[:SAMPLE_ROWS]])
    return AssetCheckResult(
        check_name=name, asset_key=asset_key, passed=offending == 0 if passed is None else passed,
        severity=severity, metadata=metadata,
    )


def _jsonable(row) -> dict:
    data = row.asDict() if hasattr(row, "asDict") else dict(row)
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in data.items()}


def spec(asset: str, name: str, description: str, blocking: bool = True,
         partitions_def: PartitionsDefinition = daily_partitions) -> AssetCheckSpec:
    """A check partitioned like its asset (daily unless the asset says otherwise)."""
    return AssetCheckSpec(name=name, asset=asset, description=description, blocking=blocking,
                          partitions_def=partitions_def)


def evaluations(context: AssetExecutionContext, per_partition: Mapping[str, Iterable[AssetCheckResult]],
                asset_key: AssetKey | None = None) -> Iterator[AssetCheckEvaluation]:
    """One evaluation per partition and check, each targeting that partition's latest materialization
    (so Dagster counts it as current for the partition). Yield them after the asset's output: the
    materializations must be in the event log. A failed blocking ERROR evaluation fails the step."""
    key = asset_key or context.asset_key
    blocking = {s.name: s.blocking for s in context.assets_def.check_specs if s.asset_key == key}
    targets = latest_materializations(context.instance, key, list(per_partition))
    reported: set[str] = set()
    for partition, results in per_partition.items():
        for r in results:
            reported.add(r.check_name)
            yield AssetCheckEvaluation(
                asset_key=key, check_name=r.check_name, passed=r.passed, metadata=r.metadata,
                target_materialization_data=targets.get(partition), severity=r.severity,
                blocking=blocking[r.check_name], partition=partition,
            )
    for name in sorted(reported):  # each check's output, once, as Dagster yields it for an AssetCheckResult
        yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(AssetCheckKey(key, name)))


def latest_materializations(instance: DagsterInstance, key: AssetKey, partitions: list[str]
                            ) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """The newest materialization record of each partition, read newest first in pages."""
    found: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    cursor = None
    while len(found) < len(partitions):
        page = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=max(100, 2 * len(partitions)),
            cursor=cursor)
        for record in page.records:
            found.setdefault(record.partition_key, AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp))
        if not page.has_more:
            break
        cursor = page.cursor
    return found
