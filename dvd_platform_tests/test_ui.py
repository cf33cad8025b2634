"""The Dagster UI in a real (headless) browser: what a newcomer clicks, done by Playwright.

`dagster dev` is started on the session's stack (PostgreSQL, S3, the Parquet lake) with the
session sample (pagila or generated) already loaded by the `sample_loaded` fixture, so stg_rental's upstream days
exist. The test then clicks through the README's "First steps in the UI": the asset graph,
stg_rental, Materialize one day, the run until it succeeds, the asset's page (row counts of
the partition, check results, and one check's result for that day from its per-partition
view: checks are partitioned by day), a 3-day backfill from the partitions dialog until it
completes, and, while the backfill daemon gets to it, the revenue chart report as a picture on
its asset page. Screenshots of each step land in test-artifacts/ui/ (kept after the run, gitignored).

Playwright drives the system Chromium (Debian's `chromium`, installed by
scripts/install-system-deps.sh); it never downloads a browser of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from dvd_platform.checks.staged import staged_check_specs
from dvd_platform.settings import PROJECT_ROOT
from dvd_platform.dev.stack.procs import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui"
RUN_TIMEOUT_MS = 300_000  # a run is a process of its own (imports, definitions): slow on a busy 2-core machine

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no browser: {CHROMIUM} is missing (scripts/install-system-deps.sh installs Debian's chromium "
    "when run as root with apt-get)",
)


def _graphql(base_url: str, query: str) -> dict:
    request = urllib.request.Request(f"{base_url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())["data"]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_dagster_dev(proc: subprocess.Popen) -> None:
    """SIGTERM to dagster dev alone (it stops its webserver, daemon and code server: ~10 s here,
    half the time of signalling the whole group at once); SIGKILL whatever of its group is left."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 15
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(proc.pid):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # ended between the check and the kill
            pass
    proc.wait()


@pytest.fixture(scope="module")
def dagster_ui(sample_loaded, settings_env, state_root: Path) -> Iterator[str]:
    """`dagster dev` on the session's stack, with a fresh instance; yields its base URL.

    The landing sensor is stopped first: it would otherwise queue a run for all of the sample's
    seeded days, and this test is about what a person launches.
    """
    home = state_root / "ui_dagster_home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")  # nux off: no pop-up over the page
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    subprocess.run([sys.executable, "-m", "dagster", "sensor", "stop", "-w", workspace, "landing_sensor"],
                   cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=180)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = home / "dagster-dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port), "-w", workspace],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so teardown ends everything it started
            # dagster dev ignores SIGTERM when SIGINT is ignored (as in a background job): reset it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"dagster dev exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            try:
                nodes = _graphql(base_url, "{ assetNodes { assetKey { path } } }")["assetNodes"]
                if any(node["assetKey"]["path"] == ["stg_rental"] for node in nodes):
                    break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError, KeyError, TypeError):
                pass
            assert time.monotonic() < deadline, f"the UI did not list stg_rental in 180 s:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        yield base_url
    finally:
        _stop_dagster_dev(proc)


@pytest.fixture(scope="module")
def page(dagster_ui: str):
    """A headless Chromium page on the UI (1400x900, the size of the screenshots)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=dagster_ui, viewport={"width": 1400, "height": 900})
            context.set_default_timeout(60_000)
            # Assertions too (Playwright's expect waits 5 s by default): beside the other xdist worker the
            # UI can take longer to draw (a fresh-clone run of f295793 missed a group button by that).
            from playwright.sync_api import expect

            expect.set_options(timeout=60_000)
            yield context.new_page()
        finally:
            browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), animations="disabled")  # no half-faded dialogs


def _open_launch_dialog(page):
    """Graph filtered to stg_rental > Materialize…; returns the partitions dialog."""
    page.goto("/asset-groups")
    page.locator(".CodeMirror").filter(has_text="Search and filter assets").click()
    page.keyboard.type("key:stg_rental")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    # This instance is fresh: stg_rental's upstream days were materialized in the session's
    # other instance (sample_loaded), so the UI asks whether to go on. Their data is in the lake.
    dialog.get_by_text("have not been materialized yet").wait_for()
    dialog.get_by_role("button", name="Confirm").click()
    dialog.get_by_text("Launch runs to materialize stg_rental").wait_for()
    # The dialog starts on the last 90 days; pagila's days are in 2022.
    dialog.get_by_text("Show all partitions").click()
    return dialog


def _select_partitions(dialog, selection: str) -> None:
    box = dialog.get_by_placeholder(re.compile(r"^ex: "))
    box.fill(selection)
    box.press("Enter")


def _metadata_value(page, label: str, within=None) -> str:
    """The value cell of one metadata row (the table on an asset partition's page, or `within` a
    part of the page such as a check partition's detail pane)."""
    from playwright.sync_api import expect

    row = (within or page).locator("tr").filter(has=page.get_by_text(label, exact=True))
    expect(row).to_have_count(1)
    return row.locator("td").nth(1).inner_text().strip()


def _follow_launched_run(page, screenshot: str) -> str:
    """From the "Launched run" toast to the run's page, until the run ends; asserts it succeeded."""
    from playwright.sync_api import expect

    run_id = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$")).inner_text().split()[-1]
    page.get_by_role("link", name="View", exact=True).click()  # the toast's link to the run
    expect(page).to_have_url(re.compile(f"/runs/{run_id}"))
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(status).to_be_visible(timeout=RUN_TIMEOUT_MS)
    _shot(page, screenshot)
    assert status.inner_text() == "Success", f"run {run_id} ended {status.inner_text()} (see {screenshot}.png)"
    return run_id


def test_materialize_a_day_backfill_three_and_see_the_revenue_chart_in_the_browser(page, truth):
    """The README's first steps 1 and 3 to 6, in that order, but for the backfill's end: step 6 runs while the
    backfill of step 5 waits for Dagster's backfill daemon, as a user would go on meanwhile."""
    # The sample's first day with rentals (pagila's 2022-02-14; the generated sample has rentals every day),
    # then the three days after it.
    one_day = truth.days_with_rows(truth.rentals_per_day)[0]
    first, last = one_day + timedelta(1), one_day + timedelta(3)
    _the_asset_graph(page)
    _materialize_one_day(page, one_day)
    _its_row_counts_and_checks(page, one_day, truth.rentals_per_day[one_day])
    backfill_id = _launch_a_backfill(page, first, last)
    _revenue_chart(page)
    _the_backfill_completes(page, backfill_id, first, last, truth.rentals_per_day)


def _the_asset_graph(page) -> None:
    """1. The asset graph: stg_rental with everything upstream and downstream of it, groups expanded."""
    from playwright.sync_api import expect

    page.goto("/asset-groups~%2Bkey%3Astg_rental%2B/")
    for group in ("landing", "raw", "staging", "warehouse", "marts", "reports"):
        expect(page.get_by_role("button", name=f"asset_group {group} {group}")).to_be_visible()
    page.get_by_role("button", name="settings", exact=True).click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    for asset in ("landing_drops", "raw_rental", "stg_rental", "fact_rental", "mart_daily_revenue", "revenue_chart"):
        expect(page.get_by_text(asset, exact=True).last).to_be_visible()
    _shot(page, "01-asset-graph")


def _materialize_one_day(page, one_day: date) -> None:
    """The README's step 3: stg_rental, one day, Materialize; the run, until it succeeds."""
    from playwright.sync_api import expect

    dialog = _open_launch_dialog(page)
    _select_partitions(dialog, one_day.isoformat())
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    _shot(page, "02-launch-one-day")
    dialog.get_by_role("button", name="Launch 1 run").click()

    _follow_launched_run(page, "03-run")
    expect(page.get_by_text(f"partition: {one_day}")).to_be_visible()


def _its_row_counts_and_checks(page, one_day: date, rentals: int) -> None:
    """4. The asset's page for that day: row counts, then check results, and one check's result that day."""
    from playwright.sync_api import expect

    page.goto(f"/assets/stg_rental?view=partitions&partition={one_day}")
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    rows_out = _metadata_value(page, "rows_out")
    assert int(rows_out.replace(",", "")) == rentals
    assert _metadata_value(page, "rows_quarantined") == "0"
    _shot(page, "04-partition-metadata")

    page.goto("/assets/stg_rental?view=checks")
    specs = staged_check_specs("rental")
    assert len(specs) == 10
    for spec in specs:
        # Each check in the list: its name (a title attribute) and, beside it, its latest result.
        result = page.locator(f'span:has(> div[title="{spec.name}"]) > span').first
        # Blocking (ERROR) checks must pass; a WARN check may flag a quirk of the data (pagila
        # has rentals never returned), but it must have run.
        expect(result).to_have_text("Succeeded" if spec.blocking else re.compile(r"^(Succeeded|Failed)$"))
    _shot(page, "05-checks")

    # The checks are partitioned by day: one check's results per partition. Its row in the list >
    # tab Partitions > filter to the day of step 2 > click it: the detail pane of that day.
    check = "fk_inventory_id"
    page.locator(f'div[title="{check}"]').first.click()
    expect(page).to_have_url(re.compile(f"checkDetail={check}"))
    # The check's own tabs (the asset page above has a "Partitions" tab too).
    check_tabs = page.get_by_role("tablist").filter(has=page.get_by_role("tab", name="Execution history"))
    check_tabs.get_by_role("tab", name="Partitions").click()
    page.get_by_placeholder("Filter by partition…").fill(one_day.isoformat())
    expect(page.get_by_text("1 Partitions Selected", exact=True)).to_be_visible()
    page.locator(f'div[data-tooltip="{one_day}"]').click()
    # The pane: the partition key as its heading, the status tag, the latest execution, the run,
    # the target materialization, then the evaluation's metadata (the innermost div holding all).
    detail = (page.locator("div").filter(has=page.get_by_text("Latest execution", exact=True))
              .filter(has=page.get_by_text("Target materialization", exact=True))
              .filter(has=page.get_by_text("Metadata", exact=True)).last)
    expect(detail.locator(f'span:has(> div[title="{one_day}"])')).to_be_visible()
    expect(detail.get_by_text(re.compile(r"^View all historical executions \(\d+\)$"))).to_be_visible()
    _shot(page, "05b-check-partition")
    status = detail.get_by_text(re.compile(r"^(Passed|Failed|Execution failed|Skipped|Running)$")).first
    assert status.inner_text() == "Passed", f"{check} on {one_day}: {status.inner_text()} (see 05b-check-partition.png)"
    assert _metadata_value(page, "offending_rows", within=detail) == "0"


def _launch_a_backfill(page, first: date, last: date) -> str:
    """5. A 3-day backfill from the partitions dialog; returns its id. Dagster's backfill daemon looks for
    backfills every 30 s (a constant of Dagster's, not a setting): to launch its run, and again to mark it done."""
    from playwright.sync_api import expect

    dialog = _open_launch_dialog(page)
    _select_partitions(dialog, f"[{first}...{last}]")
    expect(dialog.get_by_text("3 partitions", exact=True)).to_be_visible()
    expect(dialog.get_by_text("Backfills all partitions in a single run.")).to_be_visible()
    dialog.get_by_role("button", name="Launch backfill").click()
    backfill_id = page.get_by_text(re.compile(r"^Created backfill [a-z]+$")).inner_text().split()[-1]
    page.get_by_role("link", name="View", exact=True).click()
    expect(page).to_have_url(re.compile(f"/runs/b/{backfill_id}"))
    expect(page.get_by_text(f"{first}...{last}")).to_be_visible()
    return backfill_id


def _the_backfill_completes(page, backfill_id: str, first: date, last: date, rentals_per_day: dict) -> None:
    """5, continued: back to the backfill page until it completes; every day of it is materialized."""
    from playwright.sync_api import expect

    page.goto(f"/runs/b/{backfill_id}")
    status = page.locator("div:has(> div:text-is('Status')) > div:nth-child(2)")
    expect(status).to_have_text(re.compile(r"^(Succeeded|Failed|Canceled|Completed.*)$"), timeout=RUN_TIMEOUT_MS)
    _shot(page, "06-backfill")
    assert status.inner_text() == "Succeeded", f"backfill {backfill_id}: {status.inner_text()} (see 06-backfill.png)"

    # Every day of the backfill is materialized, with the source's row count.
    for n in range((last - first).days + 1):
        day = first + timedelta(n)
        page.goto(f"/assets/stg_rental?view=partitions&partition={day}")
        expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
        assert int(_metadata_value(page, "rows_out").replace(",", "")) == rentals_per_day[day]


def _revenue_chart(page) -> None:
    """6. The report asset, materialized by a click, shows its PNG in the asset's metadata."""
    from playwright.sync_api import expect

    page.goto("/assets/revenue_chart")
    page.get_by_role("button", name="materialization Materialize", exact=True).click()
    dialog = page.get_by_role("dialog")  # the marts were materialized in the session's other instance
    dialog.get_by_text("have not been materialized yet").wait_for()
    dialog.get_by_role("button", name="Confirm").click()
    _follow_launched_run(page, "07-revenue-chart-run")

    page.goto("/assets/revenue_chart")
    # Markdown metadata opens in a dialog from its row of the metadata table.
    page.locator("tr").filter(has=page.get_by_text("chart", exact=True)).get_by_text("[Show Markdown]").click()
    chart = page.get_by_role("dialog").get_by_role("img", name="revenue per day and store")
    expect(chart).to_be_visible()
    size = chart.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size[0] > 500 and size[1] > 200, size  # the PNG decoded in the browser: a real picture, not a broken icon
    _shot(page, "08-revenue-chart")
