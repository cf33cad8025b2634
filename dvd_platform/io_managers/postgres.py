"""The warehouse IO manager: dimension and fact outputs land in PostgreSQL.

An asset returns a ``WarehouseLoad`` (its Spark DataFrame, or None for no
rows, and quarantine count); the IO manager stages it with COPY and applies the asset's load SQL
for exactly the run's partition window (``asset_partitions_time_window``, so a
range backfill is one load), in one transaction, with an audit row in
``dw_audit.load_log``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dagster import ConfigurableIOManager, InputContext, OutputContext

from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.warehouse.loader import LoadSpec
from dvd_platform.warehouse.locks import WRITES_FACT_PAYMENT
from dvd_platform.warehouse.window import Window

__all__ = ["LOAD_SPECS", "LoadSpec", "PostgresWarehouseIOManager", "WarehouseLoad"]


@dataclass
class WarehouseLoad:
    df: object  # a Spark DataFrame with the spec's stage columns; None: no rows (the window's rows are removed)
    rows_quarantined: int | None = None
    inputs: str | None = None  # a type-1 load's input fingerprint, recorded in dw_audit.load_log
    skip: bool = False  # the inputs are those of the last successful load: log it, change nothing
    # the most rows the load can stage (the facts' staged rows, the dimensions' bounds; from footers): a small
    # load skips the executors
    expected_rows: int | None = None


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    """'a int, b numeric(4,2)' -> (('a', 'int'), ('b', 'numeric(4,2)')): commas inside parentheses stay."""
    parts = re.split(r",\s*(?![^()]*\))", spec)
    return tuple((name, kind) for name, kind in (p.strip().split(" ", 1) for p in parts))


SCD2_TAIL = "valid_from timestamptz, version_day date"
# Every load that writes dw.fact_payment declares WRITES_FACT_PAYMENT (the dimensions re-bind its keys,
# the rentals complete its late payments): a month swap of it must not overlap them (warehouse/locks.py).
LOAD_SPECS: dict[str, LoadSpec] = {
    "dim_customer": LoadSpec(_cols(
        "customer_key bigint, customer_id int, first_name text, last_name text, email text, address text, "
        "district text, city text, country text, postal_code text, phone text, store_id int, active boolean, "
        f"create_date date, {SCD2_TAIL}"), locks=(WRITES_FACT_PAYMENT,)),
    "dim_film": LoadSpec(_cols(
        "film_key bigint, film_id int, title text, description text, release_year int, language text, "
        "categories text[], rating text, length int, rental_duration int, rental_rate numeric(4,2), "
        f"replacement_cost numeric(5,2), special_features text[], {SCD2_TAIL}"), locks=(WRITES_FACT_PAYMENT,)),
    "bridge_film_category": LoadSpec(_cols("film_id int, category text")),
    "dim_store": LoadSpec(_cols(
        "store_key bigint, store_id int, manager_staff_id int, manager_name text, address text, city text, country text"),
        locks=(WRITES_FACT_PAYMENT,)),
    "dim_staff": LoadSpec(_cols(
        "staff_key bigint, staff_id int, first_name text, last_name text, email text, store_id int, active boolean, "
        "username text"), locks=(WRITES_FACT_PAYMENT,)),
    "fact_rental": LoadSpec(_cols(
        "rental_id int, rental_ts timestamptz, return_ts timestamptz, inventory_id int, customer_id int, staff_id int, "
        "film_id int, store_id int"), partition_parent="dw.fact_rental", time_column="rental_ts",
        locks=(WRITES_FACT_PAYMENT,)),
    "fact_payment": LoadSpec(_cols(
        "payment_id int, payment_ts timestamptz, customer_id int, staff_id int, rental_id int, amount numeric(7,2)"),
        partition_parent="dw.fact_payment", time_column="payment_ts", swap_whole_months=True,
        locks=(WRITES_FACT_PAYMENT,)),
}


class PostgresWarehouseIOManager(ConfigurableIOManager):
    warehouse: WarehouseResource

    def handle_output(self, context: OutputContext, obj: WarehouseLoad) -> None:
        asset = context.asset_key.path[-1]
        spec = LOAD_SPECS[asset]
        window = Window.of(context.asset_partitions_time_window)
        if obj.skip:
            self.warehouse.record_skip(asset, window, context.run_id, obj.inputs)
            context.add_output_metadata({"table": f"dw.{asset}", "skipped": "inputs unchanged since its last load"})
            return
        result = self.warehouse.load(asset, spec, obj.df, window, context.run_id, obj.rows_quarantined, obj.inputs,
                                     obj.expected_rows)
        context.add_output_metadata({
            "table": f"dw.{asset}",
            "rows_staged": result.rows_staged,
            "rows_in_window" if spec.time_column else "rows_loaded": result.rows_loaded,
            "load_seconds": round(result.seconds, 3),
            "transaction_attempts": result.attempts,
        })

    def load_input(self, context: InputContext):
        raise NotImplementedError(
            f"{context.asset_key.to_user_string()} lives in PostgreSQL: read it with SQL through the "
            "`warehouse` resource (declare it in `deps`, not as an input)"
        )
