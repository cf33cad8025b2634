"""The reference tables as a whole: their first-day snapshot and each later day's changes.

Rebuilt from the seed at each run, so that replaying the change draws from
the first day gives every day the same state whatever days are written.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import partial
from typing import Iterable

from dvd_platform.contract.drops import SeedError
from dvd_platform.dev.seed import csvio
from dvd_platform.dev.seed.customers import Customers
from dvd_platform.dev.seed.draws import day_factor, poisson
from dvd_platform.dev.seed.films import Films, Inventory
from dvd_platform.dev.seed.formats import DAY_SECONDS, Clock, Row, epoch_day
from dvd_platform.dev.seed.lookups import actor_rows, category_rows, city_rows, country_rows, language_rows
from dvd_platform.dev.seed.stores import STAFF_PER_STORE, staff_rows, store_count, store_rows

# Daily change rates of the reference data (share of the table per day, before day noise).
EMAIL_CHANGES = 0.003
MOVES = 0.001
RATE_CHANGES = 0.002
CHANGE_NOISE = 0.3  # sigma of the log-normal day factor of reference changes


@dataclass
class DayChanges:
    """Reference rows changed on one day, and the film rates that day's price changes replaced.

    ``rates_replaced``: film -> [(epoch second of a change, cents before it)] in time order,
    so a rental made before a change pays the rate then in force.
    """

    rows: dict[str, list[Row]] = field(default_factory=dict)
    rates_replaced: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def table_rows(self, table: str) -> list[Row]:
        return self.rows.get(table, [])


class Reference:
    """The reference tables and their state as of the day being simulated."""

    def __init__(self, scale: float, seed: int, start: date):
        self.seed = seed
        self.clock = Clock()
        snapshot_time = datetime.combine(start - timedelta(1), time(9, 30), tzinfo=timezone.utc)
        self.loaded = csvio.format_pg_timestamp(snapshot_time)  # before the first rental: the snapshot's load
        n_stores = store_count(scale)
        self.films = Films(seed, scale, self.loaded, self.clock)
        self.inventory = Inventory(seed, self.films.count, n_stores, self.loaded)
        stocked = self.inventory.stocked_stores()
        if not stocked:
            raise SeedError(f"scale {scale:g} is too small: no film copy is in stock")
        first_address = n_stores + n_stores * STAFF_PER_STORE + 1  # after the stores' and the staff's
        self.customers = Customers(seed, scale, start, stocked, first_address, self.loaded, self.clock)
        self._snapshots = {
            "country": partial(country_rows, seed, self.loaded),
            "city": partial(city_rows, seed, self.loaded),
            "language": partial(language_rows, self.loaded),
            "category": partial(category_rows, self.loaded),
            "actor": partial(actor_rows, seed, self.loaded),
            "address": self.customers.address_rows,
            "store": partial(store_rows, n_stores, self.loaded),
            "staff": partial(staff_rows, seed, n_stores, self.loaded),
            "customer": self.customers.rows,
            "film": self.films.rows,
            "film_category": self.films.category_rows,
            "film_actor": self.films.actor_rows,
            "inventory": self.inventory.rows,
        }

    def snapshot(self, table: str) -> Iterable[Row]:
        """The table's rows as of the first day, streamed where nothing else needs them."""
        return self._snapshots[table]()

    def change(self, day: date) -> DayChanges:
        """Apply the day's e-mail changes, moves and film price changes; return the rows they touched.

        The draws are made first and applied in time order, so a customer's row
        is the complete latest version (a move after an e-mail change keeps the
        new e-mail) and its last_update is the time of its last change.
        """
        rng = random.Random(f"{self.seed}:{day}:changes")
        noise = day_factor(rng, CHANGE_NOISE)
        day_start = epoch_day(day) * DAY_SECONDS
        n_customers, n_films = self.customers.count, self.films.count
        events = sorted(
            (rng.randrange(DAY_SECONDS), kind, rng.randint(1, size))
            for kind, size, share in (("email", n_customers, EMAIL_CHANGES), ("move", n_customers, MOVES),
                                      ("rate", n_films, RATE_CHANGES))
            for _ in range(poisson(rng, share * size * noise))
        )
        changes = DayChanges()
        customers: set[int] = set()
        films: set[int] = set()
        addresses: list[Row] = []
        for second, kind, target in events:
            moment = day_start + second
            if kind == "rate":
                replaced = self.films.change_rate(rng, target, moment)
                changes.rates_replaced.setdefault(target, []).append((moment, replaced))
                films.add(target)
            elif kind == "email":
                self.customers.change_email(rng, target, moment)
                customers.add(target)
            else:
                addresses.append(self.customers.move(rng, target, moment))
                customers.add(target)
        # Each changed row as it is at the end of the day (its latest version).
        changes.rows["customer"] = [self.customers.row(key) for key in sorted(customers)]
        changes.rows["film"] = [self.films.row(key) for key in sorted(films)]
        changes.rows["address"] = addresses
        return changes
