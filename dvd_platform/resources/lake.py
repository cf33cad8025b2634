"""The Parquet lake: per-day snapshots that are replaced atomically.

Layout under ``root``::

    <zone>/<asset>/dt=YYYY-MM-DD   -> symlink to the day's current version
    <zone>/<asset>/_versions/<write id>/_day=YYYY-MM-DD/part-*.parquet

A write puts a whole range aside in one Spark job (partitioned by day; none when
the range has no row), then swaps each day's symlink with ``os.replace``, which is atomic: a reader sees
the old version or the new one, never a mix, and a crash mid-write leaves the
old snapshot in place. Versions no longer pointed to are removed afterwards.

The swaps of an asset hold a POSIX lock on ``<zone>/<asset>/.swap.lock``
(``swap_lock``): two runs (processes) writing the same day at once would otherwise both
read the same previous version, and the version of the first to swap would
never be removed. The lock is released when its process ends, also by SIGKILL.

The lake root is a local (or shared, e.g. NFS) path. On object storage
(``s3a://``) a rename is a copy, so this swap is not atomic there; that
production option needs a table format with atomic commits and is documented,
not implemented.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
from dagster import ConfigurableResource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

DAY_COLUMN = "dt"
_WRITE_PARTITION = "_day"
SWAP_LOCK = ".swap.lock"


class LakeResource(ConfigurableResource):
    root: str

    def zone_dir(self, zone: str, asset: str) -> Path:
        return Path(self.root) / zone / asset

    def day_link(self, zone: str, asset: str, day: date) -> Path:
        return self.zone_dir(zone, asset) / f"{DAY_COLUMN}={day.isoformat()}"

    def write_days(self, df, zone: str, asset: str, days: list[date]) -> dict[date, str]:
        """Write ``df`` (which has a ``dt`` date column) as the snapshots of ``days``.

        Every day of ``days`` is replaced, also days without rows (they become
        empty snapshots), so a re-run never leaves a stale day behind. ``df`` None
        means no rows at all: every day becomes an empty snapshot, with no Spark job.
        Returns the version directory of each day.
        """
        version_root = self.zone_dir(zone, asset) / "_versions" / uuid.uuid4().hex
        if df is not None:
            from pyspark.sql import functions as F

            (
                df.withColumn(_WRITE_PARTITION, F.date_format(F.col(DAY_COLUMN), "yyyy-MM-dd"))
                # Rows of a day go to one task: one file per day, not one per task holding some of its
                # rows (up to spark.sql.shuffle.partitions each: 744 files for pagila's 186 days with
                # payments, now 186), so fewer files to commit here and to open when the day is read back.
                # A rebalance, not a repartition: adaptive execution still splits a day too big for one
                # task (spark.sql.adaptive.advisoryPartitionSizeInBytes) into several files.
                .hint("rebalance", _WRITE_PARTITION)
                .write.partitionBy(_WRITE_PARTITION)
                .mode("error")  # "errorifexists" in classic only; Spark Connect knows this name
                .parquet(str(version_root))
            )
        versions = {}
        with self.swap_lock(zone, asset):
            for day in days:
                target = version_root / f"{_WRITE_PARTITION}={day.isoformat()}"
                target.mkdir(parents=True, exist_ok=True)  # a day without rows: an empty snapshot
                previous = self.swap_link(self.day_link(zone, asset, day), target)
                versions[day] = str(target)
                if previous is not None and previous != target:
                    _remove_version_day(previous)
        return versions

    @staticmethod
    def swap_link(link: Path, target: Path) -> Path | None:
        """Point ``link`` at ``target`` atomically: a new relative symlink renamed over it, so a reader
        follows the old target or the new one. Returns the old target. Call under ``swap_lock``."""
        previous = Path(os.path.realpath(link)) if link.is_symlink() else None
        tmp_link = link.with_name(f".{link.name}.{uuid.uuid4().hex}")
        tmp_link.symlink_to(os.path.relpath(target, link.parent))
        os.replace(tmp_link, link)
        return previous

    @contextmanager
    def swap_lock(self, zone: str, asset: str) -> Iterator[None]:
        """Hold the asset's swap lock: between reading a day's link and removing the version it
        replaced, no other writer of the asset may swap (a POSIX lock, so it works on NFS too)."""
        base = self.zone_dir(zone, asset)
        base.mkdir(parents=True, exist_ok=True)
        with open(base / SWAP_LOCK, "a") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(handle, fcntl.LOCK_UN)

    def day_paths(self, zone: str, asset: str, days: list[date]) -> dict[date, str]:
        """The current version directory of each day that has a snapshot."""
        found = {}
        for day in days:
            link = self.day_link(zone, asset, day)
            if link.exists():
                found[day] = os.path.realpath(link)
        return found

    def rows_per_day(self, zone: str, asset: str, days: list[date]) -> dict[date, int]:
        """The rows each snapshot of ``days`` holds, from its Parquet footers (pyarrow: no Spark job, a few
        kB read per file); a day without a snapshot holds none. Counted under the swap lock: a day
        re-written meanwhile must not vanish between finding its version and listing its files (it would
        count 0 rows, and a dimension would then drop that day's versions)."""
        with self.swap_lock(zone, asset):
            paths = self.day_paths(zone, asset, days)
            return {day: sum(pq.read_metadata(part).num_rows for part in Path(paths[day]).glob("*.parquet"))
                    if day in paths else 0 for day in days}

    def snapshot_days(self, zone: str, asset: str) -> list[date]:
        """Every day that has a snapshot of ``asset``."""
        prefix = f"{DAY_COLUMN}="
        return sorted(date.fromisoformat(p.name[len(prefix):]) for p in self.zone_dir(zone, asset).glob(prefix + "*"))

    def read_days(self, spark, zone: str, asset: str, days: list[date], schema):
        """Read the snapshots of ``days`` as one DataFrame with the given schema.

        A missing day is an error naming the asset and day.
        """
        paths = self.day_paths(zone, asset, days)
        missing = [d for d in days if d not in paths]
        if missing:
            shown = ", ".join(d.isoformat() for d in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise FileNotFoundError(
                f"{asset}: no {zone} snapshot for {len(missing)} day(s): {shown} "
                f"(under {self.zone_dir(zone, asset)}); materialize those partitions first"
            )
        return read_snapshots(spark, list(paths.values()), schema)


def holds_parquet(path: str) -> bool:
    """Whether a snapshot directory holds a Parquet file (Spark writes one even for no rows, so an empty
    directory is a day without rows). A directory that is gone raises ``FileNotFoundError``: a run that
    re-staged the day meanwhile removed the version just found, and reading it as empty would lose its rows."""
    with os.scandir(path) as entries:
        return any(entry.name.endswith(".parquet") for entry in entries)


def read_snapshots(spark: SparkSession, paths: Iterable[str], schema: StructType | str) -> DataFrame:
    """The rows of the snapshot directories ``paths`` as one DataFrame with ``schema``; only directories that hold
    a Parquet file are given to Spark, and none at all gives an empty frame without a read.

    Why: most daily snapshots of a reference table are empty, and Spark builds a file index over every path
    of a read wherever the plan uses it: a dimension's plan over pagila's range named ~200 empty days of each
    source, two to three times over (BENCHMARKS.md section 18: 0.4-0.8 s of each SCD2 dimension's step)."""
    with_rows = [p for p in paths if holds_parquet(p)]
    if not with_rows:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(*with_rows)


def _remove_version_day(day_dir: Path) -> None:
    """Delete a replaced day version, and its write directory once no day of it is left.

    Only versions this write replaced are touched, so a concurrent writer's
    version-in-progress is never removed.
    """
    shutil.rmtree(day_dir, ignore_errors=True)
    version_root = day_dir.parent
    if version_root.exists() and not any(version_root.glob(f"{_WRITE_PARTITION}=*")):
        shutil.rmtree(version_root, ignore_errors=True)
