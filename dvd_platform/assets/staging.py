"""Staged assets: typed, trimmed, de-duplicated Spark DataFrames, one per landing table.

Each is computed with Spark from the raw objects of its days, in one pass over
the whole partition range (single-run backfills); a range whose files all held
only their header has nothing to parse and runs no Spark job. Rows that cannot be parsed
or lack a key go to the quarantine zone of the lake with their source object,
line number and reason; the asset still materializes the good rows.
"""

from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetsDefinition,
    Output,
    TableColumn,
    TableSchema,
    asset,
)

from dvd_platform.checks.results import evaluations
from dvd_platform.checks.staged import row_conditions, run_staged_checks, staged_check_specs
from dvd_platform.contract.tables import STAGED_TABLES, TABLES
from dvd_platform.partitions import daily_partitions, single_run, window_days
from dvd_platform.resources.lake import LakeResource
from dvd_platform.resources.spark import SparkResource
from dvd_platform.resources.thresholds import CheckThresholds
from dvd_platform.transforms.staging import day_profile, stage_table

QUARANTINE_ZONE = "quarantine"
#: What each day's materialization records of its rows.
ROW_COUNTS = ("rows_in", "rows_out", "rows_quarantined")


def _record_days(context: AssetExecutionContext, lake: LakeResource, table: str, days: list[date],
                 counts: dict[date, dict[str, int]]) -> dict[str, int]:
    """Each day's materialization gets its row counts and quarantine path; returns the window's totals."""
    for day in days:
        figures = counts.get(day, {})
        context.add_asset_metadata(
            {**{k: figures.get(k, 0) for k in ROW_COUNTS},
             "quarantine_path": str(lake.day_link(QUARANTINE_ZONE, f"stg_{table}", day))},
            partition_key=day.isoformat(),
        )
    return {k: sum(c[k] for c in counts.values()) for k in ROW_COUNTS}


def build_staged_asset(table: str) -> AssetsDefinition:
    contract = TABLES[table]

    @asset(
        name=f"stg_{table}",
        ins={"raw": AssetIn(key=f"raw_{table}")},
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        group_name="staging",
        io_manager_key="parquet_io_manager",
        kinds={"spark", "parquet"},
        tags={"dvd/engine": "spark"},
        owners=["team:data-platform"],
        description=f"{table} rows of each day, typed (explicit schema, timestamps in UTC), trimmed and "
        f"de-duplicated on the primary key (latest last_update wins); bad rows are quarantined.",
        # The columns once, on the definition (the asset's Columns tab, shown before any run), not on each
        # partition's materialization: a range run wrote them 213 times per table, about 40 % of each of those
        # events' bytes and most of their serialization time.
        metadata={"dagster/column_schema": TableSchema(columns=[TableColumn(c.name, c.type) for c in contract.schema]
                                                       + [TableColumn("dt", "date")])},
        check_specs=staged_check_specs(table),
        # Foreign-key checks read the referenced staged tables: stage those first.
        deps=[AssetKey(f"stg_{fk.table}") for fk in contract.foreign_keys],
    )
    def staged(context: AssetExecutionContext, raw: list, spark: SparkResource, lake: LakeResource,
               check_thresholds: CheckThresholds):
        days = window_days(context.partition_time_window)
        # No file: every day of the window held only its header. Its snapshots are empty and its checks
        # are decided by the (zero) counts, so such a window costs no Spark job.
        result = stage_table(spark.session, table, raw) if raw else None
        rows = result.staged if result else None
        try:
            counts = day_profile(result.annotated, contract.primary_key, row_conditions(table)) if result else {}
            totals = _record_days(context, lake, table, days, counts)
            # Most windows quarantine nothing: their quarantine snapshots are then empty, with no Spark job.
            quarantine = result.quarantine if totals["rows_quarantined"] else None
            lake.write_days(quarantine, QUARANTINE_ZONE, f"stg_{table}", days)
            if totals["rows_quarantined"]:
                context.log.warning(
                    f"stg_{table}: {totals['rows_quarantined']} of {totals['rows_in']} rows quarantined "
                    f"(see {lake.zone_dir(QUARANTINE_ZONE, f'stg_{table}')})"
                )
            # the IO manager adds a preview of what it wrote
            yield Output(rows, metadata={f"range_{k}": v for k, v in totals.items()})
            # The snapshot is written (the IO manager ran on the yield): check what was written.
            snapshots = lake.day_paths("staged", f"stg_{table}", days)
            day_results = run_staged_checks(table, rows, counts, days, lake, snapshots, check_thresholds)
            yield from evaluations(context, {day.isoformat(): r for day, r in day_results.items()})
        finally:
            if result:
                result.annotated.unpersist()

    return staged


staged_assets = [build_staged_asset(table) for table in STAGED_TABLES]
