"""Checks on the warehouse, pushed down to PostgreSQL, run right after each load in the same step."""

from __future__ import annotations

import os
from datetime import date, timedelta
from decimal import Decimal

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec
from psycopg2 import sql

from dvd_platform.checks.results import result, spec
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.warehouse.window import Window

ERROR, WARN = AssetCheckSeverity.ERROR, AssetCheckSeverity.WARN

FACT_TIME = {"fact_rental": "rental_ts", "fact_payment": "payment_ts"}
SCD2 = {"dim_customer": "customer_id", "dim_film": "film_id"}


def warehouse_check_specs(asset: str) -> list[AssetCheckSpec]:
    specs: list[AssetCheckSpec] = []
    if asset in FACT_TIME:
        specs += [
            spec(asset, "reconciliation", "rows (and for payments sum(amount), to the cent) equal the valid staged rows"),
            spec(asset, "unknown_dimension_keys", "rows bound to an unknown (-1) member, counted (WARN)", blocking=False),
            spec(asset, "volume", "ERROR when a day with staged rows has none loaded; WARN when a day's count is "
                 "far (4x) outside the median of its previous 28 non-empty days", blocking=False),
        ]
    if asset == "fact_payment":
        specs += [
            spec(asset, "unknown_after_rental_loaded", "no payment keeps an unknown key once its rental is loaded"),
            spec(asset, "freshness", "the newest loaded payment day is at most DVD_FRESHNESS_LAG_DAYS old (WARN)",
                 blocking=False),
        ]
    if asset in SCD2:
        specs.append(spec(asset, "scd2_integrity", "no overlapping validity ranges; exactly one current version "
                          "per natural key"))
    if asset.startswith("mart_"):
        specs.append(spec(asset, "totals_match_facts", "the mart's totals equal the facts' for the window"))
    return specs


def _text(conn, query: sql.Composable) -> str:
    """The query as PostgreSQL receives it (identifiers quoted), for the check's metadata."""
    return query.as_string(conn)


def _fetch(conn, query: sql.Composable, params: dict) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _one(conn, query: sql.Composable, params: dict):
    return _fetch(conn, query, params)[0]


def _in_window(column: sql.Identifier) -> sql.Composed:
    """``column`` within the window's UTC bounds (bound from the window's params at execution)."""
    return sql.SQL("{c} >= %(window_start)s AND {c} < %(window_end)s").format(c=column)


def _unknown_keys_query(table: sql.Identifier, in_window: sql.Composed, keys: list[str]) -> sql.Composed:
    """Rows with at least one unknown (-1) key (a row may miss several), and the count per key."""
    idents = [sql.Identifier(k) for k in keys]
    per_key = sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE {k} = -1) AS {k}").format(k=k) for k in idents)
    return sql.SQL("SELECT count(*) FILTER (WHERE -1 IN ({keys})), {per_key} FROM {table} WHERE {in_window}").format(
        keys=sql.SQL(", ").join(idents), per_key=per_key, table=table, in_window=in_window)


def fact_checks(warehouse: WarehouseResource, asset: str, window: Window, staged_rows: int,
                staged_per_day: dict[date, int], staged_amount: Decimal | None = None) -> list[AssetCheckResult]:
    ts, table = sql.Identifier(FACT_TIME[asset]), sql.Identifier("dw", asset)
    p = window.params
    in_window = _in_window(ts)
    conn = warehouse.connect()
    try:
        out = []
        if asset == "fact_payment":
            q = sql.SQL("SELECT count(*), coalesce(sum(amount), 0) FROM {} WHERE {}").format(table, in_window)
            loaded, amount = _one(conn, q, p)
            off = abs(loaded - staged_rows) + (0 if amount == staged_amount else 1)
            out.append(result("reconciliation", off, severity=ERROR, query=_text(conn, q), fact_rows=loaded,
                              staged_rows=staged_rows, fact_amount=float(amount), staged_amount=float(staged_amount or 0)))
        else:
            q = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table, in_window)
            (loaded,) = _one(conn, q, p)
            out.append(result("reconciliation", abs(loaded - staged_rows), severity=ERROR, query=_text(conn, q),
                              fact_rows=loaded, staged_rows=staged_rows))
        keys = ["customer_key", "staff_key", "store_key", "film_key"] + (["rental_date_key"] if asset == "fact_payment" else [])
        q = _unknown_keys_query(table, in_window, keys)
        n, *per_key = _one(conn, q, p)
        counts = dict(zip(keys, per_key))
        sample_q = sql.SQL("SELECT * FROM {} WHERE {} AND -1 IN ({}) LIMIT 10").format(
            table, in_window, sql.SQL(", ").join(sql.Identifier(k) for k in keys))
        out.append(result("unknown_dimension_keys", n, severity=WARN, query=_text(conn, q),
                          samples=_dicts(conn, sample_q, p) if n else None, **{f"unknown_{k}": v for k, v in counts.items()}))
        out.append(_volume(conn, asset, window, staged_per_day))
        if asset == "fact_payment":
            out += _payment_checks(conn, p)
        return out
    finally:
        conn.close()


UNKNOWN_AFTER_RENTAL_LOADED = sql.SQL("""
    SELECT p.payment_id, p.rental_id, p.film_key, p.store_key, p.rental_date_key
      FROM dw.fact_payment p JOIN dw.fact_rental r USING (rental_id)
     WHERE p.payment_ts >= %(window_start)s AND p.payment_ts < %(window_end)s
       AND (p.film_key = -1 OR p.store_key = -1 OR p.rental_date_key = -1)""")
NEWEST_PAYMENT_DAY = "SELECT max(payment_ts AT TIME ZONE 'UTC')::date FROM dw.fact_payment"


def _payment_checks(conn, params: dict) -> list[AssetCheckResult]:
    """Payments still on unknown keys once their rental is loaded; freshness of the newest payment."""
    rows = _dicts(conn, UNKNOWN_AFTER_RENTAL_LOADED, params)
    lag = int(os.environ.get("DVD_FRESHNESS_LAG_DAYS", "2"))
    (newest,) = _one(conn, sql.SQL(NEWEST_PAYMENT_DAY), {})
    stale = newest is None or newest < date.today() - timedelta(days=lag)
    return [
        result("unknown_after_rental_loaded", len(rows), severity=ERROR,
               query=_text(conn, UNKNOWN_AFTER_RENTAL_LOADED), samples=rows),
        result("freshness", int(stale), severity=WARN, query=NEWEST_PAYMENT_DAY, newest_day=str(newest),
               allowed_lag_days=lag),
    ]


def _volume(conn, asset: str, window: Window, staged_per_day: dict[date, int]) -> AssetCheckResult:
    history_start = window.first_day - timedelta(days=28)
    ts = sql.Identifier(FACT_TIME[asset])
    q = sql.SQL("SELECT ({ts} AT TIME ZONE 'UTC')::date AS day, count(*) FROM {table} "
                "WHERE {ts} >= %(history_start)s AND {ts} < %(window_end)s GROUP BY 1").format(
        ts=ts, table=sql.Identifier("dw", asset))
    per_day = dict(_fetch(conn, q, {**window.params, "history_start": history_start}))
    missing = [d for d, n in staged_per_day.items() if n and not per_day.get(d)]
    outliers = []
    day = window.first_day
    while day <= window.last_day:
        previous = sorted(n for d, n in per_day.items() if day - timedelta(28) <= d < day and n)
        if len(previous) >= 7 and per_day.get(day):
            median = previous[len(previous) // 2]
            if not median / 4 <= per_day[day] <= median * 4:
                outliers.append({"day": str(day), "rows": per_day[day], "median_28d": median})
        day += timedelta(1)
    severity = ERROR if missing else WARN
    samples = [{"day": str(d), "staged_rows": staged_per_day[d], "loaded_rows": 0} for d in missing] or outliers
    return result("volume", len(missing) + len(outliers), severity=severity, query=_text(conn, q), samples=samples,
                  days_without_rows=len(missing), outlier_days=len(outliers))


SCD2_INTEGRITY = """
    SELECT {nk}, count(*) FILTER (WHERE is_current) AS current_versions,
           count(*) FILTER (WHERE overlapping_next) AS overlapping
      FROM (SELECT {nk}, is_current,
                   coalesce(valid_to, 'infinity') > lead(valid_from) OVER (PARTITION BY {nk} ORDER BY valid_from)
                   AS overlapping_next
              FROM {table}) v
     GROUP BY {nk}
    HAVING count(*) FILTER (WHERE is_current) <> 1 OR count(*) FILTER (WHERE overlapping_next) > 0"""


def scd2_check(warehouse: WarehouseResource, asset: str) -> AssetCheckResult:
    q = sql.SQL(SCD2_INTEGRITY).format(nk=sql.Identifier(SCD2[asset]), table=sql.Identifier("dw", asset))
    conn = warehouse.connect()
    try:
        rows = _dicts(conn, q, {})
        text = _text(conn, q)
    finally:
        conn.close()
    return result("scd2_integrity", len(rows), severity=ERROR, query=text, samples=rows)


MART_TOTALS = {
    "mart_daily_revenue": """
        SELECT (SELECT coalesce(sum(revenue), 0) FROM dw.mart_daily_revenue WHERE date BETWEEN %(first_day)s AND %(last_day)s)
             - (SELECT coalesce(sum(amount), 0) FROM dw.fact_payment WHERE payment_ts >= %(window_start)s AND payment_ts < %(window_end)s),
               (SELECT coalesce(sum(rentals), 0) FROM dw.mart_daily_revenue WHERE date BETWEEN %(first_day)s AND %(last_day)s)
             - (SELECT count(*) FROM dw.fact_rental WHERE rental_ts >= %(window_start)s AND rental_ts < %(window_end)s)""",
    "mart_category_monthly": """
        SELECT (SELECT coalesce(sum(revenue), 0) FROM dw.mart_category_monthly WHERE month >= %(month_start)s::date AND month < %(month_end)s::date)
             - (SELECT coalesce(sum(amount), 0) FROM dw.fact_payment WHERE payment_ts >= %(month_start)s AND payment_ts < %(month_end)s),
               0""",
}


def mart_check(warehouse: WarehouseResource, asset: str, window: Window) -> AssetCheckResult:
    q = MART_TOTALS[asset]
    revenue_diff, rentals_diff = warehouse.query(q, window.params)[0]
    # Category revenue is split by weights like 1/3: allow rounding far below a cent.
    off = int(abs(revenue_diff) > Decimal("0.000001")) + int(rentals_diff != 0)
    return result("totals_match_facts", off, severity=ERROR, query=q, revenue_difference=float(revenue_diff),
                  rentals_difference=int(rentals_diff))


def _dicts(conn, query: sql.Composable, params: dict) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchmany(10)]
