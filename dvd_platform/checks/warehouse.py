"""Checks on the warehouse, pushed down to PostgreSQL, run right after each load in the same step."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec
from psycopg2 import sql

from dvd_platform.checks.results import result, spec
from dvd_platform.partitions import daily_partitions, monthly_partitions
from dvd_platform.resources.thresholds import CheckThresholds
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
        partitions = monthly_partitions if asset == "mart_category_monthly" else daily_partitions
        specs.append(spec(asset, "totals_match_facts", "the mart's totals equal the facts' for the partition",
                          partitions_def=partitions))
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


#: A check's results, one list per day of the window.
DayResults = dict[date, list[AssetCheckResult]]


def _days(window: Window) -> list[date]:
    return [window.first_day + timedelta(n) for n in range((window.last_day - window.first_day).days + 1)]


def _day_of(ts: sql.Identifier) -> sql.Composed:
    return sql.SQL("({} AT TIME ZONE 'UTC')::date").format(ts)


def _by_day(rows: list[dict]) -> dict[date, list[dict]]:
    out: dict[date, list[dict]] = {}
    for row in rows:
        out.setdefault(row["dt"], []).append(row)
    return out


def fact_checks(warehouse: WarehouseResource, asset: str, window: Window, staged_per_day: dict[date, int],
                staged_amount_per_day: dict[date, Decimal] | None = None, *,
                thresholds: CheckThresholds) -> DayResults:
    """Every check of a fact, per day of the window, against the staged rows (and amounts) per day."""
    out: DayResults = {day: [] for day in _days(window)}
    conn = warehouse.connect()
    try:
        _reconciliation(conn, asset, window, staged_per_day, staged_amount_per_day, out)
        _unknown_keys(conn, asset, window, out)
        _volume(conn, asset, window, staged_per_day, out)
        if asset == "fact_payment":
            _payment_checks(conn, window, thresholds.freshness_lag_days, out)
        return out
    finally:
        conn.close()


def _reconciliation(conn, asset: str, window: Window, staged_per_day: dict[date, int],
                    staged_amount_per_day: dict[date, Decimal] | None, out: DayResults) -> None:
    ts, table = sql.Identifier(FACT_TIME[asset]), sql.Identifier("dw", asset)
    amount = sql.SQL("coalesce(sum(amount), 0)" if staged_amount_per_day is not None else "0")
    q = sql.SQL("SELECT {day}, count(*), {amount} FROM {table} WHERE {in_window} GROUP BY 1").format(
        day=_day_of(ts), amount=amount, table=table, in_window=_in_window(ts))
    loaded = {day: (n, total) for day, n, total in _fetch(conn, q, window.params)}
    text = _text(conn, q)
    for day, results in out.items():
        rows, total = loaded.get(day, (0, Decimal(0)))
        staged = staged_per_day.get(day, 0)
        extra = {}
        off = abs(rows - staged)
        if staged_amount_per_day is not None:
            staged_amount = staged_amount_per_day.get(day, Decimal(0))
            off += int(total != staged_amount)
            extra = {"fact_amount": float(total), "staged_amount": float(staged_amount)}
        results.append(result("reconciliation", off, severity=ERROR, query=text, fact_rows=rows, staged_rows=staged,
                              **extra))


def _unknown_keys(conn, asset: str, window: Window, out: DayResults) -> None:
    """Rows with at least one unknown (-1) key (a row may miss several), and the count per key, per day."""
    ts, table = sql.Identifier(FACT_TIME[asset]), sql.Identifier("dw", asset)
    keys = ["customer_key", "staff_key", "store_key", "film_key"] + (["rental_date_key"] if asset == "fact_payment" else [])
    idents = [sql.Identifier(k) for k in keys]
    any_unknown = sql.SQL("-1 IN ({})").format(sql.SQL(", ").join(idents))
    per_key = sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE {k} = -1)").format(k=k) for k in idents)
    q = sql.SQL("SELECT {day}, count(*) FILTER (WHERE {any}), {per_key} FROM {table} WHERE {in_window} GROUP BY 1").format(
        day=_day_of(ts), any=any_unknown, per_key=per_key, table=table, in_window=_in_window(ts))
    counts = {day: (n, dict(zip(keys, rest))) for day, n, *rest in _fetch(conn, q, window.params)}
    samples: dict[date, list[dict]] = {}
    if any(n for n, _ in counts.values()):
        sample_q = sql.SQL("SELECT {day} AS dt, * FROM {table} WHERE {in_window} AND {any} LIMIT 10").format(
            day=_day_of(ts), table=table, in_window=_in_window(ts), any=any_unknown)
        samples = _by_day(_dicts(conn, sample_q, window.params))
    text = _text(conn, q)
    for day, results in out.items():
        n, per = counts.get(day, (0, dict.fromkeys(keys, 0)))
        results.append(result("unknown_dimension_keys", n, severity=WARN, query=text, samples=samples.get(day),
                              **{f"unknown_{k}": v for k, v in per.items()}))


UNKNOWN_AFTER_RENTAL_LOADED = sql.SQL("""
    SELECT (p.payment_ts AT TIME ZONE 'UTC')::date AS dt, p.payment_id, p.rental_id, p.film_key, p.store_key,
           p.rental_date_key
      FROM dw.fact_payment p JOIN dw.fact_rental r USING (rental_id)
     WHERE p.payment_ts >= %(window_start)s AND p.payment_ts < %(window_end)s
       AND (p.film_key = -1 OR p.store_key = -1 OR p.rental_date_key = -1)""")
NEWEST_PAYMENT_DAY = "SELECT max(payment_ts AT TIME ZONE 'UTC')::date FROM dw.fact_payment"


def _payment_checks(conn, window: Window, lag: int, out: DayResults) -> None:
    """Payments still on unknown keys once their rental is loaded; freshness of the newest payment
    (a table-wide fact, reported on every day of the window)."""
    with conn.cursor() as cur:
        cur.execute(UNKNOWN_AFTER_RENTAL_LOADED, window.params)
        names = [d.name for d in cur.description]
        rows = _by_day([dict(zip(names, row)) for row in cur.fetchall()])
    (newest,) = _one(conn, sql.SQL(NEWEST_PAYMENT_DAY), {})
    stale = newest is None or newest < date.today() - timedelta(days=lag)
    text = _text(conn, UNKNOWN_AFTER_RENTAL_LOADED)
    for day, results in out.items():
        day_rows = rows.get(day, [])
        results.append(result("unknown_after_rental_loaded", len(day_rows), severity=ERROR, query=text,
                              samples=day_rows))
        results.append(result("freshness", int(stale), severity=WARN, query=NEWEST_PAYMENT_DAY,
                              newest_day=str(newest), allowed_lag_days=lag))


def _volume(conn, asset: str, window: Window, staged_per_day: dict[date, int], out: DayResults) -> None:
    """ERROR for a day with staged rows and none loaded; WARN for a day far (4x) off the median of
    its previous 28 non-empty days (needs 7 of them)."""
    ts = sql.Identifier(FACT_TIME[asset])
    q = sql.SQL("SELECT {day} AS day, count(*) FROM {table} "
                "WHERE {ts} >= %(history_start)s AND {ts} < %(window_end)s GROUP BY 1").format(
        day=_day_of(ts), ts=ts, table=sql.Identifier("dw", asset))
    per_day = dict(_fetch(conn, q, {**window.params, "history_start": window.first_day - timedelta(days=28)}))
    text = _text(conn, q)
    for day, results in out.items():
        staged, loaded = staged_per_day.get(day, 0), per_day.get(day, 0)
        previous = sorted(n for d, n in per_day.items() if day - timedelta(28) <= d < day and n)
        median = previous[len(previous) // 2] if len(previous) >= 7 else None
        if staged and not loaded:
            results.append(result("volume", 1, severity=ERROR, query=text, days_without_rows=1, outlier_days=0,
                                  samples=[{"day": str(day), "staged_rows": staged, "loaded_rows": 0}]))
        elif median and loaded and not median / 4 <= loaded <= median * 4:
            results.append(result("volume", 1, severity=WARN, query=text, days_without_rows=0, outlier_days=1,
                                  samples=[{"day": str(day), "rows": loaded, "median_28d": median}]))
        else:
            results.append(result("volume", 0, severity=WARN, query=text, days_without_rows=0, outlier_days=0))


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


def mart_checks(warehouse: WarehouseResource, asset: str, windows: dict[str, Window]) -> dict[str, AssetCheckResult]:
    """The mart's totals against its facts, per partition (one connection for all, a statement each)."""
    q = MART_TOTALS[asset]
    rows = warehouse.query_each(q, [w.params for w in windows.values()])
    out = {}
    for key, [(revenue_diff, rentals_diff)] in zip(windows, rows):
        # Category revenue is split by weights like 1/3: allow rounding far below a cent.
        off = int(abs(revenue_diff) > Decimal("0.000001")) + int(rentals_diff != 0)
        out[key] = result("totals_match_facts", off, severity=ERROR, query=q, revenue_difference=float(revenue_diff),
                          rentals_difference=int(rentals_diff))
    return out


def _dicts(conn, query: sql.Composable, params: dict) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchmany(10)]
