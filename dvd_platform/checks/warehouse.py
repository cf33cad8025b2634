"""Checks on the warehouse, pushed down to PostgreSQL, run right after each load in the same step."""

from __future__ import annotations

import os
from datetime import date, timedelta
from decimal import Decimal

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from dvd_platform.checks.results import result, spec
from dvd_platform.resources.warehouse import Window, WarehouseResource

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


def _fetch(conn, sql: str, params: dict) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _one(conn, sql: str, params: dict):
    return _fetch(conn, sql, params)[0]


def fact_checks(warehouse: WarehouseResource, asset: str, window: Window, staged_rows: int,
                staged_per_day: dict[date, int], staged_amount: Decimal | None = None) -> list[AssetCheckResult]:
    ts = FACT_TIME[asset]
    p = window.params
    conn = warehouse.connect()
    try:
        in_window = f"{ts} >= %(window_start)s AND {ts} < %(window_end)s"
        out = []
        if asset == "fact_payment":
            q = f"SELECT count(*), coalesce(sum(amount), 0) FROM dw.fact_payment WHERE {in_window}"
            loaded, amount = _one(conn, q, p)
            off = abs(loaded - staged_rows) + (0 if amount == staged_amount else 1)
            out.append(result("reconciliation", off, severity=ERROR, query=q, fact_rows=loaded, staged_rows=staged_rows,
                              fact_amount=float(amount), staged_amount=float(staged_amount or 0)))
        else:
            q = f"SELECT count(*) FROM dw.fact_rental WHERE {in_window}"
            (loaded,) = _one(conn, q, p)
            out.append(result("reconciliation", abs(loaded - staged_rows), severity=ERROR, query=q,
                              fact_rows=loaded, staged_rows=staged_rows))
        keys = ["customer_key", "staff_key", "store_key", "film_key"] + (["rental_date_key"] if asset == "fact_payment" else [])
        # Rows with at least one unknown key (a row may miss several), and the count per key.
        q = (f"SELECT count(*) FILTER (WHERE -1 IN ({', '.join(keys)})), "
             f"{', '.join(f'count(*) FILTER (WHERE {k} = -1) AS {k}' for k in keys)} "
             f"FROM dw.{asset} WHERE {in_window}")
        n, *per_key = _one(conn, q, p)
        counts = dict(zip(keys, per_key))
        sample_q = f"SELECT * FROM dw.{asset} WHERE {in_window} AND -1 IN ({', '.join(keys)}) LIMIT 10"
        out.append(result("unknown_dimension_keys", n, severity=WARN, query=q,
                          samples=_dicts(conn, sample_q, p) if n else None, **{f"unknown_{k}": v for k, v in counts.items()}))
        out.append(_volume(conn, asset, ts, window, staged_per_day))
        if asset == "fact_payment":
            q = (f"SELECT p.payment_id, p.rental_id, p.film_key, p.store_key, p.rental_date_key FROM dw.fact_payment p "
                 f"JOIN dw.fact_rental r USING (rental_id) WHERE p.{in_window.replace(ts, 'payment_ts')} "
                 f"AND (p.film_key = -1 OR p.store_key = -1 OR p.rental_date_key = -1)")
            rows = _dicts(conn, q, p)
            out.append(result("unknown_after_rental_loaded", len(rows), severity=ERROR, query=q, samples=rows))
            lag = int(os.environ.get("DVD_FRESHNESS_LAG_DAYS", "2"))
            (newest,) = _one(conn, "SELECT max(payment_ts AT TIME ZONE 'UTC')::date FROM dw.fact_payment", {})
            stale = newest is None or newest < date.today() - timedelta(days=lag)
            out.append(result("freshness", int(stale), severity=WARN,
                              query="SELECT max(payment_ts AT TIME ZONE 'UTC')::date FROM dw.fact_payment",
                              newest_day=str(newest), allowed_lag_days=lag))
        return out
    finally:
        conn.close()


def _volume(conn, asset: str, ts: str, window: Window, staged_per_day: dict[date, int]) -> AssetCheckResult:
    history_start = window.first_day - timedelta(days=28)
    q = (f"SELECT ({ts} AT TIME ZONE 'UTC')::date AS day, count(*) FROM dw.{asset} "
         f"WHERE {ts} >= %(history_start)s AND {ts} < %(window_end)s GROUP BY 1")
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
    return result("volume", len(missing) + len(outliers), severity=severity, query=q, samples=samples,
                  days_without_rows=len(missing), outlier_days=len(outliers))


def scd2_check(warehouse: WarehouseResource, asset: str) -> AssetCheckResult:
    nk = SCD2[asset]
    q = f"""
        SELECT {nk}, count(*) FILTER (WHERE is_current) AS current_versions,
               count(*) FILTER (WHERE overlapping_next) AS overlapping
          FROM (SELECT {nk}, is_current,
                       coalesce(valid_to, 'infinity') > lead(valid_from) OVER (PARTITION BY {nk} ORDER BY valid_from)
                       AS overlapping_next
                  FROM dw.{asset}) v
         GROUP BY {nk}
        HAVING count(*) FILTER (WHERE is_current) <> 1 OR count(*) FILTER (WHERE overlapping_next) > 0"""
    conn = warehouse.connect()
    try:
        rows = _dicts(conn, q, {})
    finally:
        conn.close()
    return result("scd2_integrity", len(rows), severity=ERROR, query=q, samples=rows)


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


def _dicts(conn, sql: str, params: dict) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchmany(10)]
