"""The one CSV dialect of the landing area, and the day cut of event timestamps.

Drops are RFC 4180 CSV: header row, comma, minimal quoting, ``\\n`` line ends,
UTF-8, empty field = NULL (pagila's dump form). Writing through this module
makes a re-seed byte-identical.
"""

from __future__ import annotations

import csv
from datetime import date, datetime, timezone
from typing import IO, Iterable, Sequence


def writer(stream: IO[str]):
    return csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def write_rows(stream: IO[str], header: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    """Write a header and rows; returns the number of data rows."""
    w = writer(stream)
    w.writerow(header)
    count = 0
    for row in rows:
        w.writerow(row)
        count += 1
    return count


def parse_pg_timestamp(text: str) -> datetime:
    """Parse a dump timestamp with offset (``2022-05-24 22:54:33+01``, fractional seconds allowed)."""
    value = text.strip()
    # Python wants +HH:MM; the dump writes +HH (or +HH:MM).
    if len(value) >= 3 and value[-3] in "+-" and value[-2:].isdigit():
        value = value + ":00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return parsed


def utc_day(text: str) -> date:
    """The UTC calendar day of a dump timestamp: days are cut in UTC."""
    return parse_pg_timestamp(text).astimezone(timezone.utc).date()


def format_pg_timestamp(value: datetime) -> str:
    """Format an aware datetime the way the dump does (``2022-05-24 22:54:33+00``)."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    return f"{text}{sign}{hh:02d}" + (f":{mm:02d}" if mm else "")
