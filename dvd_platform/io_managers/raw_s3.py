"""Raw partitions in S3: store their references, hand their objects to Spark.

A raw partition is a set of immutable objects in the lake's raw zone (copied
from landing by the raw assets). ``handle_output`` stores one small JSON
reference per table and day; ``load_input`` turns a range of days into paths
Spark can read in parallel: by default it downloads the objects concurrently
(streamed to disk, never whole in memory) into a local staging directory keyed
by md5, so a repeated load downloads nothing; with ``read_mode="s3a"`` it
hands Spark ``s3a://`` URIs instead (a cluster with hadoop-aws configured).
"""

from __future__ import annotations

import json
import os
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


class RawS3IOManager(ConfigurableIOManager):
    s3: S3Buckets
    staging_dir: str
    read_mode: str = "download"  # or "s3a"
    download_workers: int = 8

    def handle_output(self, context: OutputContext, obj: RawBatch) -> None:
        client = self.s3.get_client()

        def put(raw: RawObject) -> None:
            body = json.dumps(asdict(raw), sort_keys=True).encode()
            client.put_object(Bucket=self.s3.lake_bucket, Key=ref_key(obj.table, raw.day), Body=body)

        with ThreadPoolExecutor(self.download_workers) as pool:
            list(pool.map(put, obj.objects))

    def load_input(self, context: InputContext) -> list[SourceFile]:
        """The day files Spark should read (days without rows contribute none)."""
        table = raw_table(context.asset_key.path)
        days = window_days(context.asset_partitions_time_window)
        client = self.s3.get_client()

        def fetch(day: date) -> SourceFile | None:
            try:
                body = client.get_object(Bucket=self.s3.lake_bucket, Key=ref_key(table, day))["Body"].read()
            except ClientError as exc:
                if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                    raise FileNotFoundError(
                        f"raw_{table} partition {day} is not materialized "
                        f"(no s3://{self.s3.lake_bucket}/{ref_key(table, day)})"
                    ) from exc
                raise
            raw = RawObject(**json.loads(body))
            if raw.key is None:
                return None
            source = f"s3://{raw.bucket}/{raw.key}"
            if self.read_mode == "s3a":
                return SourceFile(f"s3a://{raw.bucket}/{raw.key}", day, source)
            return SourceFile(f"file://{self._download(client, raw)}", day, source)

        with ThreadPoolExecutor(self.download_workers) as pool:
            return [f for f in pool.map(fetch, days) if f is not None]

    def _download(self, client, raw: RawObject) -> Path:
        """Download to ``<staging>/<table>/dt=D/<md5>.csv`` unless already there (md5-keyed, so immutable)."""
        table = raw.key.split("/")[1]
        target = Path(self.staging_dir) / table / f"dt={raw.day}" / f"{raw.md5}.csv"
        if target.exists() and target.stat().st_size == raw.bytes:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        client.download_file(raw.bucket, raw.key, str(tmp))  # streamed in chunks
        os.replace(tmp, target)
        return target
