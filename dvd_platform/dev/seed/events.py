"""The generated rental and payment events, made one day at a time.

Each rental draws a customer (some rent far more than others), a copy at the
customer's store (one that is in the store, if a few tries find one), a
return time (a few never come back, some are kept well past their due day)
and a payment: at the rental, or at the return when late fees are due.

Memory: a payment dated on a later day than its rental (paid at return) is
spooled to a per-day temp file, and only when that day is being written; for
the other days a per-day count keeps payment ids right.
"""

from __future__ import annotations

import math
import random
from array import array
from datetime import date
from itertools import accumulate
from pathlib import Path
from typing import IO, Iterable

from dvd_platform.dev.seed.draws import day_factor, poisson
from dvd_platform.dev.seed.formats import DAY_MICROS, DAY_SECONDS, MICROS, cents_text, epoch_day
from dvd_platform.dev.seed.reference import Reference
from dvd_platform.dev.seed.stores import STAFF_PER_STORE

RENTALS_PER_DAY = 16_000 / 120  # at scale 1, pagila's: ~16k rentals over 120 days (the default range)
DAY_NOISE = 0.15  # sigma of the log-normal day factor of rentals
WEEKDAY_FACTORS = (0.85, 0.85, 0.9, 0.95, 1.15, 1.25, 1.05)  # Monday..Sunday, mean 1
HOUR_WEIGHTS = (3, 2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 9, 10, 11, 11, 10, 8, 6, 4)  # UTC hour of day
HOUR_CUM_WEIGHTS = tuple(accumulate(HOUR_WEIGHTS))
INVENTORY_TRIES = 3  # picks of a copy that is in the store before renting one that is out anyway
NEVER_RETURNED = 0.01
FREE_PAYMENTS = 0.0015
PAID_AT_RENTAL = 0.6  # of rentals returned in time
LATE_TAIL = 0.2  # share of returned rentals kept well past their due day
LATE_TAIL_DAYS = 3.0  # mean extra days of those
LATE_FEE_DAYS = 7  # at most 7 x 1.00 late fee: 4.99 + 7.00 = 11.99, pagila's top amount
PAYMENT_DELAY_MICROS = 600 * MICROS  # a payment follows its rental or return within 10 minutes
OUT_FOREVER = 1 << 62  # out_until of a copy never returned
#: The columns of the rows made here, by name: generator.py writes them in the contract's order.
COLUMNS = {
    "rental": ("rental_id", "rental_date", "inventory_id", "customer_id", "return_date", "staff_id", "last_update"),
    "payment": ("payment_id", "customer_id", "staff_id", "rental_id", "amount", "payment_date"),
}


def _rate_then(replaced: list[tuple[int, int]], moment: int, rate_now: int) -> int:
    """The rate in force at epoch second ``moment`` of a film whose price changed that day."""
    for changed, old_rate in replaced:
        if moment < changed:
            return old_rate
    return rate_now


def _return_and_charge(rng: random.Random, rented: int, rate: int, duration: int) -> tuple[int | None, int, int]:
    """When a copy rented at ``rented`` comes back (None: never), its charge in cents, when it is paid."""
    rand = rng.random
    if rand() < NEVER_RETURNED:
        return None, rate, rented
    days_out = 0.3 + rand() * (duration + 3)
    if rand() < LATE_TAIL:
        days_out += rng.expovariate(1 / LATE_TAIL_DAYS)
    returned = rented + int(days_out * DAY_SECONDS)
    late_days = min(LATE_FEE_DAYS, max(0, math.ceil(days_out) - duration))
    # A late fee is only known, and paid, at the return.
    paid = rented if not late_days and rand() < PAID_AT_RENTAL else returned
    return returned, rate + 100 * late_days, paid


class Events:
    """The rentals and payments of the days from the first one on, and what carries over between days.

    ``wanted_epoch_days``: the days whose rows are wanted (their payments are kept, or spooled when
    they are made on an earlier day). Every draw is made for every day, so the random streams are
    the same in every run.
    """

    def __init__(self, ref: Reference, seed: int, scale: float, wanted_epoch_days: set[int], spool_dir: Path):
        self.ref = ref
        self.seed = seed
        self.scale = scale
        self.wanted_epoch_days = wanted_epoch_days
        self.spool_dir = spool_dir
        self.clock = ref.clock
        self.out_until = array("q", bytes(8 * (ref.inventory.count + 1)))  # per copy: second it is back in the store
        self.next_rental_id = 1
        self.next_payment_id = 1
        self.payment_counts: dict[int, int] = {}  # epoch day -> payments dated that day (ids are given per day)
        self.spools: dict[int, IO[str]] = {}  # epoch day -> payments dated that day, made on earlier days

    def day(self, day: date, rates_replaced: dict[int, list[tuple[int, int]]],
            keep: bool) -> tuple[list[tuple], Iterable[tuple]]:
        """The day's rental rows and payment rows (none unless ``keep``); payment ids increase with time."""
        today = epoch_day(day)
        rentals, payments = self._rentals(day, today, rates_replaced, keep)
        count = self.payment_counts.pop(today, 0)
        payment_rows: Iterable[tuple] = ()
        if keep:
            payments.extend(self._unspool(today))
            payments.sort()  # by time, then rental: payment ids increase with time
            payment_rows = (
                (payment_id, customer, staff, rental, cents_text(cents), self.clock.micros(paid))
                for payment_id, (paid, rental, customer, staff, cents) in enumerate(payments, self.next_payment_id)
            )
        self.next_payment_id += count
        return rentals, payment_rows

    def close(self) -> None:
        for spool in self.spools.values():
            spool.close()

    def _arrivals(self, rng: random.Random, day: date, today: int) -> tuple[list[int], list[int]]:
        """The day's rental times (epoch seconds, in order) and who rents at each: how busy, when, who."""
        mean = RENTALS_PER_DAY * self.scale * WEEKDAY_FACTORS[day.weekday()] * day_factor(rng, DAY_NOISE)
        count = poisson(rng, mean)
        day_start = today * DAY_SECONDS
        hours = rng.choices(range(24), cum_weights=HOUR_CUM_WEIGHTS, k=count)
        rand = rng.random
        times = sorted(day_start + 3600 * hour + int(rand() * 3600) for hour in hours)
        customers = self.ref.customers
        return times, rng.choices(customers.ids, cum_weights=customers.cum_weights, k=count)

    def _rentals(self, day: date, today: int, rates_replaced: dict[int, list[tuple[int, int]]],
                 keep: bool) -> tuple[list[tuple], list[tuple]]:
        """Make the day's rentals and their payments (the hot loop: plain locals and tuples).

        Returns the rental rows and the payments dated on this same day, when the day is kept.
        """
        rng = random.Random(f"{self.seed}:{day}:rentals")
        rand = rng.random
        times, customers = self._arrivals(rng, day, today)
        customer_store, films = self.ref.customers.store, self.ref.films
        store_items, item_film = self.ref.inventory.store_items, self.ref.inventory.item_film
        film_rate, film_duration, out_until = films.rate, films.duration, self.out_until
        counts, wanted, seconds_text = self.payment_counts, self.wanted_epoch_days, self.clock.seconds
        rentals: list[tuple] = []
        payments: list[tuple] = []
        rental_id = self.next_rental_id
        for rented, customer in zip(times, customers):
            store = customer_store[customer]
            items = store_items[store]
            for _ in range(INVENTORY_TRIES):
                item = items[int(rand() * len(items))]
                if out_until[item] <= rented:
                    break
            film = item_film[item]
            rate = film_rate[film] if film not in rates_replaced else _rate_then(
                rates_replaced[film], rented, film_rate[film])
            first_staff = (store - 1) * STAFF_PER_STORE + 1
            staff = first_staff + int(rand() * STAFF_PER_STORE)
            returned, cents, paid = _return_and_charge(rng, rented, rate, film_duration[film])
            out_until[item] = OUT_FOREVER if returned is None else returned
            if rand() < FREE_PAYMENTS:
                cents = 0
            paid_staff = staff if paid == rented else first_staff + int(rand() * STAFF_PER_STORE)
            paid_micros = paid * MICROS + int(rand() * PAYMENT_DELAY_MICROS)
            pay_day = paid_micros // DAY_MICROS
            counts[pay_day] = counts.get(pay_day, 0) + 1
            if keep:
                rented_text = seconds_text(rented)
                rentals.append((rental_id, rented_text, item, customer,
                                "" if returned is None else seconds_text(returned), staff, rented_text))
            if pay_day in wanted:
                payment = (paid_micros, rental_id, customer, paid_staff, cents)
                if pay_day == today:
                    payments.append(payment)
                else:
                    self._spool(pay_day).write(",".join(map(str, payment)) + "\n")
            rental_id += 1
        self.next_rental_id = rental_id
        return rentals, payments

    def _spool(self, pay_day: int) -> IO[str]:
        spool = self.spools.get(pay_day)
        if spool is None:
            spool = self.spools[pay_day] = open(self.spool_dir / f"{pay_day}.csv", "w", encoding="ascii")
        return spool

    def _unspool(self, pay_day: int) -> list[tuple]:
        spool = self.spools.pop(pay_day, None)
        if spool is None:
            return []
        spool.close()
        path = Path(spool.name)
        with open(path, encoding="ascii") as stream:
            payments = [tuple(int(value) for value in line.split(",")) for line in stream]
        path.unlink()
        return payments
