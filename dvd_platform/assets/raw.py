"""Raw assets: a day's landing drop, verified against its manifest and frozen in the lake.

Materializing day D checks every object of D against D's manifest (present,
size, md5, header), then server-side copies it into the lake's raw zone under
a key that includes its md5. The copy is conditional on the verified ETag, so
a later (or concurrent) overwrite in landing can never change what a run read.
An object an earlier run already froze with the manifest's md5 is neither read
nor copied again: a re-run or a backfill over loaded days costs a listing.

Header-only files (a reference table on a day without changes: most of a
pagila drop) are not frozen: their bytes are the contract's header, which the
reference records by size and md5; a copy would only cost a request per object
and day. Nor are they read when the landing listing proves them: a listed size
and ETag equal to the contract header's length and md5 can only be those bytes.
"""


import csv
import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from botocore.exceptions import ClientError
from dagster import AssetExecutionContext, AssetKey, AssetOut, AssetSpec, Output, multi_asset

from dvd_platform.assets.oltp import oltp_export
from dvd_platform.io_managers.raw_refs import RawBatch, RawObject, recorded
from dvd_platform.io_managers.raw_s3 import frozen_key, listed_days
from dvd_platform.partitions import daily_partitions, single_run, window_days
from dvd_platform.resources.s3 import S3Buckets
from dvd_platform.contract.drops import manifest_key, object_key
from dvd_platform.contract.tables import TABLES
from dvd_platform.settings import LANDING_PREFIX

landing_drops = AssetSpec(
    key=AssetKey("landing_drops"),
    description="Daily CSV drops in the landing bucket: landing/<table>/dt=YYYY-MM-DD/<table>.csv, "
    "completed by landing/_manifests/dt=YYYY-MM-DD/manifest.json (written last). Dropped by a producer, "
    "or by oltp_export when the OLTP source is switched on.",
    group_name="landing",
    deps=[oltp_export],
    partitions_def=daily_partitions,
    kinds={"s3"},
    owners=["team:data-platform"],
)


HEAD_BYTES = 65536


class IncompleteDropError(Exception):
    """A day's drop is missing, incomplete or does not match its manifest."""


def _manifest(client, bucket: str, day) -> dict:
    key = manifest_key(day)
    try:
        return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            raise IncompleteDropError(f"day {day} is not complete: manifest s3://{bucket}/{key} is missing") from exc
        raise
    except ValueError as exc:  # not JSON, or not UTF-8: say which manifest, not just where the parser stopped
        raise IncompleteDropError(f"day {day}: manifest s3://{bucket}/{key} is not valid JSON ({exc})") from exc


def _check_layout(entry: dict, bucket: str, day) -> None:
    """The manifest is input too: its key must be the layout's key for the table and day.

    A key elsewhere (another day, another table, ``..``, the lake's own prefix) would
    make this day read somebody else's object.
    """
    expected = object_key(entry["table"], day)
    if entry["key"] != expected:
        raise IncompleteDropError(f"s3://{bucket}/{entry['key']!s}: the manifest lists this key for {entry['table']} "
                                  f"on {day}, outside the landing layout (expected {expected})")


def _verify(client, bucket: str, entry: dict, day) -> tuple[str, bool]:
    """Check one landing object against its manifest entry.

    The key must be the layout's key (:func:`_check_layout`). One ranged GET then
    gives the size (Content-Range), the ETag and the header line. Returns the
    verified ETag and whether the object holds only its header (judged from the
    bytes, not from the manifest's row count).
    """
    key = entry["key"]
    _check_layout(entry, bucket, day)
    try:
        first = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEAD_BYTES - 1}")
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            raise IncompleteDropError(f"s3://{bucket}/{key} is listed in the manifest but missing") from exc
        if exc.response["Error"]["Code"] == "InvalidRange":  # a zero-byte object
            raise IncompleteDropError(f"s3://{bucket}/{key} is empty (not even a header row)") from exc
        raise
    head_bytes = first["Body"].read()
    content_range = first.get("ContentRange") or ""
    size = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else first["ContentLength"]
    if size != entry["bytes"]:
        raise IncompleteDropError(f"s3://{bucket}/{key}: {size} bytes, the manifest says {entry['bytes']}")
    etag = first["ETag"]
    md5 = etag.strip('"')
    if "-" in md5:  # multipart upload: the ETag is not the md5, hash the bytes (streamed)
        digest = hashlib.md5()
        for chunk in client.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].iter_chunks(1 << 20):
            digest.update(chunk)
        md5 = digest.hexdigest()
    if md5 != entry["md5"]:
        raise IncompleteDropError(f"s3://{bucket}/{key}: md5 {md5}, the manifest says {entry['md5']}")
    header_line, _, rest = head_bytes.partition(b"\n")
    header = next(csv.reader(io.StringIO(header_line.decode("utf-8", errors="replace").rstrip("\r"))), [])
    table = entry["table"]
    if tuple(header) != TABLES[table].columns:
        raise IncompleteDropError(
            f"s3://{bucket}/{key}: header {header} differs from the {table} contract {list(TABLES[table].columns)}"
        )
    header_only = size <= HEAD_BYTES and not rest.strip()
    return etag, header_only


def _raise_refusals(futures: list) -> None:
    """Fail with every refused object of the range at once, not only the first one.

    A range run stops on any refusal anyway; naming all of them lets a producer
    fix every bad day of a backfill before the retry instead of one per retry.
    Other errors (S3 unreachable, ...) are raised as they are.
    """
    refusals = []
    for future in futures:
        error = future.exception()
        if error is None:
            continue
        if not isinstance(error, IncompleteDropError):
            raise error
        refusals.append(str(error))
    if len(refusals) == 1:
        raise IncompleteDropError(refusals[0])
    if refusals:
        raise IncompleteDropError(f"{len(refusals)} objects refused:\n" + "\n".join(sorted(refusals)))


@cache
def _header_bytes(table: str) -> bytes:
    """A header-only drop of ``table`` as the contract writes it (comma, minimal quoting, ``\\n``)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(TABLES[table].columns)
    return out.getvalue().encode()


def _listed_header_only(entry: dict, table: str, landing: dict) -> bool:
    """Whether the landing listing alone proves the object is exactly the contract's header line.

    The manifest gives the header's length and md5, and the listing shows the object with that size
    and that md5 as its (single-part) ETag: everything :func:`_verify` would learn from a GET. Any
    other object, a multipart ETag or another header spelling is verified by a GET as before.
    """
    header = _header_bytes(table)
    return (entry["bytes"] == len(header) and entry["md5"] == hashlib.md5(header).hexdigest()
            and landing.get(entry["key"]) == (f'"{entry["md5"]}"', entry["bytes"]))


def _already_frozen(entry: dict, table: str, day, lake_bucket: str, listed: dict,
                    references: dict[str, RawObject]) -> RawObject | None:
    """The day's object as an earlier run froze it, when the lake proves it is the manifest's object; else None.

    Proof without a request per object, from one listing of the lake's frozen objects and
    the window's month references: the frozen copy exists under its md5 key with the
    manifest's size and md5 as ETag, or (a header-only file, of which nothing is frozen)
    the recorded reference is the one this run would record for the manifest's md5.
    Either was written only after the object passed every check of :func:`_verify`.
    Anything else is verified (and copied) again.
    """
    frozen = RawObject(day.isoformat(), lake_bucket, frozen_key(table, day, entry["md5"]), entry["bytes"],
                       entry["md5"], entry["rows"])
    if listed.get(frozen.key) == (f'"{entry["md5"]}"', entry["bytes"]):
        return frozen
    header_only = RawObject(day.isoformat(), lake_bucket, None, entry["bytes"], entry["md5"], 0)
    if references.get(day.isoformat()) == header_only:
        return header_only
    return None


@multi_asset(
    outs={
        f"raw_{table}": AssetOut(
            io_manager_key="raw_io_manager",
            description=f"The {table} objects of each day, verified and frozen in the lake's raw zone.",
            is_required=False,
            kinds={"s3"},
            owners=["team:data-platform"],
        )
        for table in TABLES
    },
    deps=[landing_drops],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    group_name="raw",
    can_subset=True,
)
def raw_drops(context: AssetExecutionContext, s3: S3Buckets):
    """Verify each selected day's drop against its manifest and copy it into the lake's raw zone.

    Objects an earlier run already froze (same md5) are neither read nor copied again.
    """
    client = s3.get_client()
    tables = sorted(key.path[-1][len("raw_"):] for key in context.selected_asset_keys)
    days = window_days(context.partition_time_window)
    # At most max_concurrency requests in flight; copies are server-side: no bytes pass through this process.
    with ThreadPoolExecutor(s3.max_concurrency) as pool:
        manifests = dict(zip(days, pool.map(lambda day: _manifest(client, s3.landing_bucket, day), days)))
        listed = dict(zip(tables, pool.map(
            lambda table: listed_days(client, s3.lake_bucket, f"raw/{table}", days[0], days[-1]), tables)))
        references = dict(zip(tables, pool.map(lambda table: recorded(
            client, s3.lake_bucket, table, days[0], days[-1],
            on_damaged=lambda exc: context.log.warning(f"{exc}: its days are verified and recorded again")), tables)))
        landing = dict(zip(tables, pool.map(
            lambda table: listed_days(client, s3.landing_bucket, f"{LANDING_PREFIX}/{table}", days[0], days[-1]),
            tables)))

        def freeze(day, table: str) -> RawObject:
            entries = {entry["table"]: entry for entry in manifests[day]["objects"]}
            if table not in entries:
                raise IncompleteDropError(
                    f"day {day}: the manifest {manifest_key(day)} lists no {table} object "
                    f"(expected landing/{table}/dt={day}/{table}.csv)"
                )
            entry = entries[table]
            _check_layout(entry, s3.landing_bucket, day)
            done = _already_frozen(entry, table, day, s3.lake_bucket, listed[table], references[table])
            if done is not None:
                return done
            header_only = _listed_header_only(entry, table, landing[table])
            if not header_only:
                etag, header_only = _verify(client, s3.landing_bucket, entry, day)
            if header_only:  # nothing to freeze: the reference says "no rows that day"
                return RawObject(day.isoformat(), s3.lake_bucket, None, entry["bytes"], entry["md5"], 0)
            lake_key = frozen_key(table, day, entry["md5"])
            client.copy_object(
                Bucket=s3.lake_bucket, Key=lake_key,
                CopySource={"Bucket": s3.landing_bucket, "Key": entry["key"]}, CopySourceIfMatch=etag,
            )
            return RawObject(day.isoformat(), s3.lake_bucket, lake_key, entry["bytes"], entry["md5"], entry["rows"])

        futures = {table: [pool.submit(freeze, day, table) for day in days] for table in tables}
        _raise_refusals([f for table in tables for f in futures[table]])
        batches = {table: [f.result() for f in futures[table]] for table in tables}
    for table in tables:
        objects = batches[table]
        yield Output(
            RawBatch(table, objects),
            output_name=f"raw_{table}",
            metadata={
                "days": len(objects),
                "rows": sum(o.rows for o in objects),
                "bytes": sum(o.bytes for o in objects),
                "keys": [f"s3://{o.bucket}/{o.key}" for o in objects if o.key][:50],
            },
        )
