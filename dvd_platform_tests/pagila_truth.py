"""Figures computed straight from the pagila CSVs with plain Python (no Spark, no platform code),
to compare the warehouse against."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path


def utc(text: str) -> datetime:
    local = datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S")
    sign, hours = text[-3], int(text[-2:])
    return local - timedelta(hours=hours) * (1 if sign == "+" else -1)


def rows(folder: Path, table: str) -> list[dict]:
    with open(folder / f"{table}.csv", newline="") as stream:
        return list(csv.DictReader(stream))


@dataclass
class Truth:
    rentals_per_day: Counter = field(default_factory=Counter)
    payments_per_day: Counter = field(default_factory=Counter)
    revenue_per_day: dict = field(default_factory=lambda: defaultdict(Decimal))
    rentals_per_category: Counter = field(default_factory=Counter)
    revenue_per_category: dict = field(default_factory=lambda: defaultdict(Fraction))
    total_revenue: Decimal = Decimal(0)


def compute(folder: Path) -> Truth:
    truth = Truth()
    film_of_inventory = {r["inventory_id"]: r["film_id"] for r in rows(folder, "inventory")}
    category_name = {r["category_id"]: r["name"].strip() for r in rows(folder, "category")}
    categories = defaultdict(set)
    for r in rows(folder, "film_category"):
        categories[r["film_id"]].add(category_name[r["category_id"]])
    film_of_rental = {}
    for r in rows(folder, "rental"):
        truth.rentals_per_day[utc(r["rental_date"]).date()] += 1
        film = film_of_inventory[r["inventory_id"]]
        film_of_rental[r["rental_id"]] = film
        for category in categories[film] or {"Unknown"}:
            truth.rentals_per_category[category] += 1
    for r in rows(folder, "payment"):
        day = utc(r["payment_date"]).date()
        amount = Decimal(r["amount"])
        truth.payments_per_day[day] += 1
        truth.revenue_per_day[day] += amount
        truth.total_revenue += amount
        cats = categories[film_of_rental[r["rental_id"]]] if r["rental_id"] in film_of_rental else set()
        for category in cats or {"Unknown"}:
            truth.revenue_per_category[category] += Fraction(amount) / max(len(cats), 1)
    return truth


def day_range(folder: Path) -> tuple[date, date]:
    days = [utc(r["rental_date"]).date() for r in rows(folder, "rental")]
    days += [utc(r["payment_date"]).date() for r in rows(folder, "payment")]
    return min(days), max(days)
