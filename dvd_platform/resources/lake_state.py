"""A staged table's state as of a day, read from a weekly compacted snapshot plus the days after it.

Why: the SCD2 and type-1 dimensions and the foreign-key checks need a reference table's state as
of some day. Reading every daily snapshot since the first partition made a daily run's cost grow
with the platform's age. A *state snapshot* holds, for every key staged up to a Sunday, that
key's latest row. Any lookup "the key's latest row with dt <= d" gives the same answer on the
snapshot plus the daily snapshots after it as on the whole history, for every d from that Sunday
on: compaction only drops rows that a later row of the same key hides. So a daily run reads one
snapshot and at most a week of days, whatever the history's length.

A state snapshot records the version of every daily snapshot it summarises. A day re-staged (or
first staged) on or before its Sunday makes it stale, and it is rebuilt from the newest snapshot
still valid; so re-running an old day costs one rebuild, and no load order can leave a stale
state behind. The first reader that needs a Sunday builds it (one Spark job per table a week)
and swaps it in under the asset's swap lock, like the daily snapshots; snapshots older than the
newest ``KEEP`` and than the one just written are then removed.

Layout, beside the staged zone: ``state/stg_<table>/asof=YYYY-MM-DD`` -> symlink to
``state/stg_<table>/_versions/<id>/`` (Parquet, plus ``_covers.json``: day -> daily version).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from dvd_platform.contract.tables import TABLES
from dvd_platform.resources.lake import LakeResource, holds_parquet, read_snapshots
from dvd_platform.transforms.schemas import staged_schema
from dvd_platform.transforms.warehouse import latest

STAGED, ZONE = "staged", "state"
COVERS = "_covers.json"
_LINK = "asof="
KEEP = 5  # weekly state snapshots kept per table: re-running any day of the last month stays cheap


def week_end(day: date) -> date:
    """The Sunday on or before ``day``: the days a state snapshot is kept for."""
    return day - timedelta(days=(day.weekday() + 1) % 7)


def read_state(lake: LakeResource, spark: SparkSession, table: str, *, before: date, upto: date) -> DataFrame:
    """Rows of ``stg_<table>`` on which each key's latest row with ``dt <= d`` is exact for every d in
    [``before``, ``upto``]: the state snapshot of the Sunday on or before ``before`` plus the staged days
    after it up to ``upto``. Days never staged are simply absent, as in the whole history."""
    asset = f"stg_{table}"
    staged = {d: p for d, p in _current_versions(lake, asset).items() if d <= upto}
    sunday = week_end(before)
    paths = [p for d, p in sorted(staged.items()) if d > sunday]
    if any(d <= sunday for d in staged):
        paths.insert(0, ensure_snapshot(lake, spark, table, sunday, staged))
    return read_snapshots(spark, paths, staged_schema(table))


def read_latest(lake: LakeResource, spark: SparkSession, table: str) -> DataFrame:
    """Rows of ``stg_<table>`` on which each key's latest row is exact: its state as of the newest staged day
    (what the type-1 dimensions take, so re-running an old day never rolls them back)."""
    newest = max(lake.snapshot_days(STAGED, f"stg_{table}"), default=None)
    if newest is None:
        return spark.createDataFrame([], staged_schema(table))
    return read_state(lake, spark, table, before=newest, upto=newest)


def latest_inputs(lake: LakeResource, table: str) -> dict[str, str]:
    """Day -> version of each staged snapshot of ``table`` that holds rows: what ``read_latest`` is made of.

    Empty snapshots are left out: they hide no key's row, so re-staging a day without rows (a daily run
    of a reference table that did not change) leaves the latest state, and this, as they were. Taken
    under the swap lock, so a day being re-staged is seen with its old version or its new one."""
    asset = f"stg_{table}"
    with lake.swap_lock(STAGED, asset):
        return {day.isoformat(): path for day, path in _current_versions(lake, asset).items() if holds_parquet(path)}


def ensure_snapshot(lake: LakeResource, spark: SparkSession, table: str, sunday: date,
                    staged: dict[date, str]) -> str:
    """The path of ``table``'s valid state snapshot as of ``sunday``, built first if missing or stale."""
    asset = f"stg_{table}"
    wanted = {d.isoformat(): p for d, p in staged.items() if d <= sunday}
    link = _link(lake, asset, sunday)
    if _covers(link) == wanted:
        return os.path.realpath(link)
    base = _newest_valid(lake, asset, sunday, wanted)
    paths = ([os.path.realpath(_link(lake, asset, base))] if base else []) + [
        p for d, p in sorted(staged.items()) if (base is None or d > base) and d <= sunday]
    rows = read_snapshots(spark, paths, staged_schema(table))
    return _store(lake, latest(rows, *TABLES[table].primary_key), asset, sunday, wanted)


def _newest_valid(lake: LakeResource, asset: str, sunday: date, wanted: dict[str, str]) -> date | None:
    """The newest snapshot before ``sunday`` whose days are still the staged ones (a base to build on)."""
    for day in sorted(state_days(lake, asset), reverse=True):
        if day < sunday and _covers(_link(lake, asset, day)) == {d: p for d, p in wanted.items() if d <= day.isoformat()}:
            return day
    return None


def _store(lake: LakeResource, rows: DataFrame, asset: str, sunday: date, covers: dict[str, str]) -> str:
    """Write ``rows`` as the snapshot of ``sunday`` and swap its link in (atomic, like the daily snapshots)."""
    version = lake.zone_dir(ZONE, asset) / "_versions" / uuid.uuid4().hex
    rows.write.mode("error").parquet(str(version))
    (version / COVERS).write_text(json.dumps(covers, sort_keys=True))
    with lake.swap_lock(ZONE, asset):
        previous = lake.swap_link(_link(lake, asset, sunday), version)
        if previous is not None and previous != version:
            shutil.rmtree(previous, ignore_errors=True)
        _prune(lake, asset, sunday)
    return str(version)


def _prune(lake: LakeResource, asset: str, written: date) -> None:
    """Drop the snapshots older than both the one just ``written`` and the newest ``KEEP``: each holds every
    key ever staged, so keeping all would grow the lake with the square of its age. An old day's re-run
    keeps what it wrote and everything newer; a re-run older than all that rebuilds from the start, once."""
    for day in [d for d in state_days(lake, asset)[:-KEEP] if d < written]:
        link = _link(lake, asset, day)
        target = Path(os.path.realpath(link))
        link.unlink()
        shutil.rmtree(target, ignore_errors=True)


def state_days(lake: LakeResource, asset: str) -> list[date]:
    """The Sundays that have a state snapshot of ``asset`` (valid or not)."""
    return sorted(date.fromisoformat(p.name[len(_LINK):]) for p in lake.zone_dir(ZONE, asset).glob(_LINK + "*"))


def _link(lake: LakeResource, asset: str, day: date) -> Path:
    return lake.zone_dir(ZONE, asset) / f"{_LINK}{day.isoformat()}"


def _covers(link: Path) -> dict[str, str] | None:
    try:
        return json.loads((link / COVERS).read_text())
    except FileNotFoundError:
        return None


def _current_versions(lake: LakeResource, asset: str) -> dict[date, str]:
    return lake.day_paths(STAGED, asset, lake.snapshot_days(STAGED, asset))
