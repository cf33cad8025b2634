"""The warehouse on the real PostgreSQL: figures equal the source, loads are idempotent and
atomic, SCD2 history binds facts by event time, and load order does not matter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Callable

import psycopg2
import pytest

from dvd_platform.settings import PROJECT_ROOT
from dvd_platform.contract.tables import TABLES as TABLES_SPEC
from dvd_platform.warehouse.window import Window
from dvd_platform_tests.crafted import drop, redrop_table, row

FACTS = ("fact_rental", "fact_payment")
TABLES = ("dim_customer", "dim_film", "dim_store", "dim_staff", "bridge_film_category", *FACTS,
          "mart_daily_revenue", "mart_category_monthly")


def checksum(pg, table: str, where: str = "true") -> tuple[int, str]:
    """Row count and an order-independent digest of every column of ``table`` (rows matching ``where``)."""
    with pg.cursor() as cur:
        cur.execute(f"SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
                    f"FROM dw.{table} t WHERE {where}")
        return cur.fetchone()


def checksums(pg) -> dict[str, tuple[int, str]]:
    return {table: checksum(pg, table) for table in TABLES}


def query(pg, sql: str, params=None) -> list[tuple]:
    with pg.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def test_figures_equal_the_source(sample_loaded, pg, truth):
    rentals = dict(query(pg, "SELECT (rental_ts AT TIME ZONE 'UTC')::date, count(*) FROM dw.fact_rental "
                             "WHERE rental_ts < '2022-09-01' GROUP BY 1"))
    assert rentals == dict(truth.rentals_per_day)
    payments = {d: (n, s) for d, n, s in query(
        pg, "SELECT (payment_ts AT TIME ZONE 'UTC')::date, count(*), sum(amount) FROM dw.fact_payment "
            "WHERE payment_ts < '2022-09-01' GROUP BY 1")}
    assert payments == {d: (n, truth.revenue_per_day[d]) for d, n in truth.payments_per_day.items()}
    # The marts agree with the facts and the source.
    daily = dict(query(pg, "SELECT date, sum(revenue) FROM dw.mart_daily_revenue WHERE date < '2022-09-01' GROUP BY 1"))
    assert {d: v for d, v in daily.items() if v} == {d: v for d, v in truth.revenue_per_day.items() if v}
    by_category = {c: (r, v) for c, r, v in query(
        pg, "SELECT category, sum(rentals), sum(revenue) FROM dw.mart_category_monthly WHERE month < '2022-09-01' GROUP BY 1")}
    assert {c: r for c, (r, _) in by_category.items()} == dict(truth.rentals_per_category)
    for category, expected in truth.revenue_per_category.items():
        assert abs(Fraction(by_category[category][1]) - expected) < Fraction(1, 10**12), category
    assert abs(sum(v for _, v in by_category.values()) - truth.total_revenue) < Decimal("1e-12")
    # Late-arriving payments were completed: no payment whose rental is loaded keeps an unknown key.
    assert query(pg, """SELECT count(*) FROM dw.fact_payment p JOIN dw.fact_rental r USING (rental_id)
                        WHERE p.film_key = -1 OR p.store_key = -1 OR p.rental_date_key = -1""") == [(0,)]
    assert query(pg, "SELECT count(*) FROM dw.dim_customer WHERE is_current AND customer_id > 0") == [
        (len(truth.customers),)]
    assert query(pg, "SELECT count(*) FROM dw.dim_film WHERE is_current AND film_id > 0") == [(len(truth.films),)]
    weights = query(pg, "SELECT count(*), count(DISTINCT film_id) FROM dw.bridge_film_category")[0]
    assert weights == (truth.film_categories, len(truth.films))
    assert query(pg, "SELECT count(*) FROM (SELECT film_id FROM dw.bridge_film_category GROUP BY 1 "
                     "HAVING abs(sum(weight) - 1) > 1e-15) x") == [(0,)]
    log = query(pg, "SELECT count(*) FROM dw_audit.load_log WHERE asset = 'fact_payment' AND status = 'success' "
                    "AND rows_loaded = %s", (truth.payments,))
    assert log[0][0] >= 1


def test_rerunning_a_day_three_times_changes_nothing(sample_loaded, pg, run_range):
    day = date(2022, 7, 27)
    selection = "group:warehouse or group:marts"
    before = checksums(pg)
    for _ in range(3):
        assert run_range(day, day, selection).ok
        assert checksums(pg) == before


def test_load_order_does_not_matter(sample_loaded, pg, run_range, truth):
    """Empty the sample's days of the facts, load payments first (rentals unknown), then rentals month
    by month newest first, and a few days of both newest first: the facts equal the in-order load."""
    first, last, _ = sample_loaded
    scope = {  # only the sample's days: other tests load their own days elsewhere in the calendar
        "fact_rental": f"rental_ts < '{last + timedelta(1)}'", "fact_payment": f"payment_ts < '{last + timedelta(1)}'",
        "mart_daily_revenue": f"date <= '{last}'",
    }
    expected = {t: checksum(pg, t, w) for t, w in scope.items()}
    query_no_result(pg, f"DELETE FROM dw.fact_rental WHERE {scope['fact_rental']}")
    query_no_result(pg, f"DELETE FROM dw.fact_payment WHERE {scope['fact_payment']}")
    assert run_range(first, last, "key:fact_payment").ok
    assert query(pg, "SELECT count(*) FILTER (WHERE film_key = -1) FROM dw.fact_payment "
                     f"WHERE {scope['fact_payment']}")[0][0] == truth.payments
    month_ends = [last]
    while month_ends[-1].replace(day=1) > first:
        month_ends.append(month_ends[-1].replace(day=1) - timedelta(1))
    for end in month_ends:  # newest month first
        start = max(end.replace(day=1), first)
        assert run_range(start, end, "key:fact_rental").ok
    for day in (date(2022, 5, 31), date(2022, 5, 30), date(2022, 5, 29)):
        assert run_range(day, day, "key:fact_rental or key:fact_payment").ok
    assert run_range(first, last, "key:mart_daily_revenue").ok
    assert {t: checksum(pg, t, w) for t, w in scope.items()} == expected


def query_no_result(pg, sql: str) -> None:
    with pg.cursor() as cur:
        cur.execute(sql)


SEPT = [date(2022, 9, 1), date(2022, 9, 2), date(2022, 9, 3)]


def _customer(email: str, address_id: str, ts: str) -> list[str]:
    return ["1", "1", "MARY", "SMITH", email, address_id, "t", "2022-02-14", ts, "1"]


def _rental(rental_id: int, ts: str) -> list[str]:
    return row("rental", rental_id=rental_id, rental_date=ts, inventory_id=1, customer_id=1, staff_id=1, last_update=ts)


@pytest.fixture(scope="module")
def scd_days(sample_loaded, s3, settings_env, run_range):
    """Customer 1 moves on Sep 1 at 10:00 and changes e-mail on Sep 2 at 09:00; rentals around both."""
    drop(s3, settings_env["DVD_LANDING_BUCKET"], {
        SEPT[0]: {
            "address": [["9001", "1 New Street", "", "Alberta", "300", "12345", "555", "2022-09-01 10:00:00+00"]],
            "customer": [_customer("MARY.SMITH@sakilacustomer.org", "9001", "2022-09-01 10:00:00+00")],
            "rental": [_rental(900001, "2022-09-01 08:00:00+00"), _rental(900002, "2022-09-01 12:00:00+00")],
        },
        SEPT[1]: {
            "customer": [_customer("mary@example.org", "9001", "2022-09-02 09:00:00+00")],
            "rental": [_rental(900003, "2022-09-02 15:00:00+00")],
        },
        SEPT[2]: {"rental": [_rental(900004, "2022-09-03 10:00:00+00")]},
    })
    summary = run_range(SEPT[0], SEPT[-1])
    assert summary.ok, summary.lines()


def test_scd2_versions_and_point_in_time_binding(scd_days, pg, truth):
    versions = query(pg, "SELECT customer_key, address, email, valid_from, valid_to, is_current FROM dw.dim_customer "
                         "WHERE customer_id = 1 ORDER BY valid_from")
    assert [(v[1], v[2]) for v in versions] == [
        (truth.addresses[truth.customers["1"]["address_id"]]["address"], truth.customers["1"]["email"]),
        ("1 New Street", "MARY.SMITH@sakilacustomer.org"),
        ("1 New Street", "mary@example.org"),
    ]
    assert versions[0][3] == datetime.min.replace(tzinfo=timezone.utc) or str(versions[0][3]) == "-infinity"
    assert versions[1][3] == datetime(2022, 9, 1, 10, tzinfo=timezone.utc)
    assert versions[2][3] == datetime(2022, 9, 2, 9, tzinfo=timezone.utc)
    assert [v[4] for v in versions] == [versions[1][3], versions[2][3], None]
    assert [v[5] for v in versions] == [False, False, True]
    keys = [v[0] for v in versions]
    bound = dict(query(pg, "SELECT rental_id, customer_key FROM dw.fact_rental WHERE rental_id >= 900001"))
    assert bound == {900001: keys[0], 900002: keys[1], 900003: keys[2], 900004: keys[2]}
    # The sample's older rentals of customer 1 stay on the first version.
    assert query(pg, "SELECT DISTINCT customer_key FROM dw.fact_rental WHERE customer_id = 1 AND rental_ts < '2022-09-01'") == [(keys[0],)]


def test_dimension_version_bounds_hold_on_every_loaded_day(scd_days, pg, settings_env):
    """The bound that sends a small SCD2 load through the client (``_versions_bound``, from footers) is never
    below the versions that start on a day, nor on the whole history; a day when only the member table
    changed is bounded by its staged rows, and one when a table it denormalizes changed by every member."""
    from dvd_platform.assets.warehouse import _versions_bound, type1_bound
    from dvd_platform.resources.lake import LakeResource
    from dvd_platform.warehouse.copy_in import CLIENT_COPY_MAX_ROWS

    lake = LakeResource(root=settings_env["DVD_LAKE_ROOT"])
    sources = {"dim_customer": ("customer", "address", "city", "country"),
               "dim_film": ("film", "language", "film_category", "category")}

    def bound(tables: tuple[str, ...], days: list[date]) -> int:
        return _versions_bound(lake, {t: lake.rows_per_day("staged", f"stg_{t}", days) for t in tables}, days)

    for dim, tables in sources.items():
        per_day = dict(query(pg, f"SELECT version_day, count(*) FROM dw.{dim} WHERE version_day IS NOT NULL "
                                 "GROUP BY 1"))
        assert sum(per_day.values()) > 1 and (dim == "dim_film" or len(per_day) > 1), f"{dim}: too few versions"
        for day, versions in per_day.items():
            assert bound(tables, [day]) >= versions, (dim, day)
        days = lake.snapshot_days("staged", f"stg_{tables[0]}")
        assert bound(tables, days) >= sum(per_day.values()), dim
    assert bound(sources["dim_customer"], [SEPT[1]]) == 1  # customer 1's e-mail: the client's COPY
    members = query(pg, "SELECT count(DISTINCT customer_id) FROM dw.dim_customer")[0][0]
    only_an_address = {"customer": {SEPT[2]: 0}, "address": {SEPT[2]: 1}, "city": {SEPT[2]: 0},
                       "country": {SEPT[2]: 0}}
    assert _versions_bound(lake, only_an_address, [SEPT[2]]) >= members
    # Type-1: one row per key of the first table.
    for table, (tables, loaded) in {"dim_store": (("store", "staff", "address", "city", "country"), "store_id <> -1"),
                                    "dim_staff": (("staff",), "staff_id <> -1"),
                                    "bridge_film_category": (("film_category", "category"), "true")}.items():
        rows = query(pg, f"SELECT count(*) FROM dw.{table} WHERE {loaded}")[0][0]  # not the unknown member
        assert 0 < rows <= type1_bound(lake, tables) < CLIENT_COPY_MAX_ROWS, table


def test_rerunning_a_middle_day_of_the_history_matches_the_in_order_run(scd_days, pg, run_range):
    in_order = query(pg, "SELECT * FROM dw.dim_customer ORDER BY customer_key")
    facts = checksum(pg, "fact_rental")
    assert run_range(SEPT[1], SEPT[1], "key:dim_customer").ok
    assert query(pg, "SELECT * FROM dw.dim_customer ORDER BY customer_key") == in_order
    # Even the first day re-run, after later days: same rows, same keys, facts still bound.
    assert run_range(SEPT[0], SEPT[0], "key:dim_customer").ok
    assert query(pg, "SELECT * FROM dw.dim_customer ORDER BY customer_key") == in_order
    assert checksum(pg, "fact_rental") == facts


def test_a_redrop_that_removes_a_change_drops_its_version_without_computing_versions(scd_days, pg, s3, settings_env,
                                                                                   run_range, dagster_instance, truth):
    """Sep 2 is dropped again without its customer row (the e-mail change): none of dim_customer's sources
    then has a row on Sep 2, so its load skips the SCD2 computation (its log says so), yet it drops the
    stale version, and the rentals after Sep 2 bind to Sep 1's version, current again."""
    bucket = settings_env["DVD_LANDING_BUCKET"]
    selection = "key:raw_customer or key:stg_customer or key:dim_customer"
    restore = redrop_table(s3, bucket, SEPT[1], "customer", lambda rows: [])
    try:
        summary = run_range(SEPT[1], SEPT[1], selection)
        assert summary.ok, summary.lines()
        said = [e.user_message for e in dagster_instance.all_logs(summary.run_id)]
        assert any(m.startswith("no staged row of customer, address, city, country") for m in said), said
        versions = query(pg, "SELECT customer_key, email, valid_to, is_current FROM dw.dim_customer "
                             "WHERE customer_id = 1 ORDER BY valid_from")
        assert [v[1] for v in versions] == [truth.customers["1"]["email"], "MARY.SMITH@sakilacustomer.org"]
        assert (versions[-1][2], versions[-1][3]) == (None, True)
        bound = dict(query(pg, "SELECT rental_id, customer_key FROM dw.fact_rental WHERE rental_id >= 900003"))
        assert bound == {900003: versions[-1][0], 900004: versions[-1][0]}
    finally:
        restore()
        assert run_range(SEPT[1], SEPT[1], selection).ok
    assert len(query(pg, "SELECT 1 FROM dw.dim_customer WHERE customer_id = 1")) == 3


APRIL = [date(2023, 4, 1), date(2023, 4, 2), date(2023, 4, 3), date(2023, 4, 4)]  # Sat, Sun, Mon, Tue
NEWCOMER = 990001
APRIL_RUN = " or ".join(f"key:{a}_{t}" for a in ("raw", "stg") for t in ("customer", "address", "rental")) + \
    " or key:dim_customer or key:fact_rental"


def _newcomer(email: str, ts: str) -> list[str]:
    return row("customer", customer_id=NEWCOMER, store_id=1, first_name="NEW", last_name="COMER", email=email,
               address_id=NEWCOMER, activebool="t", create_date="2023-04-01", last_update=ts, active=1)


def _home(address: str, ts: str) -> list[str]:
    return row("address", address_id=NEWCOMER, address=address, district="Alberta", city_id=300, last_update=ts)


def test_rerunning_a_day_before_the_latest_gives_the_in_order_result(sample_loaded, pg, s3, settings_env, run_range):
    """A customer joins on Saturday April 1; Sunday and Monday load, and Monday's run keeps the state as
    of Sunday (a state snapshot). Then Saturday is dropped again with another e-mail and re-run, and on
    Tuesday only the customer's address changes (no customer row): Tuesday's version takes the e-mail
    from the customer's state, which must be the re-run's (the state snapshot rebuilt), exactly as if
    the days had been loaded in order with the final data. Tuesday's rental (its customer known only
    from Saturday) passes the foreign-key check and binds to the new version."""
    from dvd_platform.resources.lake import LakeResource
    from dvd_platform.resources.lake_state import state_days

    sat, sun, mon, tue = APRIL
    bucket = settings_env["DVD_LANDING_BUCKET"]
    drop(s3, bucket, {sat: {"address": [_home("1 Newcomer Road", "2023-04-01 09:00:00+00")],
                            "customer": [_newcomer("first@example.org", "2023-04-01 10:00:00+00")]}, sun: {}, mon: {}})
    assert run_range(sat, sun, APRIL_RUN).ok
    assert run_range(mon, mon, APRIL_RUN).ok
    lake = LakeResource(root=settings_env["DVD_LAKE_ROOT"])
    assert sun in state_days(lake, "stg_customer"), "Monday's run read the customers' state as of Sunday"

    redrop_table(s3, bucket, sat, "customer", lambda rows: [_newcomer("second@example.org", "2023-04-01 11:00:00+00")])
    assert run_range(sat, sat, APRIL_RUN).ok
    assert sun in state_days(lake, "stg_customer"), "Sunday's state snapshot is still there, now stale"
    drop(s3, bucket, {tue: {"address": [_home("1 Newcomer Road, flat 2", "2023-04-04 09:00:00+00")],
                            "rental": [row("rental", rental_id=990001, rental_date="2023-04-04 12:00:00+00",
                                           inventory_id=1, customer_id=NEWCOMER, staff_id=1,
                                           last_update="2023-04-04 12:00:00+00")]}})
    summary = run_range(tue, tue, APRIL_RUN)
    assert summary.ok, summary.lines()
    versions = query(pg, "SELECT customer_key, email, address, nullif(valid_from, '-infinity') FROM dw.dim_customer "
                         "WHERE customer_id = %s ORDER BY valid_from", (NEWCOMER,))
    assert [v[1:] for v in versions] == [
        ("second@example.org", "1 Newcomer Road", None),
        ("second@example.org", "1 Newcomer Road, flat 2", datetime(2023, 4, 4, 9, tzinfo=timezone.utc)),
    ]
    assert query(pg, "SELECT customer_key FROM dw.fact_rental WHERE rental_id = 990001") == [(versions[1][0],)]


def _dearer_and_one_more(new_id: int, expected: dict[int, Decimal]) -> Callable[[list[list[str]]], list[list[str]]]:
    """An edit of a day's payment rows: every amount 1.00 more, and one payment more (a copy of the
    first, as ``new_id``); ``expected`` gets payment_id -> amount of the edited rows."""
    columns = TABLES_SPEC["payment"].columns
    pid, amount = columns.index("payment_id"), columns.index("amount")

    def edit(rows: list[list[str]]) -> list[list[str]]:
        assert rows, "the day must have payments, or the check proves nothing"
        edited = [[*row[:amount], str(Decimal(row[amount]) + 1), *row[amount + 1:]] for row in rows]
        added = list(edited[0])
        added[pid] = str(new_id)
        edited.append(added)
        expected.update((int(row[pid]), Decimal(row[amount])) for row in edited)
        return edited
    return edit


def _payments_of(pg, days: list[date]) -> dict[int, Decimal]:
    return dict(query(pg, "SELECT payment_id, amount FROM dw.fact_payment "
                          "WHERE (payment_ts AT TIME ZONE 'UTC')::date = ANY(%s)", (days,)))


def test_sigkill_in_the_middle_of_a_fact_load_keeps_the_previous_rows(sample_loaded, pg, s3, settings_env, run_range):
    """A June day (a whole month: swapped in) and a July day (deleted and re-inserted) are dropped
    again, every payment 1.00 dearer and one payment more each. Load June and July 1-27 in one run;
    block the swap on the old June partition, after the new one is built and July's rows are
    replaced in the transaction, SIGKILL the run process while it waits: the facts are all old.
    Then a re-run loads them all new. (The original drops are put back and loaded at the end.)"""
    first, last = date(2022, 6, 1), date(2022, 7, 27)
    changed = [date(2022, 6, 17), date(2022, 7, 21)]
    others = "(payment_ts AT TIME ZONE 'UTC')::date NOT IN ('2022-06-17', '2022-07-21')"
    before, before_others = checksum(pg, "fact_payment"), checksum(pg, "fact_payment", others)
    new_id = query(pg, "SELECT max(payment_id) + 1 FROM dw.fact_payment")[0][0]
    expected: dict[int, Decimal] = {}
    bucket = settings_env["DVD_LANDING_BUCKET"]
    restores = []
    try:
        for n, day in enumerate(changed):
            restores.append(redrop_table(s3, bucket, day, "payment", _dearer_and_one_more(new_id + n, expected)))
            assert run_range(day, day, "key:raw_payment or key:stg_payment").ok
        _kill_the_load_at_its_swap(pg, settings_env, first, last)
        assert checksum(pg, "fact_payment") == before  # all old

        rerun = run_range(first, last, "key:fact_payment")
        assert rerun.ok, rerun.lines()
        assert _payments_of(pg, changed) == expected  # all new: amounts and the added payments
        assert checksum(pg, "fact_payment", others) == before_others
    finally:
        for restore in restores:
            restore()
        for day in changed:
            run_range(day, day, "key:raw_payment or key:stg_payment or key:fact_payment")
    assert checksum(pg, "fact_payment") == before  # the original drops are back for the tests after this one


def _kill_the_load_at_its_swap(pg, settings_env, first: date, last: date) -> None:
    """Run the fact_payment load of ``first``..``last`` (whole months swapped in) as a process, block its
    swap with a reader of the old June partition, SIGKILL it while it waits, and wait for its backend
    to roll back."""
    blocker = psycopg2.connect(settings_env["DVD_PG_DSN"])
    cur = blocker.cursor()
    cur.execute("LOCK TABLE dw.fact_payment_p2022_06 IN ACCESS SHARE MODE")  # a reader: blocks only the detach
    env = {**os.environ, **settings_env}
    env.pop("DAGSTER_HOME", None)  # an ephemeral instance for the child run
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvd_platform.cli", "materialize", "--from", str(first), "--to", str(last),
         "--select", "key:fact_payment"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    swapping = "SELECT dw.swap_partitions%%"
    try:
        deadline = time.monotonic() + 120
        waiting = []
        while time.monotonic() < deadline and not waiting:
            waiting = query(pg, "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                            (swapping,))
            time.sleep(0.2)
        assert waiting, "the load never reached its partition swap"  # June's new table is built by then
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        blocker.rollback()
        blocker.close()
    # The orphaned backend gets its lock, finds the client gone and rolls back.
    deadline = time.monotonic() + 30
    while query(pg, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                (swapping,))[0][0]:
        assert time.monotonic() < deadline, "the killed load's backend is still running"
        time.sleep(0.2)


def test_window_months_cut_at_utc_month_boundaries():
    pieces = Window(date(2022, 1, 24), date(2022, 4, 3)).months()
    assert [(str(piece), whole) for piece, whole in pieces] == [
        ("2022-01-24..2022-01-31", False), ("2022-02-01..2022-02-28", True),
        ("2022-03-01..2022-03-31", True), ("2022-04-01..2022-04-03", False),
    ]
    assert Window(date(2024, 2, 1), date(2024, 2, 29)).months() == [(Window(date(2024, 2, 1), date(2024, 2, 29)), True)]
    assert Window(date(2022, 12, 1), date(2022, 12, 1)).months() == [(Window(date(2022, 12, 1), date(2022, 12, 1)), False)]
    assert Window(date(2022, 12, 2), date(2023, 1, 31)).months() == [
        (Window(date(2022, 12, 2), date(2022, 12, 31)), False), (Window(date(2023, 1, 1), date(2023, 1, 31)), True)]


def _statements(path) -> list[str]:
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
    return [" ".join(s.split()) for s in text.split(";") if s.strip()]


def test_every_load_touching_fact_payment_declares_its_lock_and_no_load_sql_takes_one():
    """A month swap drops the old partition's rows, which SERIALIZABLE cannot see: a load that writes
    fact_payment must be locked out by it (ROW EXCLUSIVE), and a load that reads it must not take its
    snapshot before a swap commits (ACCESS SHARE). Each load's spec declares its lock and the loader
    takes it (test below); the SQL files take none. A new load SQL file that touches fact_payment
    without its spec declaring the lock fails here."""
    import re

    from dvd_platform.io_managers.postgres import LOAD_SPECS
    from dvd_platform.warehouse.loader import LOAD_SQL_DIR, SQL_LOAD_SPECS
    from dvd_platform.warehouse.locks import READS_FACT_PAYMENT, WRITES_FACT_PAYMENT

    specs = {**LOAD_SPECS, **SQL_LOAD_SPECS}
    touching = {}
    for path in sorted(LOAD_SQL_DIR.glob("*.sql")):
        statements = _statements(path)
        assert not [s for s in statements if re.search(r"\bLOCK\s+TABLE\b", s, re.IGNORECASE)], path.name
        assert path.stem in specs, f"{path.name} has no LoadSpec"
        if not any("dw.fact_payment" in s for s in statements) and path.stem != "fact_payment":
            assert specs[path.stem].locks == (), path.stem
            continue
        touching[path.stem] = path.stem == "fact_payment" or any(
            re.match(r"(WITH \w+ AS \(\s*)?(UPDATE|INSERT INTO|DELETE FROM) dw\.fact_payment\b", s) for s in statements)
    assert set(touching) == {"fact_payment", "fact_rental", "dim_customer", "dim_film", "dim_staff", "dim_store",
                             "mart_daily_revenue", "mart_category_monthly"}
    for name, writes in touching.items():
        assert specs[name].locks == (WRITES_FACT_PAYMENT if writes else READS_FACT_PAYMENT,), name


def test_the_loader_takes_the_locks_first_in_every_attempt_and_a_swap_takes_the_swap_lock():
    """The locks are the first statements of each attempt of the load's transaction (before its snapshot);
    a window with a whole month to swap takes SHARE ROW EXCLUSIVE instead of the writers' lock."""
    from psycopg2 import errors

    from dvd_platform.io_managers.postgres import LOAD_SPECS
    from dvd_platform.warehouse.loader import _transaction
    from dvd_platform.warehouse.locks import WRITES_FACT_PAYMENT, Lock

    spec = LOAD_SPECS["fact_payment"]
    swap = Lock("dw.fact_payment", "SHARE ROW EXCLUSIVE")
    assert spec.transaction_locks(Window(date(2022, 5, 20), date(2022, 7, 3))) == (swap,)
    assert spec.transaction_locks(Window(date(2022, 6, 2), date(2022, 6, 30))) == (WRITES_FACT_PAYMENT,)
    assert LOAD_SPECS["fact_rental"].transaction_locks(Window(date(2022, 6, 1), date(2022, 6, 30))) == (
        WRITES_FACT_PAYMENT,)

    done: list = []

    class Cursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, statement, params=None):
            done.append(statement)

    class Conn:
        closed = False

        def set_session(self, **_):
            pass

        def cursor(self):
            return Cursor()

        def commit(self):
            done.append("COMMIT")

        def rollback(self):
            done.append("ROLLBACK")

    def replace(cur) -> int:
        cur.execute("REPLACE")
        if done.count("REPLACE") == 1:
            raise errors.SerializationFailure()
        return 7

    rows, attempts = _transaction(Conn(), 3, (swap,), replace, lambda cur, n: cur.execute(f"AUDIT {n}"))
    assert (rows, attempts) == (7, 2)
    assert done == [swap.statement(), "REPLACE", "ROLLBACK", swap.statement(), "REPLACE", "AUDIT 7", "COMMIT"]


def partition_shape(pg, name: str) -> tuple:
    """Oid, grants, index names and their parents, and validated constraints of ``dw.<name>``, names
    without the partition's own name (a swapped-in partition must look like one PostgreSQL made)."""
    (oid, acl), = query(pg, "SELECT oid, relacl::text FROM pg_class WHERE oid = %s::regclass", (f"dw.{name}",))
    indexes = query(pg, """SELECT replace(c.relname, %s, '<part>'), p.relname
                             FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                             LEFT JOIN pg_inherits i ON i.inhrelid = x.indexrelid
                             LEFT JOIN pg_class p ON p.oid = i.inhparent
                            WHERE x.indrelid = %s ORDER BY 1""", (name, oid))
    constraints = query(pg, "SELECT replace(conname, %s, '<part>'), contype, convalidated, pg_get_constraintdef(oid) "
                            "FROM pg_constraint WHERE conrelid = %s ORDER BY 1", (name, oid))
    bound = query(pg, "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE oid = %s", (oid,))[0][0]
    return oid, acl, indexes, constraints, bound


def test_a_whole_month_is_swapped_in_and_rerunning_it_changes_nothing(sample_loaded, pg, run_range):
    """June is a whole month: the load builds a new partition and swaps it in. Twice more: same
    rows, a new table each time, shaped exactly like a partition PostgreSQL creates (August's:
    the sample's range ends mid-August, so that month is loaded by delete and insert)."""
    before = checksum(pg, "fact_payment")
    native = partition_shape(pg, "fact_payment_p2022_08")
    seen = {partition_shape(pg, "fact_payment_p2022_06")[0]}
    for _ in range(2):
        summary = run_range(date(2022, 6, 1), date(2022, 6, 30), "key:fact_payment")
        assert summary.ok, summary.lines()
        assert checksum(pg, "fact_payment") == before
        oid, acl, indexes, constraints, bound = partition_shape(pg, "fact_payment_p2022_06")
        assert oid not in seen
        seen.add(oid)
        assert (acl, indexes, constraints) == native[1:4]
        assert bound == "FOR VALUES FROM ('2022-06-01 00:00:00+00') TO ('2022-07-01 00:00:00+00')"
    assert len(native[2]) == 11 and all(parent for _, parent in native[2])  # every index attached to the parent's
    assert "=r/" in native[1]  # the analyst's read grant, which the swapped-in table must carry too


def test_a_month_swap_waits_for_other_writers_of_fact_payment(sample_loaded, pg, settings_env, run_range):
    """The swap drops the old partition's rows instead of deleting them, so it must not overlap any
    other writer of fact_payment (a rental load completing payments, a dimension re-binding them):
    each takes ROW EXCLUSIVE first, the swap SHARE ROW EXCLUSIVE. Here a writer holds its lock; the
    swap must wait until it commits."""
    before = checksum(pg, "fact_payment")
    writer = psycopg2.connect(settings_env["DVD_PG_DSN"])
    writer.cursor().execute("LOCK TABLE dw.fact_payment IN ROW EXCLUSIVE MODE")
    waited: list[int] = []

    def release_once_the_swap_waits() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not waited:
            waited.extend(pid for pid, in query(
                pg, "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'LOCK TABLE \"dw\".\"fact_payment\" IN SHARE ROW EXCLUSIVE MODE%%'"))
            time.sleep(0.2)
        writer.rollback()

    releaser = threading.Thread(target=release_once_the_swap_waits)
    releaser.start()
    try:
        summary = run_range(date(2022, 6, 1), date(2022, 6, 30), "key:fact_payment")
    finally:
        releaser.join()
        writer.close()
    assert waited, "the swap did not wait for the writer"
    assert summary.ok, summary.lines()
    assert checksum(pg, "fact_payment") == before


MAY = [date(2023, 5, 1), date(2023, 5, 2)]
STAFF_RUN = "key:raw_staff or key:stg_staff or key:dim_staff"


def test_a_type1_dimension_skips_its_load_while_its_inputs_stay_and_follows_a_change(sample_loaded, pg, s3,
                                                                                    settings_env, run_range):
    """dim_staff (type 1) depends on every staged day of staff, not on its window. May 1 adds a staff
    member: the load runs. May 2 stages no staff row: its load is skipped (logged, nothing staged, the
    table unchanged). May 1 re-run re-stages its row (a new snapshot, same rows): the load runs again,
    and May 2 then skips on the new inputs. May 1 dropped again with another e-mail: the load runs and
    the warehouse has the new e-mail, which May 2's skip keeps."""
    bucket = settings_env["DVD_LANDING_BUCKET"]
    member = dict(staff_id=77001, first_name="Skip", last_name="Test", address_id=3, store_id=1, active="t",
                  username="skip", last_update="2023-05-01 09:00:00+00")
    drop(s3, bucket, {MAY[0]: {"staff": [row("staff", **member, email="first@example.org")]}, MAY[1]: {}})
    table = "SELECT md5(string_agg(to_jsonb(d)::text, ',' ORDER BY staff_key)) FROM dw.dim_staff d"

    def run(day: date, email: str) -> tuple[bool, str]:
        """Run ``day``; its one dim_staff load's (skipped, inputs), the member's e-mail checked."""
        before = query(pg, table)
        summary = run_range(day, day, STAFF_RUN)
        assert summary.ok, summary.lines()
        assert query(pg, "SELECT email FROM dw.dim_staff WHERE staff_id = 77001") == [(email,)], day
        (skipped, staged, loaded, inputs), = query(
            pg, "SELECT skipped, rows_staged, rows_loaded, inputs FROM dw_audit.load_log "
                "WHERE asset = 'dim_staff' AND run_id = %s", (summary.run_id,))
        assert (staged, loaded, query(pg, table)) == (0, 0, before) if skipped else staged > 0 and loaded > 0
        return skipped, inputs

    skipped, first = run(MAY[0], "first@example.org")
    assert not skipped
    assert run(MAY[1], "first@example.org") == (True, first)
    skipped, again = run(MAY[0], "first@example.org")
    assert not skipped and again != first
    assert run(MAY[1], "first@example.org") == (True, again)

    redrop_table(s3, bucket, MAY[0], "staff", lambda rows: [row("staff", **member, email="second@example.org")])
    skipped, changed = run(MAY[0], "second@example.org")
    assert not skipped and changed not in (first, again)
    assert run(MAY[1], "second@example.org") == (True, changed)
