"""A raw table's references: what each day's drop of the table was, one lake object per month.

The raw step verifies and freezes a day's object, then records it in a *reference*
(:class:`RawObject`: the frozen key, or none for a header-only file, with its size,
md5 and rows); the staging step reads the references of its window. They used to be
one object per table and day (``raw/<table>/dt=D/_ref.json``): a whole-pagila range
stored 3,195 of them, about 10 s of requests against moto (BENCHMARKS.md section 19),
although 3,000 of them only said "this day's file held its header". Now a table keeps
one object per month, ``raw/<table>/_refs/month=YYYY-MM.json``, holding that month's
days; a range writes a few objects per table, and a reader lists only the months of its
window, so neither grows with the platform's age.

Several runs may record days of the same month at once (the sensor's and a backfill's).
A writer merges its days into the month's current object and writes it conditionally
(``If-Match`` its ETag, or ``If-None-Match: *`` for a new month): S3 refuses the write
if another run changed the object in between, and the writer reads it again and retries,
so no run's days are lost. AWS S3 and MinIO apply conditional writes atomically; the local
stack's moto does too once ``dvd_platform.dev.stack.moto_main`` serializes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date

from botocore.exceptions import ClientError

from dvd_platform.resources.s3 import listed_range

#: Conditional-write refusals a writer takes before it gives up on a month (each one means another run wrote
#: that month in between; 20 is far beyond the runs a deployment starts at once).
MAX_ATTEMPTS = 20
#: What S3 answers when a conditional write lost a race: 412, 409 while another conditional write is in flight,
#: or NoSuchKey for an If-Match on a month deleted since it was read.
CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409")
Read = Callable[[str, str], bytes | None]
Keep = Callable[[bytes], None]
Current = tuple[bytes, str] | None
log = logging.getLogger(__name__)


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


class ReferenceConflictError(RuntimeError):
    """A month's references kept changing under a writer (other runs wrote it on every attempt)."""


def s3_etag(body: bytes) -> str:
    """The ETag S3 gives a single-part upload of ``body`` (its md5, quoted)."""
    return f'"{hashlib.md5(body).hexdigest()}"'


def month_key(table: str, day: date | str) -> str:
    """The object that holds the references of ``table`` for the month of ``day``."""
    return f"raw/{table}/_refs/month={str(day)[:7]}.json"


def month_body(days: dict[str, RawObject]) -> bytes:
    """A month's stored bytes, deterministic: the same references are the same object, with the same ETag."""
    return json.dumps({day: asdict(days[day]) for day in sorted(days)}, sort_keys=True).encode()


def parse_month(body: bytes, key: str) -> dict[str, RawObject]:
    """The references a month object holds, by day. A body that is not one, or that records a day of
    another month (which that month's object would not override), is an error naming its key."""
    try:
        days = {day: RawObject(**fields) for day, fields in json.loads(body).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{key} is not a month of raw references ({exc})") from exc
    strays = sorted(day for day in days if not key.endswith(f"/month={day[:7]}.json"))
    if strays:
        raise ValueError(f"{key} records days of another month: {strays[:5]}")
    return days


def listed_months(client, bucket: str, table: str, first: date, last: date) -> dict[str, str]:
    """``key -> ETag`` of the month objects of ``table`` covering ``first..last``, in one listing."""
    prefix = f"raw/{table}/_refs/month="
    listed = listed_range(client, bucket, prefix, f"{prefix}{first.isoformat()[:7]}", month_key(table, last))
    return {key: etag for key, (etag, _) in listed.items()}


def fetch(client, bucket: str, key: str) -> tuple[bytes, str] | None:
    """A month object's bytes and ETag, or None when there is none (yet)."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    return response["Body"].read(), response["ETag"]


def recorded(client, bucket: str, table: str, first: date, last: date, read: Read = lambda key, etag: None,
             keep: Keep = lambda body: None, on_damaged: Callable[[ValueError], None] | None = None
             ) -> dict[str, RawObject]:
    """Every reference the lake records for ``table`` on ``first..last``'s months, by day, from one listing.

    ``read(key, etag)`` may return a locally kept copy of a listed month (used when its md5 is the ETag, so
    a damaged copy is fetched again); ``keep(body)`` is told every body fetched. A month deleted since the
    listing records nothing. A month that does not parse is an error, unless ``on_damaged`` takes it: then
    it records nothing (the raw step verifies those days again and rewrites the month)."""
    found: dict[str, RawObject] = {}
    for key, etag in listed_months(client, bucket, table, first, last).items():
        current = _current(client, bucket, key, etag, read, keep)
        if current is None:
            continue
        try:
            found.update(parse_month(current[0], f"s3://{bucket}/{key}"))
        except ValueError as exc:
            if on_damaged is None:
                raise
            on_damaged(exc)
    return found


def record(client, bucket: str, table: str, objects: list[RawObject], read: Read, keep: Keep) -> int:
    """Merge ``objects`` into their months' references; returns how many month objects were written.

    ``read(key, etag)`` may return a locally kept copy of a listed month (None: fetch it); ``keep(body)``
    is told every body written. A month that already holds exactly these references is not written.
    """
    if not objects:
        return 0
    days = [date.fromisoformat(raw.day) for raw in objects]
    listed = listed_months(client, bucket, table, min(days), max(days))
    by_month: dict[str, dict[str, RawObject]] = {}
    for raw in objects:
        by_month.setdefault(month_key(table, raw.day), {})[raw.day] = raw
    written = 0
    for key, new in by_month.items():
        current = _current(client, bucket, key, listed.get(key), read, keep)
        written += _merge_into(client, bucket, key, new, current, keep)
    return written


def _current(client, bucket: str, key: str, etag: str | None, read: Read, keep: Keep) -> Current:
    """The month's bytes and ETag as listed (a kept copy when it has that ETag; else fetched, and kept), or
    None for a month not listed or gone since."""
    if etag is None:
        return None
    body = read(key, etag)
    if body is not None and s3_etag(body) == etag:
        return body, etag
    current = fetch(client, bucket, key)
    if current is not None:
        keep(current[0])
    return current


def _days_of(current: Current, key: str) -> dict[str, RawObject]:
    """The days ``current`` records; a damaged month (which nobody could read) records none, and is rewritten."""
    if current is None:
        return {}
    try:
        return parse_month(current[0], key)
    except ValueError as exc:
        log.warning("%s; rewriting it with this run's days only: its other days read as not materialized until "
                    "their raw step runs again", exc)
        return {}


def _merge_into(client, bucket: str, key: str, new: dict[str, RawObject], current: Current, keep: Keep) -> int:
    """Write ``current`` with ``new``'s days in it, conditional on ``current``'s ETag; re-read and retry on a race."""
    for attempt in range(MAX_ATTEMPTS):
        days = _days_of(current, f"s3://{bucket}/{key}")
        if all(days.get(day) == raw for day, raw in new.items()):
            return 0
        body = month_body({**days, **new})
        condition = {"IfMatch": current[1]} if current else {"IfNoneMatch": "*"}
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body, **condition)
        except ClientError as exc:
            error = exc.response.get("Error", {}).get("Code", "")
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if error not in CONFLICTS and status not in CONFLICTS:
                raise
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))  # another run changed this month: read it again
            current = fetch(client, bucket, key)
            continue
        keep(body)
        return 1
    raise ReferenceConflictError(f"s3://{bucket}/{key}: other runs changed this month's raw references on each of "
                                 f"{MAX_ATTEMPTS} attempts to record {min(new)}..{max(new)}; those days are not recorded")
