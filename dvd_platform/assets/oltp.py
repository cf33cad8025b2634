"""The OLTP source connector as an asset: ``oltp_export`` writes a day's drop into landing.

It sits upstream of ``landing_drops``: an exported day is an ordinary drop (same
layout, manifest last), so the landing sensor picks it up and raw -> staging ->
warehouse run unchanged. It is off by default: the asset is in the graph and can be
materialized by hand, but only ``DVD_OLTP_EXPORT=1`` (read when the code location
loads) starts the schedule that exports each finished UTC day; without it, landing
is fed by file drops only.
"""

import os
from datetime import timedelta

from dagster import (
    AssetExecutionContext,
    DefaultScheduleStatus,
    MaterializeResult,
    RunRequest,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    schedule,
)

from dvd_platform.partitions import daily_partitions, single_run, window_days
from dvd_platform.resources.oltp import OltpSource
from dvd_platform.resources.s3 import S3Buckets
from dvd_platform.tags import SOURCE_GROUP
from dvd_platform.contract.drops import manifest_key, upload_drops as seed  # the runtime upload (dvd_platform.contract.drops), not the dev seeder

OLTP_EXPORT_ENV = "DVD_OLTP_EXPORT"


def oltp_export_enabled() -> bool:
    return os.environ.get(OLTP_EXPORT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@asset(
    group_name=SOURCE_GROUP,
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    kinds={"postgres", "s3"},
    description="Exports each day of the OLTP pagila database into the landing area (the seeder's layout and "
    "manifest, manifest last): the day's rentals and payments, and the reference rows changed that day.",
)
def oltp_export(context: AssetExecutionContext, oltp: OltpSource, s3: S3Buckets) -> MaterializeResult:
    days = window_days(context.partition_time_window)
    result = seed(oltp.drop_source(), s3.get_client(), s3.landing_bucket, days, log=context.log.info)
    return MaterializeResult(metadata={
        "days": len(result.days),
        "bytes": result.bytes,
        **{f"rows_{table}": rows for table, rows in result.rows.items()},
        "manifests": [f"s3://{s3.landing_bucket}/{manifest_key(day)}" for day in result.days][:50],
    })


oltp_export_job = define_asset_job(
    "oltp_export_job", selection=[oltp_export],
    description="Export one day (or a range) from the OLTP database into landing.",
)


@schedule(job=oltp_export_job, cron_schedule="15 0 * * *", execution_timezone="UTC",
          # Switched on by configuration, read when the code location loads (like the sensor interval).
          default_status=DefaultScheduleStatus.RUNNING if oltp_export_enabled() else DefaultScheduleStatus.STOPPED,
          description=f"Exports the previous UTC day from the OLTP database at 00:15 (on when {OLTP_EXPORT_ENV}=1).")
def oltp_daily_export(context: ScheduleEvaluationContext) -> RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"oltp_export:{day}", partition_key=day)
