"""Reports: pictures of the marts, for people who would rather look than read tables.

``revenue_chart`` draws revenue per day per store from ``dw.mart_daily_revenue`` as a
PNG and shows it in the asset's metadata (an embedded image, which is how the Dagster
UI renders pictures), so the latest chart is one click away on the asset's page.

It is not partitioned: a chart of one day is two bars, while the point of the picture
is the shape over all loaded days. So it reads the whole mart each time (a few hundred
rows per year of data) and is materialized on demand, not by automation: an eager
condition would redraw it after every daily mart partition.
"""

import base64
import io
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from dvd_platform.assets.marts import mart_daily_revenue
from dvd_platform.partitions import single_run
from dvd_platform.resources.lake import LakeResource
from dvd_platform.resources.warehouse import WarehouseResource

REPORTS_ZONE = "reports"
CHART_FILE = "revenue_chart.png"

#: Rows of the mart: (day, store_id, revenue). Store -1 holds payments whose rental is not loaded yet.
RevenueRows = list[tuple[date, int, Decimal]]


def read_daily_revenue(warehouse: WarehouseResource) -> RevenueRows:
    """Revenue per day and store, oldest day first.

    Migrations are applied first (once per process), so on a warehouse nothing was loaded
    into yet the chart says "no rows" instead of the run failing on a missing table.
    """
    warehouse.migrate()
    return warehouse.query("SELECT date, store_id, revenue FROM dw.mart_daily_revenue ORDER BY date, store_id")


def render_revenue_chart(rows: RevenueRows) -> bytes:
    """A PNG line chart with one line per store (the Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    series: dict[int, tuple[list[date], list[float]]] = defaultdict(lambda: ([], []))
    for day, store_id, revenue in rows:
        days, values = series[store_id]
        days.append(day)
        values.append(float(revenue))
    # A Figure that no pyplot state manager knows about: nothing to close, nothing leaks between runs.
    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.subplots()
    stores = sorted(s for s in series if s != -1)
    for store_id in stores + ([-1] if -1 in series else []):
        days, values = series[store_id]
        marker = "." if len(days) < 60 else None
        if store_id == -1:  # grey and dashed: it must not take a store's colour (C0 is always store 1's)
            ax.plot(days, values, marker=marker, color="grey", linestyle="--", label="unknown store (rental not loaded)")
        else:
            ax.plot(days, values, marker=marker, color=f"C{stores.index(store_id)}", label=f"store {store_id}")
    ax.set_title("Revenue per day and store (dw.mart_daily_revenue)")
    ax.set_ylabel("revenue")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(loc="upper left")
    else:
        ax.text(0.5, 0.5, "no rows in dw.mart_daily_revenue yet", ha="center", va="center", transform=ax.transAxes)
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


@asset(
    deps=[mart_daily_revenue],
    # Unpartitioned: drawn once per run, over every loaded day. The single-run policy states that, so
    # a range run may include the chart (`dg launch --partition-range` requires it of every asset).
    backfill_policy=single_run,
    group_name="reports",
    kinds={"postgres", "python"},
    owners=["team:analytics"],
)
def revenue_chart(context: AssetExecutionContext, warehouse: WarehouseResource, lake: LakeResource) -> MaterializeResult:
    """Revenue per day per store over every loaded day, as a PNG chart shown in this asset's metadata
    (and saved under the lake root, reports/revenue_chart.png)."""
    rows = read_daily_revenue(warehouse)
    png = render_revenue_chart(rows)
    path = Path(lake.root) / REPORTS_ZONE / CHART_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(png)
    tmp.replace(path)  # readers of the file see the old chart or the new one
    days = sorted({row[0] for row in rows})
    context.log.info(f"revenue chart of {len(days)} days written to {path}")
    return MaterializeResult(
        metadata={
            "chart": MetadataValue.md(f"![revenue per day and store](data:image/png;base64,{base64.b64encode(png).decode()})"),
            "path": MetadataValue.path(str(path)),
            "days": len(days),
            "first_day": str(days[0]) if days else "",
            "last_day": str(days[-1]) if days else "",
            "total_revenue": float(sum((row[2] for row in rows), Decimal(0))),
        }
    )


report_assets = [revenue_chart]
