"""Raw partitions in S3: store their references, hand their objects to Spark.

A raw partition is a set of immutable objects in the lake's raw zone (copied
from landing by the raw assets). ``handle_output`` stores one small JSON
reference per table and day; ``load_input`` turns a range of days into paths
Spark can read in parallel: by default it downloads the objects concurrently
(streamed to disk, never whole in memory) into a local staging directory keyed
by md5, so a repeated load downloads nothing; with ``read_mode="s3a"`` it
hands Spark ``s3a://`` URIs instead (a cluster with hadoop-aws configured).
A window's references are found with one listing per table, and read from the
copies kept in the staging directory under their md5 (the raw step keeps each
one it stores), so a range's staging steps ask for no reference one by one.

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

import hashlib
import json
import logging
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from botocore.exceptions import ClientError
from dagster import ConfigurableIOManager, InputContext, OutputContext

from dvd_platform.partitions import window_days
from dvd_platform.resources.s3 import S3Buckets
from dvd_platform.transforms.staging import SourceFile


@dataclass(frozen=True)
class RawObject:
    day: str
    bucket: str
    key: str | None  # None: the day's file held only its header, nothing was frozen
    bytes: int
    md5: str
    rows: int


@dataclass
class RawBatch:
    """The raw objects of one table over a range of days (the output of a raw asset)."""

    table: str
    objects: list[RawObject]


def raw_table(asset_key_path: list[str]) -> str:
    name = asset_key_path[-1]
    if not name.startswith("raw_"):
        raise ValueError(f"raw IO manager used for {name}, which is not a raw_<table> asset")
    return name[len("raw_"):]


def ref_key(table: str, day: date | str) -> str:
    return f"raw/{table}/dt={day}/_ref.json"


def frozen_key(table: str, day: date | str, md5: str) -> str:
    """Where the raw zone keeps a day's object: its md5 in the key, so a key never changes content."""
    return f"raw/{table}/dt={day}/{table}-{md5}.csv"


def ref_body(raw: RawObject) -> bytes:
    """A reference's stored bytes (deterministic: the same reference is the same object, with the same ETag)."""
    return json.dumps(asdict(raw), sort_keys=True).encode()


def s3_etag(body: bytes) -> str:
    """The ETag S3 gives a single-part upload of ``body`` (its md5, quoted)."""
    return f'"{hashlib.md5(body).hexdigest()}"'


def listed_days(client, bucket: str, prefix: str, first: date, last: date) -> dict[str, tuple[str, int]]:
    """``key -> (ETag, size)`` of the objects under ``<prefix>/dt=D/`` for the days ``first..last``
    (``raw/<table>`` in the lake: its frozen objects and references; ``landing/<table>``: the drops).

    One paginated LIST from the first day's keys on (keys sort by day), instead of a
    request per object: what a run may skip is decided from it.
    """
    found: dict[str, tuple[str, int]] = {}
    end = f"{prefix}/dt={last.isoformat()}/\uffff"
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/dt=", StartAfter=f"{prefix}/dt={first.isoformat()}")
    for page in pages:
        for item in page.get("Contents", []):
            if item["Key"] > end:
                return found
            found[item["Key"]] = (item["ETag"], item["Size"])
    return found


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
        """Store each day's reference, except where the lake already holds that very reference (same ETag)."""
        client = self.s3.get_client()
        days = [date.fromisoformat(raw.day) for raw in obj.objects]
        listed = listed_days(client, self.s3.lake_bucket, f"raw/{obj.table}", min(days), max(days)) if days else {}
        changed = [raw for raw in obj.objects
                   if listed.get(ref_key(obj.table, raw.day), ("",))[0] != s3_etag(ref_body(raw))]

        def put(raw: RawObject) -> None:
            body = ref_body(raw)
            client.put_object(Bucket=self.s3.lake_bucket, Key=ref_key(obj.table, raw.day), Body=body)
            self._keep_ref(body)  # what the staging steps will read (see _reference)

        with ThreadPoolExecutor(self.s3.max_concurrency) as pool:
            list(pool.map(put, changed))

    def load_input(self, context: InputContext) -> list[SourceFile]:
        """The day files Spark should read (days without rows contribute none)."""
        table = raw_table(context.asset_key.path)
        days = window_days(context.asset_partitions_time_window)
        client = self.s3.get_client()
        listed = listed_days(client, self.s3.lake_bucket, f"raw/{table}", days[0], days[-1])

        def fetch(day: date) -> SourceFile | None:
            raw = validated_raw(self._reference(client, table, day, listed), table, day)
            if raw.key is None:
                return None
            source = f"s3://{raw.bucket}/{raw.key}"
            if self.read_mode == "s3a":
                return SourceFile(f"s3a://{raw.bucket}/{raw.key}", day, source)
            return SourceFile(f"file://{self._download(client, raw, table)}", day, source)

        with ThreadPoolExecutor(self.s3.max_concurrency) as pool:
            return [f for f in pool.map(fetch, days) if f is not None]

    def _reference(self, client, table: str, day: date, listed: dict[str, tuple[str, int]]) -> RawObject:
        """The day's stored reference, as the window's listing shows it: read from the local copy named by
        its ETag (the md5 of its bytes) when there is one, else fetched and kept there.

        Why: a range run's raw step has just stored the references its staging steps read, a request per
        table and day (3,195 for pagila); the copy the raw step keeps makes that one listing per table."""
        key = ref_key(table, day)
        if key not in listed:
            raise self._not_materialized(table, day, key)
        cached = self._ref_cache(listed[key][0])
        body = cached.read_bytes() if cached is not None and cached.exists() else b""
        if body and s3_etag(body) == listed[key][0]:  # a damaged copy is fetched again
            return RawObject(**json.loads(body))
        try:
            body = client.get_object(Bucket=self.s3.lake_bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise self._not_materialized(table, day, key) from exc
            raise
        self._keep_ref(body)
        return RawObject(**json.loads(body))

    def _not_materialized(self, table: str, day: date, key: str) -> FileNotFoundError:
        """The error of a day whose reference is not in the lake (built only when raised: a range reads thousands)."""
        return FileNotFoundError(f"raw_{table} partition {day} is not materialized (no s3://{self.s3.lake_bucket}/{key})")

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
