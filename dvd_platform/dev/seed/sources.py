"""Where sample drops come from: a folder of pagila-shaped CSVs, or the generator.

A source (a :class:`~dvd_platform.contract.drops.DropSource`) writes the drop files of the days it is asked for into a local
directory (``<out>/<table>/dt=YYYY-MM-DD/<table>.csv``, every table, every day,
header-only where a table has no rows that day). A day's files depend only on
the source and that day, never on which other days were asked for, so
re-seeding a day writes the same bytes.
"""

from __future__ import annotations

import csv
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import IO, Sequence

from dvd_platform import settings
from dvd_platform.contract.drops import DropSource, SeedError, drop_path
from dvd_platform.contract.tables import EVENT_TABLES, REFERENCE_TABLES, TABLES
from dvd_platform.dev.seed import csvio

__all__ = ["DEFAULT_SAMPLE", "DropSource", "FolderSource", "SeedError", "drop_path", "open_drop", "sample_source"]

#: The pagila sample beside the project, the default source of ``seed``, ``up`` and ``oltp load-sample``.
DEFAULT_SAMPLE = settings.PROJECT_ROOT.parent / "shared" / "datasets" / "pagila"


def sample_source(choice: str | None, *, scale: float = 1.0, seed: int = 42) -> DropSource:
    """The source ``--source`` names: a folder, or ``generated``; by default the sample folder if it exists."""
    if choice is None:
        choice = str(DEFAULT_SAMPLE) if DEFAULT_SAMPLE.is_dir() else "generated"
    if choice == "generated":
        from dvd_platform.dev.seed.generator import GeneratedSource

        return GeneratedSource(scale=scale, seed=seed)
    return FolderSource(Path(choice))


def open_drop(out_dir: Path, table: str, day: date) -> IO[str]:
    """Open a drop file for writing (UTF-8, newline handling left to the csv module)."""
    path = drop_path(out_dir, table, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "w", encoding="utf-8", newline="")


class FolderSource:
    """A folder of pagila-shaped CSVs, one per table (e.g. ../shared/datasets/pagila).

    It is one snapshot: reference tables go whole into the first day's drop and
    later days carry header-only reference files. Event rows are cut into days
    by their event column in UTC and keep the source's text unchanged.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SeedError(f"source folder {self.folder} does not exist")
        self.description = f"folder:{self.folder.resolve()}"
        self._range: tuple[date, date] | None = None

    def _open(self, table: str):
        path = self.folder / f"{table}.csv"
        if not path.exists():
            raise SeedError(f"{path}: missing (a drop needs every table: {', '.join(TABLES)})")
        stream = open(path, encoding="utf-8", newline="")
        reader = csv.reader(stream)
        header = tuple(next(reader, ()))
        if header == TABLES[table].columns:
            return stream, reader, path
        try:
            return stream, _by_contract(table, header, reader, path), path
        except SeedError:
            stream.close()
            raise

    def _event_rows(self, table: str):
        """Yield (day, row) with the file's line number in errors."""
        stream, reader, path = self._open(table)
        index = TABLES[table].columns.index(TABLES[table].event_column)
        with stream:
            for row in reader:
                try:
                    day = csvio.utc_day(row[index])
                except (ValueError, IndexError) as exc:
                    raise SeedError(f"{path}:{reader.line_num}: bad {TABLES[table].event_column}: {exc}") from exc
                yield day, row

    def day_range(self) -> tuple[date, date]:
        if self._range is None:
            days = {day for table in EVENT_TABLES for day, _ in self._event_rows(table)}
            if not days:
                raise SeedError(f"{self.folder}: the event tables have no rows")
            self._range = (min(days), max(days))
        return self._range

    def write_days(self, days: Sequence[date], out_dir: Path) -> None:
        wanted = set(days)
        first, _ = self.day_range()
        for table in EVENT_TABLES:
            with ExitStack() as files:
                writers = {}
                for day in sorted(wanted):
                    writers[day] = csvio.writer(files.enter_context(open_drop(out_dir, table, day)))
                    writers[day].writerow(TABLES[table].columns)
                for day, row in self._event_rows(table):
                    if day in writers:
                        writers[day].writerow(row)
        for table in REFERENCE_TABLES:
            for day in sorted(wanted):
                with open_drop(out_dir, table, day) as out:
                    if day == first:
                        stream, reader, _ = self._open(table)
                        with stream:
                            csvio.write_rows(out, TABLES[table].columns, reader)
                    else:
                        csvio.write_rows(out, TABLES[table].columns, [])


def _by_contract(table: str, header: tuple[str, ...], reader, path: Path) -> "_Remapped":
    """The file's rows laid out as the contract's, when its header has the contract's columns in another
    order or lacks optional ones (written empty: NULL).

    Why: a column added to the contract must not make a fixed sample folder unusable, as long as no row
    is useless without it. A missing key, event or required column, a column the contract does not
    know (its values would be dropped) or one named twice is refused. A row whose width is not the
    header's cannot be laid out by name: the seed stops there, naming file and line, before anything
    is uploaded (drops are written to a temp dir first). An optional column may still be NOT NULL in
    the OLTP DDL (``last_update``): then ``oltp load-sample``'s COPY refuses the empty values.
    """
    spec = TABLES[table]
    needed = {*spec.primary_key, *spec.required, *([spec.event_column] if spec.event_column else [])}
    unknown = [c for c in header if c not in spec.columns]
    missing = [c for c in spec.columns if c not in header]
    twice = sorted({c for c in header if header.count(c) > 1})
    if unknown or needed.intersection(missing) or twice:
        raise SeedError(f"{path}: header {list(header)} differs from the contract {list(spec.columns)} "
                        f"(unknown: {unknown}; named twice: {twice}; missing: {missing}, of which key or "
                        f"required: {sorted(needed.intersection(missing))})")
    return _Remapped(reader, [header.index(c) if c in header else None for c in spec.columns], path)


class _Remapped:
    """A csv reader whose rows come out in the contract's column order ("" where the file lacks one)."""

    def __init__(self, reader, positions: list[int | None], path: Path):
        self.reader, self.positions, self.path = reader, positions, path
        self.width = sum(p is not None for p in positions)

    @property
    def line_num(self) -> int:
        return self.reader.line_num

    def __iter__(self):
        for row in self.reader:
            if len(row) != self.width:  # cannot be laid out by name: say where, rather than guess
                raise SeedError(f"{self.path}:{self.reader.line_num}: {len(row)} fields, the header has {self.width}")
            yield ["" if p is None else row[p] for p in self.positions]
