"""The daily pipeline job: one day (or range) of raw -> staging -> warehouse.

Daily-partitioned like every asset it selects (Dagster infers it from them).

Marts are not in it: they follow their facts by declarative automation.
"""

from dagster import AssetSelection, define_asset_job

SPARK_RUN_TAGS = {"dvd/engine": "spark"}  # the run queue limits how many of these run at once (dagster.yaml)

daily_pipeline = define_asset_job(
    "daily_pipeline",
    selection=AssetSelection.groups("raw", "staging", "warehouse"),
    tags=SPARK_RUN_TAGS,
    description="Load one day (or a range) of drops from landing into the warehouse.",
)
