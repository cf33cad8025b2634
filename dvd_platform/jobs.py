"""The daily pipeline job: one day (or range) of raw -> staging -> warehouse.

Marts are not in it: they follow their facts by declarative automation.
"""

from dagster import AssetSelection, define_asset_job

from dvd_platform.partitions import daily_partitions

SPARK_RUN_TAGS = {"dvd/engine": "spark"}  # the run queue limits how many of these run at once (dagster.yaml)

daily_pipeline = define_asset_job(
    "daily_pipeline",
    selection=AssetSelection.groups("raw", "staging", "warehouse"),
    partitions_def=daily_partitions,
    tags=SPARK_RUN_TAGS,
    description="Load one day (or a range) of drops from landing into the warehouse.",
)
