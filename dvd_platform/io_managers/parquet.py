"""Staged Spark DataFrames as per-day Parquet snapshots in the lake.

``handle_output`` replaces exactly the days of the run's partition window
(atomically per day, see ``LakeResource``); ``load_input`` reads one day or a
range. An input declared with ``metadata={"history": "as_of"}`` gets every day
from the first partition up to the window's end (the SCD2 dimensions need the
state of their reference tables *as of* each day, not only that day's
changes); ``"all"`` gets every staged day (type-1 dimensions take each
member's latest state, so re-running an old day never rolls them back).
"""

from __future__ import annotations

from dagster import ConfigurableIOManager, InputContext, OutputContext, TimeWindow

from dvd_platform.partitions import daily_partitions, window_days
from dvd_platform.resources.lake import LakeResource
from dvd_platform.resources.spark import SparkResource
from dvd_platform.transforms.schemas import staged_schema

ZONE = "staged"


def staged_table(asset_name: str) -> str:
    if not asset_name.startswith("stg_"):
        raise ValueError(f"parquet IO manager used for {asset_name}, which is not a stg_<table> asset")
    return asset_name[len("stg_"):]


class ParquetSnapshotIOManager(ConfigurableIOManager):
    lake: LakeResource
    spark: SparkResource

    def handle_output(self, context: OutputContext, obj) -> None:
        asset = context.asset_key.path[-1]
        days = window_days(context.asset_partitions_time_window)
        self.lake.write_days(obj, ZONE, asset, days)
        context.add_output_metadata({"path": str(self.lake.zone_dir(ZONE, asset)), "days_written": len(days)})

    def load_input(self, context: InputContext):
        asset = context.asset_key.path[-1]
        window = context.asset_partitions_time_window
        history = (context.definition_metadata or {}).get("history")
        if history == "as_of":
            days = window_days(TimeWindow(daily_partitions.start, window.end))
        elif history == "all":
            days = self.lake.snapshot_days(ZONE, asset)
        else:
            days = window_days(window)
        return self.lake.read_days(
            self.spark.session, ZONE, asset, days, staged_schema(staged_table(asset)), required=history is None
        )
