"""Marts, computed inside PostgreSQL from the facts; they follow their facts by declarative automation.

``mart_daily_revenue`` is daily; ``mart_category_monthly`` holds months, so it is partitioned by
month and maps to its daily parents by time window (a month depends on its days). Each mart's
check reports one result per partition, after the mart's materializations are recorded.
"""

from dagster import AssetDep, AssetExecutionContext, MaterializeResult, TimeWindowPartitionMapping, asset

from dvd_platform.assets.warehouse import bridge_film_category, dim_film, dim_store, fact_payment, fact_rental
from dvd_platform.automation import follows_checked_days_of_month, follows_checked_deps
from dvd_platform.checks.results import evaluations
from dvd_platform.checks.warehouse import mart_checks, warehouse_check_specs
from dvd_platform.partitions import daily_partitions, monthly_partitions, single_run, window_days
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.warehouse.window import Window

MART_COMMON = dict(backfill_policy=single_run, group_name="marts", kinds={"postgres"}, owners=["team:analytics"])


def _run(context: AssetExecutionContext, warehouse: WarehouseResource, name: str, windows: dict[str, Window]):
    """Recompute the mart for the run's whole window in one transaction, then check each partition."""
    days = window_days(context.partition_time_window)
    window = Window(days[0], days[-1])
    result = warehouse.run_sql_load(name, window, context.run.run_id)
    context.log.info(f"{name}: {result.rows_loaded} rows for {window} in {result.seconds:.2f} s")
    yield MaterializeResult(metadata={"table": f"dw.{name}", "rows": result.rows_loaded,
                                      "load_seconds": round(result.seconds, 3)})
    yield from evaluations(context, {key: [r] for key, r in mart_checks(warehouse, name, windows).items()})


def _day_windows(context: AssetExecutionContext) -> dict[str, Window]:
    return {day.isoformat(): Window(day, day) for day in window_days(context.partition_time_window)}


def _month_windows(context: AssetExecutionContext) -> dict[str, Window]:
    windows = {}
    for key in context.partition_keys:
        window = monthly_partitions.time_window_for_partition_key(key)
        days = window_days(window)
        windows[key] = Window(days[0], days[-1])
    return windows


@asset(deps=[fact_rental, fact_payment, dim_store], check_specs=warehouse_check_specs("mart_daily_revenue"),
       partitions_def=daily_partitions, automation_condition=follows_checked_deps(), **MART_COMMON)
def mart_daily_revenue(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Per day and store: rentals, payments, revenue and active customers."""
    yield from _run(context, warehouse, "mart_daily_revenue", _day_windows(context))


@asset(deps=[AssetDep(a, partition_mapping=TimeWindowPartitionMapping())
             for a in (fact_rental, fact_payment, bridge_film_category, dim_film)],
       check_specs=warehouse_check_specs("mart_category_monthly"), partitions_def=monthly_partitions,
       automation_condition=follows_checked_days_of_month(), **MART_COMMON)
def mart_category_monthly(context: AssetExecutionContext, warehouse: WarehouseResource):
    """Per month and film category: rentals (once per category of the film) and revenue allocated by
    the bridge weights, so categories sum to total revenue. Each run recomputes its whole months."""
    yield from _run(context, warehouse, "mart_category_monthly", _month_windows(context))


mart_assets = [mart_daily_revenue, mart_category_monthly]
