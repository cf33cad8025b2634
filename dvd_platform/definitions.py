"""The code location: the one ``Definitions`` of dvd_platform.

Resources are chosen here, in one place, and configured by ``EnvVar`` (resolved
when a run starts, never at import): locally the values come from
``.dvd/stack.env`` (exported by ``dvd-platform up``), in production from the
deployment's environment. Runs execute in process: Spark steps share one
SparkSession instead of starting a JVM per step.
"""

from __future__ import annotations

import os

from dvd_platform.dagster_notices import filter_dagster_notices

filter_dagster_notices()  # before the imports below: the asset decorators emit the notices when they run

from dagster import (
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    in_process_executor,
    with_source_code_references,
)

from dvd_platform.assets.marts import mart_assets
from dvd_platform.assets.oltp import oltp_daily_export, oltp_export, oltp_export_job
from dvd_platform.assets.raw import landing_drops, raw_drops
from dvd_platform.assets.reports import report_assets
from dvd_platform.assets.staging import staged_assets
from dvd_platform.assets.warehouse import warehouse_assets
from dvd_platform.checks.declarative import load_sql_checks
from dvd_platform.jobs import daily_pipeline
from dvd_platform.io_managers.parquet import ParquetSnapshotIOManager
from dvd_platform.io_managers.postgres import PostgresWarehouseIOManager
from dvd_platform.io_managers.raw_s3 import RawS3IOManager
from dvd_platform.resources.lake import LakeResource
from dvd_platform.resources.oltp import OltpSource
from dvd_platform.resources.s3 import S3Buckets
from dvd_platform.resources.spark import SparkResource
from dvd_platform.resources.thresholds import CheckThresholds
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.schedules import daily_catch_up
from dvd_platform.sensors import audit_failed_runs, landing_sensor


def build_resources() -> dict:
    s3 = S3Buckets(
        endpoint_url=EnvVar("DVD_S3_ENDPOINT_URL"),  # empty for AWS S3
        region_name=EnvVar("AWS_DEFAULT_REGION"),
        landing_bucket=EnvVar("DVD_LANDING_BUCKET"),
        lake_bucket=EnvVar("DVD_LAKE_BUCKET"),
    )
    spark = SparkResource(
        master=EnvVar("DVD_SPARK_MASTER"),
        driver_memory=EnvVar("DVD_SPARK_DRIVER_MEMORY"),
        shuffle_partitions=EnvVar.int("DVD_SPARK_SHUFFLE_PARTITIONS"),
    )
    lake = LakeResource(root=EnvVar("DVD_LAKE_ROOT"))
    warehouse = WarehouseResource(dsn=EnvVar("DVD_PG_DSN"))
    return {
        "s3": s3,
        "spark": spark,
        "lake": lake,
        "raw_io_manager": RawS3IOManager(s3=s3, staging_dir=EnvVar("DVD_STAGING_DIR")),
        "warehouse": warehouse,
        "parquet_io_manager": ParquetSnapshotIOManager(lake=lake, spark=spark),
        "warehouse_io_manager": PostgresWarehouseIOManager(warehouse=warehouse),
        "oltp": OltpSource(dsn=EnvVar("DVD_OLTP_DSN")),
        "check_thresholds": CheckThresholds(
            quarantine_error_ratio=EnvVar("DVD_QUARANTINE_ERROR_RATIO"),
            freshness_lag_days=EnvVar.int("DVD_FRESHNESS_LAG_DAYS"),
        ),
    }


# Declarative automation (the marts follow their facts) needs its sensor running. Its interval is read
# when the code location loads, like the landing sensor's. A short one costs the daemon little: one
# evaluation of every asset over 213 loaded days took 0.15-0.42 s in process (BENCHMARKS.md section 16).
automation_sensor = AutomationConditionSensorDefinition(
    "default_automation_condition_sensor", target=AssetSelection.all(), default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int(os.environ.get("DVD_AUTOMATION_INTERVAL_SECONDS", "30")),
)

# Each asset's page links to the file and line that defines it ("Code references" in the UI).
# They are local paths: the repository has no public remote to link to with link_code_references_to_git.
defs = Definitions(
    assets=with_source_code_references(
        [oltp_export, landing_drops, raw_drops, *staged_assets, *warehouse_assets, *mart_assets, *report_assets]
    ),
    asset_checks=load_sql_checks(),
    jobs=[daily_pipeline, oltp_export_job],
    sensors=[landing_sensor, audit_failed_runs, automation_sensor],
    schedules=[daily_catch_up, oltp_daily_export],
    resources=build_resources(),
    executor=in_process_executor,
)
