"""Crafted daily drops for tests: chosen rows (or raw bad lines) per table, every other table header-only."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Sequence

from dvd_platform.seed import csvio
from dvd_platform.seed.drops import seed
from dvd_platform.seed.sources import open_drop
from dvd_platform.seed.tables import TABLES


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
