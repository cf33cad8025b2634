"""Crafted daily drops for tests: chosen rows (or raw bad lines) per table, every other table header-only."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date
from pathlib import Path
from typing import Callable, Sequence

from dvd_platform.dev.seed import csvio
from dvd_platform.contract.drops import MANIFEST_FORMAT, manifest_bytes, manifest_key, object_key
from dvd_platform.dev.seed.upload import seed
from dvd_platform.dev.seed.sources import open_drop
from dvd_platform.contract.tables import TABLES


def row(table: str, **values: object) -> list[str]:
    """A row of ``table`` by column name, in the contract's order; a column not named is empty (NULL).

    Why by name: a column the contract adds leaves every crafted row valid (NULL there), as it
    leaves the generator's; a row written by position would be one field short and quarantined.
    """
    columns = TABLES[table].columns
    unknown = sorted(set(values) - set(columns))
    if unknown:
        raise KeyError(f"the {table} contract has no column {', '.join(unknown)}")
    return ["" if values.get(column) is None else str(values[column]) for column in columns]


def line(table: str, **values: object) -> str:
    """:func:`row` as one CSV line, without its line end (for file bodies crafted as text)."""
    text = io.StringIO()
    csvio.writer(text).writerow(row(table, **values))
    return text.getvalue().removesuffix("\n")


class CraftedSource:
    """``days[day][table]`` is a list of rows (lists of strings) or a raw text body (after the header)."""

    description = "crafted"

    def __init__(self, days: dict[date, dict[str, list[list[str]] | str]]):
        self.days = days

    def day_range(self) -> tuple[date, date]:
        return min(self.days), max(self.days)

    def write_days(self, days: Sequence[date], out_dir: Path) -> None:
        for day in days:
            for table, spec in TABLES.items():
                body = self.days.get(day, {}).get(table, [])
                with open_drop(out_dir, table, day) as out:
                    if isinstance(body, str):
                        csvio.write_rows(out, spec.columns, [])
                        out.write(body)
                    else:
                        csvio.write_rows(out, spec.columns, body)


def drop(s3, bucket: str, days: dict[date, dict[str, list[list[str]] | str]]) -> None:
    source = CraftedSource(days)
    seed(source, s3, bucket, sorted(days))


def drop_bytes(s3, bucket: str, day: date, bodies: dict[str, bytes], *, edit: Callable[[dict], None] | None = None,
               keys: dict[str, str] | None = None) -> None:
    """Upload one day as exact bytes (header included), manifest last, the way a producer would.

    For inputs the seeder cannot write (empty, non-UTF-8, wrong headers): tables not in
    ``bodies`` are header-only. ``keys`` puts a table's object (and its manifest entry)
    at another key; ``edit`` changes the manifest before it is written (a lying manifest).
    """
    objects = []
    for table, spec in sorted(TABLES.items()):
        body = bodies.get(table, (",".join(spec.columns) + "\n").encode())
        key = (keys or {}).get(table, object_key(table, day))
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        objects.append({"table": table, "key": key, "bytes": len(body), "md5": hashlib.md5(body).hexdigest(),
                        "rows": max(body.count(b"\n") - 1, 0), "columns": list(spec.columns)})
    manifest = {"format": MANIFEST_FORMAT, "day": day.isoformat(), "source": "crafted", "objects": objects}
    if edit:
        edit(manifest)
    s3.put_object(Bucket=bucket, Key=manifest_key(day), Body=manifest_bytes(manifest))


def redrop_table(s3, bucket: str, day: date, table: str,
                 edit: Callable[[list[list[str]]], list[list[str]]]) -> Callable[[], None]:
    """Drop ``day`` again, ``table``'s rows changed by ``edit`` and its manifest entry updated (the
    other objects stay as they are), manifest last. Returns what puts the original drop back."""
    mkey = manifest_key(day)
    original_manifest = s3.get_object(Bucket=bucket, Key=mkey)["Body"].read()
    manifest = json.loads(original_manifest)
    entry = next(o for o in manifest["objects"] if o["table"] == table)
    original = s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
    header, *rows = csv.reader(io.StringIO(original.decode("utf-8"), newline=""))
    text = io.StringIO()
    entry["rows"] = csvio.write_rows(text, header, edit(rows))
    body = text.getvalue().encode("utf-8")
    entry.update(bytes=len(body), md5=hashlib.md5(body).hexdigest())
    s3.put_object(Bucket=bucket, Key=entry["key"], Body=body)
    s3.put_object(Bucket=bucket, Key=mkey, Body=manifest_bytes(manifest))

    def restore() -> None:
        s3.put_object(Bucket=bucket, Key=entry["key"], Body=original)
        s3.put_object(Bucket=bucket, Key=mkey, Body=original_manifest)

    return restore
