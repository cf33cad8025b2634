"""The generated source: deterministic per day, linear in scale, referentially sound, pagila-shaped."""

from __future__ import annotations

import csv
import dataclasses
import tracemalloc
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from dvd_platform.dev.seed import csvio
from dvd_platform.dev.seed.formats import Clock
from dvd_platform.dev.seed.generator import GeneratedSource, contract_layout
from dvd_platform.contract.drops import SeedError, drop_path
from dvd_platform.contract.tables import REFERENCE_TABLES, TABLES, Column, TableSpec

START = date(2022, 2, 1)
LOOKUPS = ("country", "city", "language", "category", "actor")


def _days(first: date, count: int) -> list[date]:
    return [first + timedelta(n) for n in range(count)]


def _write(tmp_path: Path, name: str, source: GeneratedSource, days: list[date]) -> Path:
    out = tmp_path / name
    source.write_days(days, out)
    return out


def _files(out: Path, days: list[date]) -> dict[tuple[str, date], bytes]:
    return {(table, day): drop_path(out, table, day).read_bytes() for table in TABLES for day in days}


def _rows(out: Path, table: str, day: date) -> list[dict[str, str]]:
    with open(drop_path(out, table, day), encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream)
        assert tuple(next(reader)) == TABLES[table].columns, (table, day)
        return [dict(zip(TABLES[table].columns, row, strict=True)) for row in reader]


def _count(out: Path, table: str, days: list[date]) -> int:
    return sum(len(_rows(out, table, day)) for day in days)


def test_description_and_range():
    source = GeneratedSource()
    assert source.description == "generated:scale=1,seed=42"
    assert source.day_range() == (START, date(2022, 5, 31))
    assert GeneratedSource(scale=0.5, seed=7, start=date(2023, 1, 1), days=10).day_range() == (
        date(2023, 1, 1), date(2023, 1, 10))


def test_clock_formats_like_csvio():
    clock = Clock()
    for text in ("2022-02-01 00:00:00", "2022-02-01 23:59:59", "2024-02-29 12:34:56", "1999-12-31 07:08:09"):
        moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        seconds = int(moment.timestamp())
        assert clock.seconds(seconds) == csvio.format_pg_timestamp(moment)
        for micros in (0, 1, 10, 500_000, 123_456, 999_999):
            expected = csvio.format_pg_timestamp(moment.replace(microsecond=micros))
            assert clock.micros(seconds * 1_000_000 + micros) == expected


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    days = _days(START, 5)
    first = _files(_write(tmp_path, "a", GeneratedSource(scale=0.2, seed=42), days), days)
    again = _files(_write(tmp_path, "b", GeneratedSource(scale=0.2, seed=42), days), days)
    other = _files(_write(tmp_path, "c", GeneratedSource(scale=0.2, seed=7), days), days)
    assert first == again
    assert all(first[("rental", day)] != other[("rental", day)] for day in days)
    assert first[("customer", START)] != other[("customer", START)]


def test_a_day_alone_is_byte_identical_to_the_same_day_in_a_range(tmp_path):
    source = GeneratedSource(scale=0.3, seed=11)
    days = _days(START, 12)
    whole = _files(_write(tmp_path, "range", source, days), days)
    for day in (days[0], days[7]):
        alone = _files(_write(tmp_path, f"alone-{day}", source, [day]), [day])
        assert alone == {key: value for key, value in whole.items() if key[1] == day}
    # Any selection: every other day.
    sparse = days[1::2]
    assert _files(_write(tmp_path, "sparse", source, sparse), sparse) == {
        key: value for key, value in whole.items() if key[1] in sparse}


def test_days_outside_the_range_are_header_only(tmp_path):
    source = GeneratedSource(scale=0.1, days=3)
    outside = [START - timedelta(1), START + timedelta(3)]
    out = _write(tmp_path, "out", source, outside)
    for day in outside:
        for table, spec in TABLES.items():
            assert drop_path(out, table, day).read_text() == ",".join(spec.columns) + "\n"


def test_sizes_are_linear_in_scale_and_lookups_fixed(tmp_path):
    days = _days(START, 30)
    half = _write(tmp_path, "half", GeneratedSource(scale=0.5), days)
    full = _write(tmp_path, "full", GeneratedSource(scale=1.0), days)
    for table in ("rental", "payment"):
        ratio = _count(half, table, days) / _count(full, table, days)
        assert 0.45 <= ratio <= 0.55, (table, ratio)
    for table in ("customer", "film", "inventory", "address"):
        ratio = len(_rows(half, table, START)) / len(_rows(full, table, START))
        assert 0.45 <= ratio <= 0.55, (table, ratio)
    for table in LOOKUPS:
        assert drop_path(half, table, START).read_bytes() == drop_path(full, table, START).read_bytes()
    assert len(_rows(full, "store", START)) == len(_rows(half, "store", START)) == 2
    big = _write(tmp_path, "big", GeneratedSource(scale=10), [START])
    assert [row["store_id"] for row in _rows(big, "store", START)] == [str(n) for n in range(1, 21)]
    assert len(_rows(big, "staff", START)) == 40


def test_pagila_like_sizes_and_distributions_at_scale_1(tmp_path):
    source = GeneratedSource()
    days = _days(START, 120)
    out = _write(tmp_path, "pagila", source, days)
    rentals = [row for day in days for row in _rows(out, "rental", day)]
    payments = [row for day in days for row in _rows(out, "payment", day)]
    assert 14_400 <= len(rentals) <= 17_600
    assert 0.95 <= len(payments) / len(rentals) <= 1.0  # one each; some are paid at a return after the last day
    snapshot = {table: _rows(out, table, START) for table in REFERENCE_TABLES}
    sizes = {table: len(rows) for table, rows in snapshot.items()}
    assert sizes["customer"] == 600 and sizes["film"] == 1000 and sizes["actor"] == 200
    assert (sizes["country"], sizes["city"], sizes["language"], sizes["category"]) == (109, 600, 6, 16)
    assert (sizes["store"], sizes["staff"]) == (2, 4)
    assert 4_200 <= sizes["inventory"] <= 5_000
    categories = Counter(Counter(row["film_id"] for row in snapshot["film_category"]).values())
    assert set(categories) == {1, 2, 3} and categories[2] > categories[3] > categories[1] > 10
    actors = Counter(row["film_id"] for row in snapshot["film_actor"])
    assert len(actors) == 1000 and min(actors.values()) >= 1 and max(actors.values()) <= 15
    assert 4.5 <= sum(actors.values()) / 1000 <= 6.5
    assert 0.005 <= sum(row["return_date"] == "" for row in rentals) / len(rentals) <= 0.015
    amounts = Counter(row["amount"] for row in payments)
    assert 0 < amounts["0.00"] / len(payments) < 0.005
    assert all(a == "0.00" or (a.endswith(".99") and 0.99 <= float(a) <= 11.99) for a in amounts)
    assert amounts["4.99"] > amounts["10.99"]
    per_weekday: dict[int, list[int]] = defaultdict(list)
    for day in days:
        per_weekday[day.weekday()].append(len(_rows(out, "rental", day)))
    assert sum(per_weekday[5]) / len(per_weekday[5]) > 1.2 * sum(per_weekday[0]) / len(per_weekday[0])
    for row in snapshot["film"][:50]:
        assert row["special_features"].startswith("{") and row["special_features"].endswith("}")
        assert row["rental_rate"] in ("0.99", "2.99", "4.99") and row["original_language_id"] == ""
    assert {row["activebool"] for row in snapshot["customer"]} == {"t"}
    assert {row["active"] for row in snapshot["customer"]} == {"0", "1"}


def test_integrity_over_a_short_run(tmp_path):
    source = GeneratedSource(scale=0.2, seed=5)
    days = _days(START, 20)
    out = _write(tmp_path, "run", source, days)
    snapshot = {table: _rows(out, table, START) for table in REFERENCE_TABLES}
    assert all(snapshot[table] for table in REFERENCE_TABLES), "the first day holds every reference table whole"

    def ids(table: str, column: str) -> set[str]:
        return {row[column] for row in snapshot[table]}

    # The snapshot is self-consistent.
    for table in REFERENCE_TABLES:
        keys = [tuple(row[k] for k in TABLES[table].primary_key) for row in snapshot[table]]
        assert len(keys) == len(set(keys)), table
    assert ids("store", "store_id") == {"1", "2"} and ids("staff", "staff_id") == {"1", "2", "3", "4"}
    assert {row["country_id"] for row in snapshot["city"]} <= ids("country", "country_id")
    assert {row["city_id"] for row in snapshot["address"]} <= ids("city", "city_id")
    assert {row["language_id"] for row in snapshot["film"]} <= ids("language", "language_id")
    assert {row["film_id"] for row in snapshot["film_category"]} == ids("film", "film_id")
    assert {row["category_id"] for row in snapshot["film_category"]} <= ids("category", "category_id")
    assert {row["actor_id"] for row in snapshot["film_actor"]} <= ids("actor", "actor_id")
    assert {row["film_id"] for row in snapshot["inventory"]} <= ids("film", "film_id")
    assert {row["store_id"] for row in snapshot["inventory"]} <= ids("store", "store_id")
    assert {row["store_id"] for row in snapshot["staff"]} <= ids("store", "store_id")
    assert {row["manager_staff_id"] for row in snapshot["store"]} <= ids("staff", "staff_id")
    addresses = ids("address", "address_id")
    for table in ("store", "staff", "customer"):
        assert {row["address_id"] for row in snapshot[table]} <= addresses, table

    inventory_store = {row["inventory_id"]: row["store_id"] for row in snapshot["inventory"]}
    staff_store = {row["staff_id"]: row["store_id"] for row in snapshot["staff"]}
    customers = {row["customer_id"]: row for row in snapshot["customer"]}
    rentals: dict[str, dict[str, str]] = {}
    last_rental = last_payment = 0
    moved = changed_films = 0
    for day in days:
        if day != START:
            for table in REFERENCE_TABLES:
                if table not in ("customer", "address", "film"):
                    assert _rows(out, table, day) == [], (table, day)
            new_addresses = {row["address_id"] for row in _rows(out, "address", day)}
            assert not new_addresses & addresses, "moves add new address rows"
            addresses |= new_addresses
            for row in _rows(out, "customer", day):
                before = customers[row["customer_id"]]
                assert csvio.utc_day(row["last_update"]) == day
                assert {k for k in row if row[k] != before[k]} <= {"email", "address_id", "last_update"}
                if row["address_id"] != before["address_id"]:
                    assert row["address_id"] in new_addresses
                    moved += 1
                customers[row["customer_id"]] = row
            for row in _rows(out, "film", day):
                assert csvio.utc_day(row["last_update"]) == day and row["film_id"] in ids("film", "film_id")
                changed_films += 1
        for row in _rows(out, "rental", day):
            rental_id = int(row["rental_id"])
            assert rental_id > last_rental
            last_rental = rental_id
            assert csvio.utc_day(row["rental_date"]) == csvio.utc_day(row["last_update"]) == day
            assert row["customer_id"] in customers and row["staff_id"] in staff_store
            assert staff_store[row["staff_id"]] == inventory_store[row["inventory_id"]]
            if row["return_date"]:
                assert csvio.parse_pg_timestamp(row["return_date"]) > csvio.parse_pg_timestamp(row["rental_date"])
            for column in ("rental_date", "return_date"):
                if row[column]:
                    assert csvio.format_pg_timestamp(csvio.parse_pg_timestamp(row[column])) == row[column]
            rentals[row["rental_id"]] = row
        for row in _rows(out, "payment", day):
            payment_id = int(row["payment_id"])
            assert payment_id > last_payment
            last_payment = payment_id
            assert csvio.utc_day(row["payment_date"]) == day
            assert csvio.format_pg_timestamp(csvio.parse_pg_timestamp(row["payment_date"])) == row["payment_date"]
            rental = rentals[row["rental_id"]]  # on this day or an earlier one
            assert row["customer_id"] == rental["customer_id"] and row["staff_id"] in staff_store
            assert csvio.parse_pg_timestamp(row["payment_date"]) >= csvio.parse_pg_timestamp(rental["rental_date"])
    assert moved >= 1 and changed_films >= 1
    assert len(rentals) > 20 * 20 and last_payment > 0


def test_changes_are_cumulative_and_amounts_follow_the_rate_in_force(tmp_path):
    """Over a long run each customer version carries all earlier changes, and amounts use the rate of the time."""
    source = GeneratedSource(scale=0.5, seed=3)
    days = _days(START, 120)
    out = _write(tmp_path, "long", source, days)
    customers = {row["customer_id"]: row for row in _rows(out, "customer", START)}
    snapshot_email = {key: row["email"] for key, row in customers.items()}
    films = {row["film_id"]: row for row in _rows(out, "film", START)}
    rates: dict[str, list[tuple[datetime, float]]] = {
        row["film_id"]: [(csvio.parse_pg_timestamp(row["last_update"]), float(row["rental_rate"]))]
        for row in films.values()}
    email_then_move = 0
    history: dict[str, list[set[str]]] = defaultdict(list)
    for day in days[1:]:
        for row in _rows(out, "customer", day):
            before = customers[row["customer_id"]]
            diff = {k for k in row if row[k] != before[k]} - {"last_update"}
            assert diff and diff <= {"email", "address_id"}
            if before["email"] != snapshot_email[row["customer_id"]]:
                assert row["email"] != snapshot_email[row["customer_id"]], "a later change undid an e-mail change"
            if "address_id" in diff and any("email" in past for past in history[row["customer_id"]]):
                email_then_move += 1
            history[row["customer_id"]].append(diff)
            customers[row["customer_id"]] = row
        for row in _rows(out, "film", day):
            assert {k for k, v in row.items() if v != films[row["film_id"]][k]} <= {"rental_rate", "last_update"}
            films[row["film_id"]] = row
            rates[row["film_id"]].append((csvio.parse_pg_timestamp(row["last_update"]), float(row["rental_rate"])))
    assert email_then_move >= 1
    assert sum(len(versions) > 1 for versions in rates.values()) >= 50

    film_of = {row["inventory_id"]: row["film_id"] for row in _rows(out, "inventory", START)}
    rentals: dict[str, dict[str, str]] = {}
    checked = 0
    for day in days:
        for row in _rows(out, "rental", day):
            rentals[row["rental_id"]] = row
        for row in _rows(out, "payment", day):
            if row["amount"] == "0.00":
                continue
            rental = rentals[row["rental_id"]]
            rented = csvio.parse_pg_timestamp(rental["rental_date"])
            rate = [value for since, value in rates[film_of[rental["inventory_id"]]] if since <= rented][-1]
            late_fee = round(float(row["amount"]) - rate, 2)
            assert late_fee in {float(n) for n in range(8)}, (row, rate)
            if late_fee:
                assert csvio.parse_pg_timestamp(row["payment_date"]) > csvio.parse_pg_timestamp(rental["return_date"])
            checked += 1
    assert checked > 5_000


def test_memory_does_not_grow_with_the_number_of_days(tmp_path):
    """Events are made day by day and spooled: 10x the days adds no more than interpreter noise.

    The long run has ~16k rentals and ~16k payments; holding them would take
    over 8 MB. What does grow is bounded by the reference size (one int per
    inventory copy for its return time) or the number of days (path parts).
    """

    def peak(count: int) -> int:
        tracemalloc.start()
        try:
            GeneratedSource(scale=2).write_days(_days(START, count), tmp_path / f"days-{count}")
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(6), peak(60)
    assert long - short < 2_000_000, (short, long)


def test_memory_grows_by_a_few_bytes_per_customer_film_and_copy_with_the_scale(tmp_path):
    """Ten times the scale adds numbers, not rows: the reference keeps compact arrays and draws
    a customer's or film's row again from its own seed when it is written.

    Per scale unit (600 customers, 1,000 films, ~4,600 copies, ~133 rentals a day) the peak
    grew by about 1.3 MB while whole rows were kept, and by about 0.2 MB since.
    """

    def peak(scale: int) -> int:
        tracemalloc.start()
        try:
            GeneratedSource(scale=scale).write_days(_days(START, 2), tmp_path / f"scale-{scale}")
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(1), peak(10)
    assert (large - small) / 9 < 400_000, (small, large)


@pytest.mark.parametrize("kwargs", [{"scale": 0}, {"scale": -1}, {"scale": float("nan")}, {"days": 0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        GeneratedSource(**kwargs)


def test_a_tiny_scale_still_makes_a_consistent_drop(tmp_path):
    out = _write(tmp_path, "tiny", GeneratedSource(scale=0.01, seed=1), _days(START, 3))
    assert len(_rows(out, "customer", START)) == 6 and len(_rows(out, "film", START)) == 10
    items = {row["inventory_id"] for row in _rows(out, "inventory", START)}
    assert all(row["inventory_id"] in items for day in _days(START, 3) for row in _rows(out, "rental", day))


def test_rows_are_laid_out_by_column_name_in_the_contracts_order():
    spec = TableSpec("t", (Column("id", "int"), Column("note", "string"), Column("n", "int", required=True)), ("id",))
    rows = [(1, "x", 2)]
    assert contract_layout(spec, ("id", "note", "n"))(rows) is rows  # made as the contract has them: as they are
    # Another order, a column the contract does not have (left out), one the generator does not make (empty).
    assert list(contract_layout(spec, ("n", "gone", "id"))([(2, "x", 1)])) == [[1, "", 2]]
    with pytest.raises(SeedError, match="the contract's t requires n, which the generator does not make"):
        contract_layout(spec, ("id", "note"))


def test_a_nullable_column_added_to_the_contract_is_written_empty(tmp_path, monkeypatch):
    """The contract, not the generator, decides a drop's columns: the generator follows a new column at once."""
    source, days = GeneratedSource(scale=0.1, seed=4), _days(START, 2)
    before = {day: _rows(_write(tmp_path, "before", source, days), "rental", day) for day in days}
    rental = TABLES["rental"]
    noted = dataclasses.replace(rental, schema=(*rental.schema, Column("rental_note", "string")))
    monkeypatch.setitem(TABLES, "rental", noted)
    out = _write(tmp_path, "after", source, days)
    for day in days:
        rows = _rows(out, "rental", day)  # the header is the contract's, every row has its columns
        assert rows == [{**row, "rental_note": ""} for row in before[day]] and rows
