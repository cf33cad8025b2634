"""Per-day gates and fix-ups: a bad day in a range holds only itself, and a load that changes
other days' facts tells Dagster, so the marts of those days follow by automation."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from dagster import AssetKey, AssetSelection, DagsterEventType, evaluate_automation_conditions

from dvd_platform_tests.crafted import drop, row

DAYS = [date(2023, 1, 10) + timedelta(n) for n in range(5)]
BAD = DAYS[2]


def _rental(rental_id: int, day: date, inventory_id: int = 1) -> list[str]:
    at = f"{day} 10:00:00+00"
    return row("rental", rental_id=rental_id, rental_date=at, inventory_id=inventory_id, customer_id=1,
               return_date=f"{day} 20:00:00+00", staff_id=1, last_update=at)


def _payment(payment_id: int, rental_id: int, day: date, amount: str) -> list[str]:
    return row("payment", payment_id=payment_id, customer_id=1, staff_id=1, rental_id=rental_id, amount=amount,
               payment_date=f"{day} 11:00:00+00")


def _why(result, asset: str, partitions: list[str]) -> str:
    """The condition tree of ``asset``'s evaluation: each node's label and which of ``partitions`` it held."""
    lines = []

    def walk(node, depth: int) -> None:
        held = set(node.true_subset.expensively_compute_partition_keys())
        label = node.condition.get_label() or node.condition.name
        lines.append(f"{'  ' * depth}{label}: {sorted(p for p in partitions if p in held)}")
        for child in node.child_results:
            walk(child, depth + 1)

    for top in result.results:
        if top.key.to_user_string() == asset:
            walk(top, 0)
    return "\n".join(lines)


def _check_evaluations(instance, run_ids: list[str], asset: str, check: str) -> dict[str, bool]:
    """partition -> passed, as the instance recorded the runs' evaluations of one check."""
    out = {}
    for run_id in run_ids:
        for record in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
            e = record.dagster_event.event_specific_data
            if e.asset_key.to_user_string() == asset and e.check_name == check:
                out[e.partition] = e.passed
    return out


def test_a_range_with_one_bad_day_loads_the_other_days(sample_loaded, s3, settings_env, run_range, pg, dagster_instance):
    """Five days, the third with a rental of an inventory item that does not exist: the four good days
    reach the warehouse and the marts with their revenue, the bad day neither, and the instance
    records the failed check for that day alone."""
    drop(s3, settings_env["DVD_LANDING_BUCKET"], {
        day: {"rental": [_rental(810000 + n, day)] + ([_rental(810100, day, inventory_id=999999)] if day == BAD else []),
              "payment": [_payment(810000 + n, 810000 + n, day, f"{n + 1}.25")]}
        for n, day in enumerate(DAYS)})
    summary = run_range(DAYS[0], DAYS[-1])
    assert not summary.ok and summary.blocked == {BAD.isoformat()}, summary.lines()
    assert summary.failed_blocking_checks == ["stg_rental:fk_inventory_id"]
    runs = [summary.run_id] + [run.run_id for run in summary.follow_ups]
    assert _check_evaluations(dagster_instance, runs, "stg_rental", "fk_inventory_id") == {
        day.isoformat(): day != BAD for day in DAYS}
    good = [d for d in DAYS if d != BAD]
    with pg.cursor() as cur:
        cur.execute("SELECT (rental_ts AT TIME ZONE 'UTC')::date FROM dw.fact_rental WHERE rental_id BETWEEN 810000 AND 810100 "
                    "ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == good
        cur.execute("SELECT date, sum(revenue) FROM dw.mart_daily_revenue WHERE date BETWEEN %s AND %s GROUP BY 1 ORDER BY 1",
                    (DAYS[0], DAYS[-1]))
        assert cur.fetchall() == [(d, Decimal(f"{DAYS.index(d) + 1}.25")) for d in good]
        cur.execute("SELECT round(sum(revenue), 2) FROM dw.mart_category_monthly WHERE month = '2023-01-01'")
        assert cur.fetchone()[0] == sum(Decimal(f"{DAYS.index(d) + 1}.25") for d in good)
    fk_runs = _check_evaluations(dagster_instance, runs, "fact_rental", "reconciliation")
    assert fk_runs == {d.isoformat(): True for d in good}  # the bad day never reached the facts


def test_late_rentals_record_fixups_and_the_marts_of_those_days_follow(sample_loaded, s3, settings_env, run_range,
                                                                        pg, dagster_instance, defs):
    """Payments of three days land before their rentals (unknown store); a later day's rental load
    completes them, records materializations of those three fact_payment days with the reason, and
    automation then requests exactly those days' marts, which move the revenue to the real store (the
    month was already redrawn by the command's month run, which comes after its days)."""
    paid = [date(2023, 2, 6), date(2023, 2, 7), date(2023, 2, 8)]
    later = date(2023, 2, 12)
    drop(s3, settings_env["DVD_LANDING_BUCKET"], {
        day: {"payment": [_payment(820000 + n, 820000 + n, day, "3.50")]} for n, day in enumerate(paid)})
    assert run_range(paid[0], paid[-1]).ok

    def revenue_by_store() -> dict:
        with pg.cursor() as cur:
            cur.execute("SELECT date, store_id, sum(revenue) FROM dw.mart_daily_revenue WHERE date = ANY(%s) "
                        "GROUP BY 1, 2 ORDER BY 1, 2", (paid,))
            return {(d, s): r for d, s, r in cur.fetchall()}

    assert revenue_by_store() == {(d, -1): Decimal("3.50") for d in paid}  # the rentals are not loaded yet
    marts = AssetSelection.assets("mart_daily_revenue", "mart_category_monthly")
    cursor = evaluate_automation_conditions(defs=defs, instance=dagster_instance, asset_selection=marts).cursor

    drop(s3, settings_env["DVD_LANDING_BUCKET"], {later: {"rental": [_rental(820000 + n, later) for n in range(3)]}})
    loaded = run_range(later, later)
    assert loaded.ok, loaded.lines()
    fixups = {}
    for record in dagster_instance.all_logs(loaded.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        m = record.dagster_event.event_specific_data.materialization
        if m.asset_key.to_user_string() == "fact_payment" and "reason" in m.metadata:
            fixups[m.partition] = m.metadata["reason"].value
    assert fixups == {d.isoformat(): "late rental completed" for d in paid}
    assert loaded.fixups == {"fact_payment": 3}, loaded.lines()  # counted apart from the run's own loads

    result = evaluate_automation_conditions(defs=defs, instance=dagster_instance, asset_selection=marts, cursor=cursor)
    assert set(result.get_requested_partitions(AssetKey("mart_daily_revenue"))) == {d.isoformat() for d in paid}, \
        _why(result, "mart_daily_revenue", [d.isoformat() for d in paid])
    # February was redrawn by the command's month run, after the fix-ups: nothing left to request.
    assert loaded.materialized["mart_category_monthly"] == 1
    assert not result.get_requested_partitions(AssetKey("mart_category_monthly")), \
        _why(result, "mart_category_monthly", ["2023-02-01"])
    assert run_range(paid[0], paid[-1], "key:mart_daily_revenue").ok  # what the daemon would launch
    after = revenue_by_store()  # the same revenue, now on the inventory item's store
    assert sorted(d for d, _ in after) == paid and all(store != -1 for _, store in after)
    assert set(after.values()) == {Decimal("3.50")}
