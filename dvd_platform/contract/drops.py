"""The drop layout, and the upload of a source's days to landing, manifest last.

Layout (the contract the raw assets and the sensor read)::

    landing/<table>/dt=YYYY-MM-DD/<table>.csv
    landing/_manifests/dt=YYYY-MM-DD/manifest.json   <- written last: the day is complete

The manifest lists every object of the day with its size, md5, row count and
columns. It holds no timestamp, so re-uploading a day writes byte-identical
objects (and the sensor, keyed on the manifest's ETag, does not re-run it).

A :class:`DropSource` writes the drop files of the days it is asked for into a local
directory (``<out>/<table>/dt=YYYY-MM-DD/<table>.csv``, every table, every day,
header-only where a table has no rows that day); :func:`upload_drops` uploads them.
Producers: the OLTP connector (``dvd_platform.oltp.export``, runtime) and the
sample-data seeder (``dvd_platform.dev.seed``, development only).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import tempfile
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable, Protocol, Sequence

from dvd_platform.contract.tables import TABLES
from dvd_platform.settings import LANDING_PREFIX, MANIFEST_PREFIX

MANIFEST_FORMAT = "dvd-drop/1"


def object_key(table: str, day: date) -> str:
    return f"{LANDING_PREFIX}/{table}/dt={day.isoformat()}/{table}.csv"


def manifest_key(day: date) -> str:
    return f"{MANIFEST_PREFIX}/dt={day.isoformat()}/manifest.json"


class SeedError(ValueError):
    """Bad source data or arguments; the message names the file, line or day."""


class DropSource(Protocol):
    description: str

    def day_range(self) -> tuple[date, date]:
        """First and last day the source has drops for."""

    def write_days(self, days: Sequence[date], out_dir: Path) -> None:
        """Write the drop files of ``days`` under ``out_dir``."""


def drop_path(out_dir: Path, table: str, day: date) -> Path:
    return out_dir / table / f"dt={day.isoformat()}" / f"{table}.csv"


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
class UploadResult:
    days: list[date]
    rows: dict[str, int]  # table -> rows uploaded over all days
    objects: int
    bytes: int


def upload_drops(source: DropSource, client, bucket: str, days: Sequence[date], *, workers: int = 16,
                 log: Callable[[str], None] | None = None,
                 before_day: Callable[[int], None] | None = None) -> UploadResult:
    """Write the drops of ``days`` and upload them, each day's manifest after its objects.

    ``log``, when given, gets one line per uploaded day (its rows by table); ``before_day(index)``
    runs before each day's upload (the seeder's ``--drip`` waits there).

    Without ``before_day`` every day's objects are queued at once, and each manifest goes up, in day
    order, as soon as its own day's objects are in: the endpoint never waits for a day's slowest object
    before the next day starts (pagila's 3,195 objects, a day at a time, kept moto's server half idle).
    An upload error stops before that day's manifest, as before: the day, and every day after it,
    stays incomplete (their manifests are not written), and the uploads not yet started are cancelled.
    A day named twice is refused before anything is written.
    """
    repeated = sorted(day for day, times in Counter(days).items() if times > 1)
    if repeated:
        raise ValueError(f"days to upload named more than once: {', '.join(map(str, repeated))}")
    rows = {table: 0 for table in TABLES}
    n_objects = n_bytes = 0
    with tempfile.TemporaryDirectory(prefix="dvd-drops-") as tmp, ThreadPoolExecutor(workers) as pool:
        out_dir = Path(tmp)
        source.write_days(list(days), out_dir)

        def submit(day: date) -> tuple[dict, list[Future]]:
            manifest = build_manifest(day, source.description, out_dir)
            return manifest, [pool.submit(_put, client, bucket, obj["key"], drop_path(out_dir, obj["table"], day),
                                          obj["md5"]) for obj in manifest["objects"]]

        queued: dict[date, tuple[dict, list[Future]]] = {}
        try:
            if before_day is None:  # every day's objects at once, before any is waited for
                for day in days:
                    queued[day] = submit(day)
            for index, day in enumerate(days):
                if before_day is not None:
                    before_day(index)
                    queued[day] = submit(day)
                manifest, futures = queued[day]
                for future in futures:
                    future.result()  # an upload error stops before the manifest: the day stays incomplete
                body = manifest_bytes(manifest)
                _put(client, bucket, manifest_key(day), body, hashlib.md5(body).hexdigest())
                for obj in manifest["objects"]:
                    rows[obj["table"]] += obj["rows"]
                    n_bytes += obj["bytes"]
                n_objects += len(manifest["objects"]) + 1
                if log is not None:
                    log(f"dropped {day}: " + ", ".join(f"{o['table']}={o['rows']}" for o in manifest["objects"] if o["rows"]))
        finally:
            for _, futures in queued.values():  # after an error, the uploads not started yet (a done one stays done)
                for future in futures:
                    future.cancel()
    return UploadResult(list(days), rows, n_objects, n_bytes)
