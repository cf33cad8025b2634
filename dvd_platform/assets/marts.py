"""Marts, computed inside PostgreSQL from the facts; they follow their facts by declarative automation."""

from dagster import AssetExecutionContext, AutomationCondition, MaterializeResult, asset

from dvd_platform.checks.warehouse import mart_check, warehouse_check_specs
from dvd_platform.assets.warehouse import bridge_film_category, dim_film, dim_store, fact_payment, fact_rental
from dvd_platform.partitions import daily_partitions, single_run, window_days
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.warehouse.window import Window

MART_COMMON = dict(
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    group_name="marts",
    kinds={"postgres"},
    owners=["team:analytics"],
    # Update after the facts without a separate job; never on a day whose blocking checks failed.
    automation_condition=AutomationCondition.eager() & AutomationCondition.all_deps_blocking_checks_passed(),
)


def _run(context: AssetExecutionContext, warehouse: WarehouseResource, name: str) -> MaterializeResult:
    days = window_days(context.partition_time_window)
    window = Window(days[0], days[-1])
    result = warehouse.run_sql_load(name, window, context.run.run_id)
    return MaterializeResult(
        metadata={"table": f"dw.{name}", "rows": result.rows_loaded, "load_seconds": round(result.seconds, 3)},
        check_results=[mart_check(warehouse, name, window)],
    )


@asset(deps=[fact_rental, fact_payment, dim_store], check_specs=warehouse_check_specs("mart_daily_revenue"),
       **MART_COMMON)
def mart_daily_revenue(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Per day and store: rentals, payments, revenue and active customers."""
    return _run(context, warehouse, "mart_daily_revenue")


@asset(deps=[fact_rental, fact_payment, bridge_film_category, dim_film],
       check_specs=warehouse_check_specs("mart_category_monthly"), **MART_COMMON)
def mart_category_monthly(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Per month and film category: rentals (once per category of the film) and revenue allocated by
    the bridge weights, so categories sum to total revenue. Recomputes every month the window touches."""
    return _run(context, warehouse, "mart_category_monthly")


mart_assets = [mart_daily_revenue, mart_category_monthly]
