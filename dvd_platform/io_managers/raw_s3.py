"""Raw partitions in S3: store their references, hand their objects to Spark.

A raw partition is a set of immutable objects in the lake's raw zone (copied
from landing by the raw assets). ``handle_output`` records each day's reference
in its month's object (``raw_refs``); ``load_input`` turns a range of days into paths
Spark can read in parallel: by default it downloads the objects concurrently
(streamed to disk, never whole in memory) into a local staging directory keyed
by md5, so a repeated load downloads nothing; with ``read_mode="s3a"`` it
hands Spark ``s3a://`` URIs instead (a cluster with hadoop-aws configured).
A window's months are found with one listing per table, and read from the
copies kept in the staging directory under their md5 (the raw step keeps each
one it writes), so a range's staging steps fetch no reference.

Two guards sit here, before anything reaches the filesystem or Spark:

* a reference's key must be exactly the raw zone's key for its table, day and
  md5 (``raw/<table>/dt=D/<table>-<md5>.csv``): the local path is built from
  those parts, so a forged or corrupted reference can never point it outside
  the staging directory (``..``) or at another table's file;
* no line may exceed ``max_line_bytes``: Spark's line reader holds a whole
  line in one buffer, so a 2 GB line would exhaust the driver's memory (or hit
  the JVM's 2 GB array limit) instead of failing. The download counts line
  lengths while it streams, and refuses the object naming its key and line.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

from dagster import ConfigurableIOManager, InputContext, OutputContext

from dvd_platform.io_managers.raw_refs import RawBatch, RawObject, month_key, record, recorded, s3_etag
from dvd_platform.partitions import window_days
from dvd_platform.resources.s3 import S3Buckets, listed_range
from dvd_platform.transforms.staging import SourceFile


def raw_table(asset_key_path: list[str]) -> str:
    name = asset_key_path[-1]
    if not name.startswith("raw_"):
        raise ValueError(f"raw IO manager used for {name}, which is not a raw_<table> asset")
    return name[len("raw_"):]


def frozen_key(table: str, day: date | str, md5: str) -> str:
    """Where the raw zone keeps a day's object: its md5 in the key, so a key never changes content."""
    return f"raw/{table}/dt={day}/{table}-{md5}.csv"


def listed_days(client, bucket: str, prefix: str, first: date, last: date) -> dict[str, tuple[str, int]]:
    """``key -> (ETag, size)`` of the objects under ``<prefix>/dt=D/`` for the days ``first..last``
    (``raw/<table>`` in the lake: its frozen objects; ``landing/<table>``: the drops).

    One paginated LIST from the first day's keys on (``listed_range``): what a run may skip is decided from it.
    """
    return listed_range(client, bucket, f"{prefix}/dt=", f"{prefix}/dt={first.isoformat()}",
                        f"{prefix}/dt={last.isoformat()}/\uffff")


class UnsafeRawKeyError(ValueError):
    """A raw reference whose key is not the raw zone's key for its table and day."""


class OversizedLineError(ValueError):
    """A raw object has a line longer than the platform accepts."""


MD5_HEX = re.compile(r"[0-9a-f]{32}")
log = logging.getLogger(__name__)


def validated_raw(raw: RawObject, table: str, day: date) -> RawObject:
    """``raw`` if its day, md5 and key are exactly those of ``table``'s object for ``day``, else an error."""
    if raw.day != day.isoformat() or not MD5_HEX.fullmatch(str(raw.md5)):
        raise UnsafeRawKeyError(f"raw_{table} reference for {day} is invalid (day {raw.day!r}, md5 {raw.md5!r})")
    if raw.key is not None and raw.key != frozen_key(table, day, raw.md5):
        raise UnsafeRawKeyError(f"raw_{table} reference for {day} points at {raw.key!r}, "
                                f"not {frozen_key(table, day, raw.md5)}: refused before any download")
    return raw


class RawS3IOManager(ConfigurableIOManager):
    s3: S3Buckets
    staging_dir: str
    read_mode: str = "download"  # or "s3a"
    # Far above any real row (pagila's longest line is under 1 KB), far below what breaks Spark.
    max_line_bytes: int = 1 << 20

    def handle_output(self, context: OutputContext, obj: RawBatch) -> None:
        """Record the window's references in their months (``raw_refs.record``: months that already hold
        them are not written); each written month is kept locally for the staging steps."""
        client = self.s3.get_client()
        record(client, self.s3.lake_bucket, obj.table, obj.objects, self._kept, self._keep_ref)

    def load_input(self, context: InputContext) -> list[SourceFile]:
        """The day files Spark should read (days without rows contribute none)."""
        table = raw_table(context.asset_key.path)
        days = window_days(context.asset_partitions_time_window)
        client = self.s3.get_client()
        references = self._references(client, table, days)

        def fetch_file(day: date) -> SourceFile | None:
            raw = validated_raw(references[day], table, day)
            if raw.key is None:
                return None
            source = f"s3://{raw.bucket}/{raw.key}"
            if self.read_mode == "s3a":
                return SourceFile(f"s3a://{raw.bucket}/{raw.key}", day, source)
            return SourceFile(f"file://{self._download(client, raw, table)}", day, source)

        with ThreadPoolExecutor(self.s3.max_concurrency) as pool:
            return [f for f in pool.map(fetch_file, days) if f is not None]

    def _references(self, client, table: str, days: list[date]) -> dict[date, RawObject]:
        """Every day's reference, from one listing of the window's months, each read from the copy kept
        under its ETag (the md5 of its bytes) when there is one, else fetched and kept.

        Why: a range run's raw step has just written the months its staging steps read; the copy it keeps
        makes that a listing per table. A day its month does not record was never materialized."""
        months = recorded(client, self.s3.lake_bucket, table, days[0], days[-1], self._kept, self._keep_ref)
        references = {}
        for day in days:
            raw = months.get(day.isoformat())
            if raw is None:
                raise self._not_materialized(table, day, month_key(table, day))
            references[day] = raw
        return references

    def _not_materialized(self, table: str, day: date, key: str) -> FileNotFoundError:
        """The error of a day that no month of the lake records."""
        return FileNotFoundError(f"raw_{table} partition {day} is not materialized "
                                 f"(s3://{self.s3.lake_bucket}/{key} does not record it)")

    def _kept(self, key: str, etag: str) -> bytes | None:
        """The locally kept copy of a month object with this ETag, if there is one (unchecked)."""
        cached = self._ref_cache(etag)
        return cached.read_bytes() if cached is not None and cached.exists() else None

    def _ref_cache(self, etag: str) -> Path | None:
        """Where a reference with this ETag is kept locally; None for an ETag that is not an md5 (multipart)."""
        digest = etag.strip('"')
        return Path(self.staging_dir) / "_refs" / f"{digest}.json" if MD5_HEX.fullmatch(digest) else None

    def _keep_ref(self, body: bytes) -> None:
        """Keep a reference's bytes under their md5 (written whole, then renamed: a reader sees all or nothing).
        Best effort: the reference is in S3 already, and a missing copy only costs a request later."""
        target = self._ref_cache(s3_etag(body))
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(body)
            os.replace(tmp, target)
        except OSError as exc:
            log.warning("could not keep a copy of a raw reference in %s: %s", target.parent, exc)
        finally:
            tmp.unlink(missing_ok=True)

    def _download(self, client, raw: RawObject, table: str) -> Path:
        """Download to ``<staging>/<table>/dt=D/<md5>.csv`` unless already there (md5-keyed, so immutable).

        Streamed in chunks to a temporary name, checking line lengths on the way;
        only a complete, accepted file gets its final name.
        """
        target = Path(self.staging_dir) / table / f"dt={raw.day}" / f"{raw.md5}.csv"  # parts checked by validated_raw
        if target.exists() and target.stat().st_size == raw.bytes:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            body = client.get_object(Bucket=raw.bucket, Key=raw.key)["Body"]
            with open(tmp, "wb") as out:
                self._copy_checking_lines(body.iter_chunks(1 << 20), out, f"s3://{raw.bucket}/{raw.key}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def _copy_checking_lines(self, chunks, out, source: str) -> None:
        """Write ``chunks`` to ``out``; stop at the first line longer than ``max_line_bytes``."""
        limit = self.max_line_bytes
        current = 0  # length of the line in progress (its start may be in earlier chunks)
        lines_before = 0  # complete lines before the current chunk
        for chunk in chunks:
            pieces = chunk.split(b"\n")  # pieces[0] continues the current line, pieces[-1] starts the next
            lengths = [current + len(pieces[0])] + [len(p) for p in pieces[1:]]
            if max(lengths) > limit:
                index = next(i for i, n in enumerate(lengths) if n > limit)
                raise OversizedLineError(
                    f"{source}: line {lines_before + index + 1} is longer than {limit} bytes "
                    f"(the limit max_line_bytes of the raw IO manager); the object is refused, nothing was staged"
                )
            out.write(chunk)
            current = lengths[-1]
            lines_before += len(pieces) - 1
