"""The one daily partitioning shared by every partitioned asset (days in UTC)."""

from __future__ import annotations

import os
from datetime import date, timedelta

from dagster import BackfillPolicy, DailyPartitionsDefinition, MonthlyPartitionsDefinition, TimeWindow

DEFAULT_START = "2022-01-01"

# The code location reads its start day once, when it loads (a partitions definition is
# structure, not run config): set DVD_PARTITIONS_START before `dagster dev` to move it.
daily_partitions = DailyPartitionsDefinition(
    start_date=os.environ.get("DVD_PARTITIONS_START", DEFAULT_START), timezone="UTC"
)

#: Spark assets handle a whole range in one pass: a backfill of N days is one run, not N.
single_run = BackfillPolicy.single_run()


def window_days(window: TimeWindow) -> list[date]:
    """The UTC days of a partition time window (end exclusive)."""
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(n) for n in range((end - start).days)]


#: Months (UTC) for assets that hold one row set per month; their daily parents map by time window.
monthly_partitions = MonthlyPartitionsDefinition(start_date=daily_partitions.start.strftime("%Y-%m-01"), timezone="UTC")
