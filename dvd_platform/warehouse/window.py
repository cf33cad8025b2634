"""The days a load replaces: ``Window``, built from the partition time window Dagster hands a run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from dagster import TimeWindow

from dvd_platform.partitions import window_days


def _next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=1) + timedelta(32)).replace(day=1)


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    """The days a load replaces, and their UTC bounds."""

    first_day: date
    last_day: date

    @classmethod
    def of(cls, time_window: TimeWindow) -> Window:
        """The UTC days of a Dagster partition time window (its end is exclusive)."""
        days = window_days(time_window)
        return cls(days[0], days[-1])

    @property
    def params(self) -> dict:
        """The query parameters the load SQL uses: the days, and the UTC bounds of the days and their months."""
        start = _utc_midnight(self.first_day)
        return {"first_day": self.first_day, "last_day": self.last_day, "window_start": start,
                "window_end": _utc_midnight(self.last_day + timedelta(1)), "month_start": start.replace(day=1),
                "month_end": _utc_midnight(_next_month(self.last_day))}

    def months(self) -> list[tuple[Window, bool]]:
        """The window cut at UTC month boundaries: each piece, and whether it is a whole month."""
        pieces, first = [], self.first_day
        while first <= self.last_day:
            next_month = _next_month(first)
            last = min(self.last_day, next_month - timedelta(1))
            pieces.append((Window(first, last), first.day == 1 and last == next_month - timedelta(1)))
            first = next_month
        return pieces

    def __str__(self) -> str:
        return str(self.first_day) if self.first_day == self.last_day else f"{self.first_day}..{self.last_day}"
