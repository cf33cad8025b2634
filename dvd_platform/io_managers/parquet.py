"""Staged Spark DataFrames as per-day Parquet snapshots in the lake.

``handle_output`` replaces exactly the days of the run's partition window
(atomically per day, see ``LakeResource``); ``load_input`` reads one day or a
range. An input declared with ``metadata={"history": "as_of"}`` gets the table's
state as of the day before the window plus the window's days (the SCD2
dimensions need the state of their reference tables *as of* each day, not
only that day's changes), read from a weekly state snapshot plus the days after
it (``lake_state``), never the whole history. (The type-1 dimensions read their
sources' latest state themselves, ``lake_state.read_latest``: they decide first
whether anything changed.)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from dvd_platform.partitions import window_days
from dvd_platform.resources.lake import LakeResource
from dvd_platform.resources.lake_state import read_state
from dvd_platform.resources.spark import SparkResource
from dvd_platform.transforms.schemas import staged_schema

ZONE = "staged"
PREVIEW_ROWS = 5
NO_ROWS = "_no rows_"


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
        written = self.lake.write_days(obj, ZONE, asset, days)
        try:
            shown = preview(written.values())
        except OSError:  # a run re-staging these days removed the version meanwhile: the data is written
            shown = NO_ROWS
        context.add_output_metadata({"path": str(self.lake.zone_dir(ZONE, asset)), "days_written": len(days),
                                     "preview": MetadataValue.md(shown)})

    def load_input(self, context: InputContext):
        asset = context.asset_key.path[-1]
        window = context.asset_partitions_time_window
        table, days = staged_table(asset), window_days(window)
        history = (context.definition_metadata or {}).get("history")
        if history == "as_of":
            return read_state(self.lake, self.spark.session, table, before=days[0] - timedelta(1), upto=days[-1])
        return self.lake.read_days(self.spark.session, ZONE, asset, days, staged_schema(table))


def preview(snapshots: Iterable[str], rows: int = PREVIEW_ROWS) -> str:
    """A markdown table of the first rows written (the window's days in order, each day's files in order),
    read back with pyarrow: no Spark job, where taking them from the DataFrame cost one per staged table."""
    columns: list[str] = []
    records: list[dict] = []
    for snapshot in snapshots:
        for part in sorted(Path(snapshot).glob("*.parquet")):
            batch = next(pq.ParquetFile(part).iter_batches(batch_size=rows - len(records)), None)
            if batch is not None and batch.num_rows:
                columns = batch.schema.names
                records += batch.to_pylist()
            if len(records) == rows:
                return _markdown(columns, records)
    return _markdown(columns, records) if records else NO_ROWS


def _markdown(columns: list[str], records: list[dict]) -> str:
    """A markdown table; a cell is cut at 40 characters and its ``|`` escaped, so a row stays one line."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in records:
        cells = ("" if record[c] is None else str(record[c]).replace("|", "\\|")[:40] for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
