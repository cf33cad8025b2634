"""The daily safety net: at 07:00 UTC, load yesterday unless the sensor already did."""

from datetime import timedelta

from dagster import AssetKey, DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule
from botocore.exceptions import ClientError

from dvd_platform.jobs import daily_pipeline
from dvd_platform.resources.s3 import S3Buckets
from dvd_platform.contract.drops import manifest_key

#: The last asset of the daily pipeline: a day is loaded when its payments are.
LOADED_MARKER = AssetKey("fact_payment")


@schedule(job=daily_pipeline, cron_schedule="0 7 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.RUNNING,
          description="Loads the previous UTC day at 07:00 unless the landing sensor already loaded it.")
def daily_catch_up(context: ScheduleEvaluationContext, s3: S3Buckets):
    day = (context.scheduled_execution_time - timedelta(days=1)).date()
    partition = day.isoformat()
    loaded = context.instance.get_materialized_partitions(LOADED_MARKER)
    if partition in loaded:
        return SkipReason(f"{partition} is already loaded (fact_payment materialized)")
    try:
        s3.get_client().head_object(Bucket=s3.landing_bucket, Key=manifest_key(day))
    except ClientError:
        return SkipReason(f"{partition} has no complete drop yet (no {manifest_key(day)})")
    return RunRequest(run_key=f"schedule:{partition}", partition_key=partition)
