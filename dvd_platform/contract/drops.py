"""Upload daily drops to the landing area, manifest last.

Layout (the contract the raw assets and the sensor read)::

    landing/<table>/dt=YYYY-MM-DD/<table>.csv
    landing/_manifests/dt=YYYY-MM-DD/manifest.json   <- written last: the day is complete

The manifest lists every object of the day with its size, md5, row count and
columns. It holds no timestamp, so re-seeding a day writes byte-identical
objects (and the sensor, keyed on the manifest's ETag, does not re-run it).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Sequence

from dvd_platform.seed.sources import DropSource, drop_path
from dvd_platform.seed.tables import TABLES
from dvd_platform.settings import LANDING_PREFIX, MANIFEST_PREFIX

MANIFEST_FORMAT = "dvd-drop/1"


def object_key(table: str, day: date) -> str:
    return f"{LANDING_PREFIX}/{table}/dt={day.isoformat()}/{table}.csv"


def manifest_key(day: date) -> str:
    return f"{MANIFEST_PREFIX}/dt={day.isoformat()}/manifest.json"


def describe_file(path: Path) -> dict:
    """Size, md5 and CSV record count (records, not lines: fields may hold newlines)."""
    digest = hashlib.md5()
    with open(path, "rb") as raw:
        for chunk in iter(lambda: raw.read(1 << 20), b""):
            digest.update(chunk)
    with open(path, encoding="utf-8", newline="") as text:
        rows = sum(1 for _ in csv.reader(text)) - 1
    return {"bytes": path.stat().st_size, "md5": digest.hexdigest(), "rows": max(rows, 0)}


def build_manifest(day: date, source: str, out_dir: Path) -> dict:
    objects = []
    for table in sorted(TABLES):
        info = describe_file(drop_path(out_dir, table, day))
        objects.append({"table": table, "key": object_key(table, day), **info, "columns": list(TABLES[table].columns)})
    return {"format": MANIFEST_FORMAT, "day": day.isoformat(), "source": source, "objects": objects}


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def _put(client, bucket: str, key: str, body: bytes | Path, md5_hex: str) -> None:
    content_md5 = base64.b64encode(bytes.fromhex(md5_hex)).decode()
    if isinstance(body, Path):
        with open(body, "rb") as stream:
            client.put_object(Bucket=bucket, Key=key, Body=stream, ContentMD5=content_md5)
    else:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentMD5=content_md5)


@dataclass
class SeedResult:
    days: list[date]
    rows: dict[str, int]  # table -> rows uploaded over all days
    objects: int
    bytes: int


def select_days(source: DropSource, *, days: int | None = None, start: date | None = None,
                end: date | None = None) -> list[date]:
    """The days to seed: the source's range, cut by --from/--to and then --days."""
    first, last = source.day_range()
    lo, hi = start or first, end or last
    if hi < lo:
        raise ValueError(f"--to {hi} is before --from {lo}")
    selected = [lo + timedelta(n) for n in range((hi - lo).days + 1)]
    return selected[:days] if days is not None else selected


def seed(source: DropSource, client, bucket: str, days: Sequence[date], *, drip: float = 0.0,
         workers: int = 16, log: Callable[[str], None] = print) -> SeedResult:
    """Write the drops of ``days`` and upload them, each day's manifest after its objects.

    With ``drip`` > 0 the days are uploaded one at a time, ``drip`` seconds apart,
    so a sensor can be watched picking each one up.
    """
    rows = {table: 0 for table in TABLES}
    n_objects = n_bytes = 0
    with tempfile.TemporaryDirectory(prefix="dvd-seed-") as tmp, ThreadPoolExecutor(workers) as pool:
        out_dir = Path(tmp)
        source.write_days(list(days), out_dir)
        for index, day in enumerate(days):
            if drip and index:
                time.sleep(drip)
            manifest = build_manifest(day, source.description, out_dir)
            futures = [
                pool.submit(_put, client, bucket, obj["key"], drop_path(out_dir, obj["table"], day), obj["md5"])
                for obj in manifest["objects"]
            ]
            for future in futures:
                future.result()  # an upload error stops before the manifest: the day stays incomplete
            body = manifest_bytes(manifest)
            _put(client, bucket, manifest_key(day), body, hashlib.md5(body).hexdigest())
            for obj in manifest["objects"]:
                rows[obj["table"]] += obj["rows"]
                n_bytes += obj["bytes"]
            n_objects += len(manifest["objects"]) + 1
            if drip:
                log(f"dropped {day}: " + ", ".join(f"{o['table']}={o['rows']}" for o in manifest["objects"] if o["rows"]))
    return SeedResult(list(days), rows, n_objects, n_bytes)
