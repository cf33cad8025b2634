"""Figures computed straight from the sample's CSVs with plain Python (no Spark, no platform code),
to compare the warehouse and the checks against.

The sample is pagila or the generator's rows in pagila's layout (``sample.py``):
one CSV per table, the reference tables as one snapshot. The quirk figures
re-state the checks' rules in the plainest terms, so a check that counts the
wrong rows disagrees with them.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

VOLUME_HISTORY_DAYS = 28  # the volume check's rule: outside 4x the median of the previous 28 non-empty days
VOLUME_MIN_HISTORY = 7
VOLUME_FACTOR = 4


def utc(text: str) -> datetime:
    local = datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S")
    sign, hours = text[-3], int(text[-2:])
    return local - timedelta(hours=hours) * (1 if sign == "+" else -1)


def rows(folder: Path, table: str) -> list[dict]:
    with open(folder / f"{table}.csv", newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@dataclass
class Truth:
    rentals_per_day: Counter = field(default_factory=Counter)
    payments_per_day: Counter = field(default_factory=Counter)
    revenue_per_day: dict = field(default_factory=lambda: defaultdict(Decimal))
    rentals_per_category: Counter = field(default_factory=Counter)
    revenue_per_category: dict = field(default_factory=lambda: defaultdict(Fraction))
    total_revenue: Decimal = Decimal(0)
    rentals: int = 0
    payments: int = 0
    not_returned: int = 0  # rentals without return_date
    zero_amounts: int = 0  # payments of 0.00
    paid_before_rental: int = 0  # payments dated before the rental they pay for
    customers: dict = field(default_factory=dict)  # customer_id -> row
    addresses: dict = field(default_factory=dict)  # address_id -> row
    films: dict = field(default_factory=dict)  # film_id -> row
    film_categories: int = 0  # film_category rows

    @staticmethod
    def days_with_rows(per_day: dict) -> list[date]:
        """The days of a per-day figure (``rentals_per_day``, ``revenue_per_day``, ...) that are not zero, in order:
        tests take their days from these, so they hold for pagila and for a generated sample alike."""
        return sorted(d for d, n in per_day.items() if n)

    def volume_outliers(self, per_day: Counter) -> list[date]:
        """Days whose count is outside 4x the median of their previous 28 non-empty days (given >= 7)."""
        outliers = []
        for day in self.days_with_rows(per_day):
            previous = sorted(n for d, n in per_day.items()
                              if day - timedelta(VOLUME_HISTORY_DAYS) <= d < day and n)
            if len(previous) >= VOLUME_MIN_HISTORY:
                median = previous[len(previous) // 2]
                if not median / VOLUME_FACTOR <= per_day[day] <= median * VOLUME_FACTOR:
                    outliers.append(day)
        return outliers


def text_array(literal: str) -> list[str]:
    """A Postgres text array literal (``{Trailers,"Deleted Scenes"}``) as a list."""
    inner = literal.strip()[1:-1]
    return next(csv.reader([inner])) if inner else []


def compute(folder: Path) -> Truth:
    truth = Truth()
    truth.customers = {r["customer_id"]: r for r in rows(folder, "customer")}
    truth.addresses = {r["address_id"]: r for r in rows(folder, "address")}
    truth.films = {r["film_id"]: r for r in rows(folder, "film")}
    film_of_inventory = {r["inventory_id"]: r["film_id"] for r in rows(folder, "inventory")}
    category_name = {r["category_id"]: r["name"].strip() for r in rows(folder, "category")}
    categories = defaultdict(set)
    for r in rows(folder, "film_category"):
        truth.film_categories += 1
        categories[r["film_id"]].add(category_name[r["category_id"]])
    film_of_rental, rented_at = {}, {}
    for r in rows(folder, "rental"):
        rented_at[r["rental_id"]] = utc(r["rental_date"])
        truth.rentals += 1
        truth.rentals_per_day[rented_at[r["rental_id"]].date()] += 1
        truth.not_returned += not r["return_date"]
        film = film_of_inventory[r["inventory_id"]]
        film_of_rental[r["rental_id"]] = film
        for category in categories[film] or {"Unknown"}:
            truth.rentals_per_category[category] += 1
    for r in rows(folder, "payment"):
        paid = utc(r["payment_date"])
        day, amount = paid.date(), Decimal(r["amount"])
        truth.payments += 1
        truth.payments_per_day[day] += 1
        truth.revenue_per_day[day] += amount
        truth.total_revenue += amount
        truth.zero_amounts += amount == 0
        truth.paid_before_rental += r["rental_id"] in rented_at and paid < rented_at[r["rental_id"]]
        cats = categories[film_of_rental[r["rental_id"]]] if r["rental_id"] in film_of_rental else set()
        for category in cats or {"Unknown"}:
            truth.revenue_per_category[category] += Fraction(amount) / max(len(cats), 1)
    return truth
