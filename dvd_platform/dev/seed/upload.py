"""``dvd-platform seed``: upload a sample source's days to landing, optionally one day at a time.

The upload itself (objects, then the manifest) is the runtime's
:func:`dvd_platform.contract.drops.upload_drops`, the same the OLTP connector uses;
this adds the day selection of ``--days/--from/--to`` and ``--drip``.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Callable, Sequence

from dvd_platform.contract.drops import DropSource, UploadResult, upload_drops

#: What ``seed`` returns (the runtime's upload result).
SeedResult = UploadResult


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
    if not drip:
        return upload_drops(source, client, bucket, days, workers=workers)

    def wait(index: int) -> None:
        if index:
            time.sleep(drip)

    return upload_drops(source, client, bucket, days, workers=workers, log=log, before_day=wait)
