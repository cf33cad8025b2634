"""A deterministic generator of pagila-shaped daily drops, at any scale.

Why: the pagila sample is one fixed snapshot of ~16k rentals whose reference
tables never change. Load tests and demos need more (or fewer) rows, any number
of days, and reference rows that change over time (e-mail changes, moves, new
film prices) so that slowly changing dimensions have something to track. The
generator writes the same drop contract as :class:`FolderSource`: every table,
every day, the full reference snapshot on the first day, changed and new
reference rows on later days.

Determinism: every random draw comes from a seeded stream (:mod:`.draws`). The
simulation always runs from the first day, in the same order, drawing the same
numbers whichever days are asked for; it only writes the files of the wanted
days. So the bytes of a day depend on (scale, seed, start, day) alone.

Where the rows come from: :mod:`.lookups` (country, city, language, category,
actor), :mod:`.stores` (store, staff), :mod:`.customers` (customer, address),
:mod:`.films` (film, film_category, film_actor, inventory), held together and
changed day by day by :mod:`.reference`; :mod:`.events` (rental, payment).
This module runs the days and writes their files, each table's rows laid out by column name in
the contract's order (:func:`contract_layout`), so that the contract, not the generator, decides
what a drop holds.
"""

from __future__ import annotations

import math
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Iterable, Sequence

from dvd_platform.contract.drops import SeedError
from dvd_platform.contract.tables import TABLES, TableSpec
from dvd_platform.dev.seed import csvio, customers, events, films, lookups, stores
from dvd_platform.dev.seed.formats import epoch_day
from dvd_platform.dev.seed.reference import DayChanges, Reference
from dvd_platform.dev.seed.sources import open_drop

Rows = Iterable[Sequence[object]]

DEFAULT_START = date(2022, 2, 1)
DEFAULT_DAYS = 120

#: Each table's columns as the generator makes them, by name (the modules that make the rows declare them).
MADE_COLUMNS = {**lookups.COLUMNS, **stores.COLUMNS, **customers.COLUMNS, **films.COLUMNS, **events.COLUMNS}


def contract_layout(spec: TableSpec, made: Sequence[str]) -> Callable[[Rows], Rows]:
    """How rows made with the columns ``made`` are written as the contract's table: column by column, by name.

    Why: the contract decides which columns a drop has and in what order; the generator only knows
    what it makes. A nullable column the contract adds is written empty (NULL) until the generator
    makes it, and a column the contract no longer has is left out; a column the contract requires
    that the generator does not make is an error. Rows made as the contract has them pass as they are.
    """
    if tuple(made) == spec.columns:
        return lambda rows: rows
    lacking = [c for c in spec.columns if c not in made and (c in spec.primary_key or c in spec.required)]
    if lacking:
        raise SeedError(f"the contract's {spec.name} requires {', '.join(lacking)}, which the generator does not make")
    picks = [made.index(c) if c in made else None for c in spec.columns]
    return lambda rows: ([("" if i is None else row[i]) for i in picks] for row in rows)


class GeneratedSource:
    """Generated pagila-shaped drops: ``scale`` 1 is about pagila's size, sizes are linear in it.

    Implements :class:`dvd_platform.contract.drops.DropSource`.
    """

    def __init__(self, scale: float = 1.0, seed: int = 42, start: date = DEFAULT_START, days: int = DEFAULT_DAYS):
        if not (scale > 0 and math.isfinite(scale)):
            raise SeedError(f"scale must be a positive number, not {scale}")
        if days < 1:
            raise SeedError(f"days must be at least 1, not {days}")
        self.scale = scale
        self.seed = seed
        self.start = start
        self.days = days
        extra = "" if (start, days) == (DEFAULT_START, DEFAULT_DAYS) else f",start={start},days={days}"
        self.description = f"generated:scale={scale:g},seed={seed}{extra}"

    def day_range(self) -> tuple[date, date]:
        return self.start, self.start + timedelta(self.days - 1)

    def write_days(self, days: Sequence[date], out_dir: Path) -> None:
        """Write every table of ``days``; days outside the range get header-only files.

        The simulation runs from the first day up to the last wanted one (state
        such as ids, copies out and payments due needs every earlier day) and
        writes only the wanted days.
        """
        first, last = self.day_range()
        wanted = set(days)
        inside = {day for day in wanted if first <= day <= last}
        for day in sorted(wanted - inside):
            for table, spec in TABLES.items():
                with open_drop(out_dir, table, day) as out:
                    csvio.write_rows(out, spec.columns, [])
        if inside:
            with tempfile.TemporaryDirectory(prefix="dvd-generator-") as spool_dir:
                self._simulate(inside, Path(out_dir), Path(spool_dir))

    def _simulate(self, wanted: set[date], out_dir: Path, spool_dir: Path) -> None:
        """Run the days from the first one to the last wanted one; write the wanted days' files."""
        layouts = {table: contract_layout(spec, MADE_COLUMNS[table]) for table, spec in TABLES.items()}
        ref = Reference(self.scale, self.seed, self.start)
        day_events = events.Events(ref, self.seed, self.scale, {epoch_day(day) for day in wanted}, spool_dir)
        day, last = self.start, max(wanted)
        try:
            while day <= last:
                keep = day in wanted
                changes = DayChanges() if day == self.start else ref.change(day)
                rentals, payments = day_events.day(day, changes.rates_replaced, keep)
                if keep:
                    _write_day(out_dir, day, layouts, rentals, payments,
                               ref.snapshot if day == self.start else changes.table_rows)
                day += timedelta(1)
        finally:
            day_events.close()


def _write_day(out_dir: Path, day: date, layouts: dict[str, Callable[[Rows], Rows]], rentals: Rows, payments: Rows,
               reference_rows: Callable[[str], Rows]) -> None:
    """Write the day's file of every table: the events, and ``reference_rows(table)`` for the others."""
    for table, spec in TABLES.items():
        if table == "rental":
            rows = rentals
        elif table == "payment":
            rows = payments
        else:
            rows = reference_rows(table)
        with open_drop(out_dir, table, day) as out:
            writer = csvio.writer(out)
            writer.writerow(spec.columns)
            writer.writerows(layouts[table](rows))
