"""The landing sensor and the daily schedule, evaluated daemon-less against the real S3 endpoint."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

import pytest
from dagster import AssetMaterialization, DagsterInstance, RunRequest, SkipReason, build_schedule_context, build_sensor_context

from dvd_platform.resources.s3 import S3Buckets
from dvd_platform.schedules import daily_catch_up
from dvd_platform.sensors import landing_sensor, manifest_day
from dvd_platform_tests.crafted import drop, row


@pytest.fixture
def sensor_bucket(s3, settings_env):
    """A landing bucket of the test's own, so only its drops are listed."""
    name = f"sensor-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    resource = S3Buckets(endpoint_url=settings_env["DVD_S3_ENDPOINT_URL"], landing_bucket=name,
                         lake_bucket=settings_env["DVD_LAKE_BUCKET"])
    return name, resource


def _rental(rental_id: int, ts: str) -> list[str]:
    return row("rental", rental_id=rental_id, rental_date=ts, inventory_id=1, customer_id=1, staff_id=1, last_update=ts)


def _tick(resource: S3Buckets, cursor: str | None):
    context = build_sensor_context(cursor=cursor, resources={"s3": resource})
    result = landing_sensor(context)
    return result.run_requests or [], result.cursor, result.skip_reason


def _ranges(requests: list[RunRequest]) -> list[tuple[str, str]]:
    """(first day, last day) of each request: a range run's tags, or a single day twice."""
    return sorted((r.tags.get("dagster/asset_partition_range_start") or r.partition_key,
                   r.tags.get("dagster/asset_partition_range_end") or r.partition_key) for r in requests)


def test_three_new_days_one_range_run_then_none_then_a_redrop(sensor_bucket, s3):
    """Consecutive new days are one single-run backfill: a run's fixed cost is paid once, not per day."""
    bucket, resource = sensor_bucket
    days = [date(2022, 11, 1), date(2022, 11, 2), date(2022, 11, 3)]
    drop(s3, bucket, {d: {"rental": [_rental(700000 + i, f"{d} 10:00:00+00")]} for i, d in enumerate(days)})
    requests, cursor, _ = _tick(resource, None)
    assert _ranges(requests) == [("2022-11-01", "2022-11-03")]
    assert requests[0].partition_key is None  # a range run, not a single day's
    again, cursor2, skip = _tick(resource, cursor)
    assert again == [] and skip is not None  # a re-list never re-runs a day
    # Identical bytes uploaded again for one day of the range: at most that day runs again (its own
    # run key is new to Dagster, which dedupes by run key), and a re-run is idempotent.
    drop(s3, bucket, {days[1]: {"rental": [_rental(700001, f"{days[1]} 10:00:00+00")]}})
    same, cursor3, _ = _tick(resource, cursor2)
    assert [r.partition_key for r in same] in ([], [days[1].isoformat()])
    # A corrected re-drop of day 1 (new content, new ETag) runs again, that day alone.
    drop(s3, bucket, {days[0]: {"rental": [_rental(700000, f"{days[0]} 11:00:00+00")]}})
    redrop, _, _ = _tick(resource, cursor3)
    assert [r.partition_key for r in redrop] == [days[0].isoformat()]
    assert redrop[0].run_key not in {r.run_key for r in requests}


def test_days_arriving_out_of_order_are_all_caught(sensor_bucket, s3):
    bucket, resource = sensor_bucket
    drop(s3, bucket, {date(2022, 11, 10): {}})
    requests, cursor, _ = _tick(resource, None)
    assert [r.partition_key for r in requests] == ["2022-11-10"]
    seen = []
    for day in (date(2022, 11, 12), date(2022, 11, 5), date(2022, 11, 11)):  # newest, oldest, middle
        drop(s3, bucket, {day: {}})
        requests, cursor, _ = _tick(resource, cursor)
        seen += [r.partition_key for r in requests]
    assert seen == ["2022-11-12", "2022-11-05", "2022-11-11"]


def test_manifest_day_parses_only_manifests():
    assert manifest_day("landing/_manifests/dt=2022-02-14/manifest.json") == "2022-02-14"
    assert manifest_day("landing/rental/dt=2022-02-14/rental.csv") is None


def test_schedule_skips_a_loaded_day_and_runs_a_missing_one(sensor_bucket, s3, tmp_path):
    bucket, resource = sensor_bucket
    dagster_instance = DagsterInstance.local_temp(str(tmp_path))  # schedules need an instance with a ref
    loaded, missing, absent = date(2022, 11, 20), date(2022, 11, 21), date(2022, 11, 22)
    drop(s3, bucket, {loaded: {}, missing: {}})
    dagster_instance.report_runless_asset_event(AssetMaterialization(asset_key="fact_payment", partition=loaded.isoformat()))

    def evaluate(day: date):
        when = datetime(day.year, day.month, day.day + 1, 7, tzinfo=timezone.utc)
        context = build_schedule_context(instance=dagster_instance, scheduled_execution_time=when, resources={"s3": resource})
        return daily_catch_up(context)

    assert isinstance(evaluate(loaded), SkipReason)
    request = evaluate(missing)
    assert isinstance(request, RunRequest) and request.partition_key == missing.isoformat()
    skip = evaluate(absent)
    assert isinstance(skip, SkipReason) and "no complete drop" in skip.skip_message


def test_a_bulk_drop_becomes_one_range_run_per_stretch(sensor_bucket, s3):
    """A first seed of many days is one single-run backfill per stretch of consecutive days;
    a day with no neighbour is a run of its own."""
    bucket, resource = sensor_bucket
    days = [date(2022, 12, d) for d in range(1, 11)] + [date(2022, 12, 20), date(2022, 12, 22), date(2022, 12, 23)]
    drop(s3, bucket, {d: {} for d in days})
    requests, cursor, _ = _tick(resource, None)
    assert _ranges(requests) == [("2022-12-01", "2022-12-10"), ("2022-12-20", "2022-12-20"),
                                 ("2022-12-22", "2022-12-23")]
    assert sum(1 for r in requests if r.partition_key is None) == 2  # the stretches are range runs
    assert _tick(resource, cursor)[0] == []


def test_a_failed_run_lands_in_the_audit_log(run_range, dagster_instance, settings_env, pg_warehouse):
    """A run that fails before any load (here: a day with no drop) still leaves a failure row."""
    from dagster import DagsterEventType, build_run_status_sensor_context

    from dvd_platform.sensors import audit_failed_runs

    day = date(2023, 3, 1)  # nothing was ever dropped for it
    summary = run_range(day, day, "key:raw_rental")
    assert not summary.ok
    run = dagster_instance.get_run_by_id(summary.result.run_id)
    failure = next(e for e in summary.result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    context = build_run_status_sensor_context(
        sensor_name="audit_failed_runs", dagster_event=failure, dagster_instance=dagster_instance, dagster_run=run,
        resources={"warehouse": pg_warehouse},
    ).for_run_failure()
    audit_failed_runs(context)
    audit_failed_runs(context)  # a second evaluation does not duplicate the row
    conn = pg_warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT asset, partition_start, partition_end, status FROM dw_audit.load_log WHERE run_id = %s",
                        (run.run_id,))
            assert cur.fetchall() == [("raw_drops", day, day, "failure")]
    finally:
        conn.close()


@pytest.fixture
def pg_warehouse(settings_env):
    from dvd_platform.resources.warehouse import WarehouseResource

    warehouse = WarehouseResource(dsn=settings_env["DVD_PG_DSN"])
    warehouse.migrate()
    return warehouse
