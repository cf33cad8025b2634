"""The revenue chart report: a real PNG, drawn from dw.mart_daily_revenue, shown in the asset's metadata."""

from __future__ import annotations

import base64
import io
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
from matplotlib import image as mpimg

from dvd_platform.assets.reports import render_revenue_chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STORE_1_BLUE = np.array([0x1F, 0x77, 0xB4]) / 255  # matplotlib's first line colour (C0)


def _line_pixels(png: bytes) -> int:
    """How many pixels are (almost) the first series' colour: zero when no line was drawn."""
    pixels = mpimg.imread(io.BytesIO(png), format="png")[:, :, :3]
    return int((np.abs(pixels - STORE_1_BLUE).max(axis=2) < 0.05).sum())


def test_chart_draws_one_line_per_store_and_nothing_without_rows():
    rows = [(date(2022, 2, d), store, Decimal(10 * d + store)) for d in range(1, 15) for store in (1, 2)]
    drawn = render_revenue_chart(rows)
    empty = render_revenue_chart([])
    assert drawn.startswith(PNG_SIGNATURE) and empty.startswith(PNG_SIGNATURE)
    assert _line_pixels(drawn) > 200, "the store 1 line is missing from the chart"
    assert _line_pixels(empty) == 0
    # Two stores, two colours: the second one (C1, orange) is there too.
    pixels = mpimg.imread(io.BytesIO(drawn), format="png")[:, :, :3]
    orange = np.array([0xFF, 0x7F, 0x0E]) / 255
    assert (np.abs(pixels - orange).max(axis=2) < 0.05).sum() > 200


def test_unknown_store_does_not_take_store_1s_colour():
    """Payments whose rental is not loaded yet sit on store -1: drawn grey and dashed, never in the blue
    that is store 1's line (otherwise store 1 looks missing whenever such payments exist)."""
    unknown = [(date(2022, 2, d), -1, Decimal(10 * d)) for d in range(1, 15)]
    store_1 = [(date(2022, 2, d), 1, Decimal(5 * d)) for d in range(1, 15)]
    assert _line_pixels(render_revenue_chart(unknown)) == 0
    assert _line_pixels(render_revenue_chart(unknown + store_1)) > 200
    pixels = mpimg.imread(io.BytesIO(render_revenue_chart(unknown)), format="png")[:, :, :3]
    grey = np.array([0x80, 0x80, 0x80]) / 255
    assert (np.abs(pixels - grey).max(axis=2) < 0.02).sum() > 100



def test_revenue_chart_asset_reads_the_mart_and_shows_the_png(sample_loaded, pg, defs, dagster_instance, truth):
    from dagster import AssetKey, materialize

    from dvd_platform.assets.reports import revenue_chart

    result = materialize([revenue_chart], resources=defs.resources, instance=dagster_instance)
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert event.asset_key == AssetKey("revenue_chart")

    with pg.cursor() as cur:
        cur.execute("SELECT date, sum(revenue) FROM dw.mart_daily_revenue GROUP BY date")
        mart = dict(cur.fetchall())
    assert set(truth.days_with_rows(truth.revenue_per_day)) <= mart.keys()  # every sample day with revenue
    days, first, last, revenue = len(mart), min(mart), max(mart), sum(mart.values())
    assert metadata["days"].value == days
    assert (metadata["first_day"].value, metadata["last_day"].value) == (str(first), str(last))
    assert round(metadata["total_revenue"].value, 2) == float(revenue)

    # The image shown in the UI is the file saved under the lake root, and it has the mart's lines.
    embedded = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", metadata["chart"].value)
    assert embedded, metadata["chart"].value[:80]
    png = base64.b64decode(embedded.group(1))
    assert png == Path(metadata["path"].value).read_bytes()
    assert png.startswith(PNG_SIGNATURE) and _line_pixels(png) > 200
