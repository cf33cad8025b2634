"""Raw and staged assets on the real stack: counts per day, idempotent snapshots, quarantine, missing files."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter, instance_for_test
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.workspace.context import WorkspaceProcessContext

from dvd_platform.contract.tables import TABLES
from dvd_platform.resources.lake import LakeResource, read_snapshots
from dvd_platform.tags import RANGE_END_TAG, RANGE_START_TAG
from dvd_platform.settings import PROJECT_ROOT
from dvd_platform.transforms.schemas import quarantine_schema, staged_schema
from dvd_platform.transforms.staging import SourceFile, stage_table
from dvd_platform_tests.crafted import drop, line, row
from dvd_platform_tests.sample_truth import text_array

RENTAL_HEADER = "rental_id,rental_date,inventory_id,customer_id,return_date,staff_id,last_update"


@pytest.fixture(scope="session")
def lake(settings_env) -> LakeResource:
    return LakeResource(root=settings_env["DVD_LAKE_ROOT"])


def _per_day(df) -> dict[date, int]:
    return {r["dt"]: r["count"] for r in df.groupBy("dt").count().collect()}


def test_staged_rows_per_day_equal_the_source(sample_loaded, lake, spark, truth):
    first, last, _ = sample_loaded
    days = [first + timedelta(n) for n in range((last - first).days + 1)]
    rental = lake.read_days(spark, "staged", "stg_rental", days, staged_schema("rental"))
    payment = lake.read_days(spark, "staged", "stg_payment", days, staged_schema("payment"))
    assert _per_day(rental) == dict(truth.rentals_per_day)
    assert _per_day(payment) == dict(truth.payments_per_day)
    customer = lake.read_days(spark, "staged", "stg_customer", days, staged_schema("customer"))
    assert _per_day(customer) == {first: len(truth.customers)}
    film = lake.read_days(spark, "staged", "stg_film", [first], staged_schema("film"))
    row = film.where("film_id = 1").collect()[0]
    assert row["special_features"] == text_array(truth.films["1"]["special_features"])
    language = lake.read_days(spark, "staged", "stg_language", [first], staged_schema("language"))
    assert sorted(r["name"] for r in language.collect())[0] == "English"  # char(20) padding trimmed
    quarantined = lake.read_days(spark, "quarantine", "stg_rental", days, quarantine_schema())
    assert quarantined.count() == 0


def test_rematerializing_a_day_gives_the_same_snapshot(sample_loaded, lake, spark, run_range):
    day = date(2022, 5, 25)
    before = sorted(lake.read_days(spark, "staged", "stg_rental", [day], staged_schema("rental")).collect())
    old_version = lake.day_paths("staged", "stg_rental", [day])[day]
    summary = run_range(day, day, "key:raw_rental or key:stg_rental")
    assert summary.ok, summary.lines()
    new_version = lake.day_paths("staged", "stg_rental", [day])[day]
    after = sorted(lake.read_days(spark, "staged", "stg_rental", [day], staged_schema("rental")).collect())
    assert new_version != old_version  # a new snapshot was swapped in ...
    assert after == before and len(after) > 0  # ... with the same rows


def test_a_days_state_reads_one_snapshot_and_at_most_a_week_of_days(sample_loaded, lake, spark):
    """The state of customer as of the sample's last day, as the dimensions and foreign-key checks read it:
    one weekly state snapshot plus at most 7 daily snapshots (not every day since the first), and each
    customer's latest row on it equals the one on the whole staged history."""
    from dvd_platform.resources.lake_state import read_state
    from dvd_platform.transforms.warehouse import latest

    first, last, _ = sample_loaded
    state = read_state(lake, spark, "customer", before=last, upto=last)
    files = state.inputFiles()
    snapshots = {f.split("/_versions/")[1].split("/")[0] for f in files if "/state/stg_customer/" in f}
    days = {f.split("_day=")[1][:10] for f in files if "/staged/stg_customer/" in f}
    assert len(snapshots) == 1 and len(days) <= 7, (len(snapshots), sorted(days))
    assert (last - first).days > 60, "the sample is long enough for the bound to mean something"
    history = lake.read_days(spark, "staged", "stg_customer", [d for d in lake.snapshot_days(
        "staged", "stg_customer") if d <= last], staged_schema("customer"))
    assert sorted(latest(state, "customer_id").collect()) == sorted(latest(history, "customer_id").collect())


LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


@contextmanager
def ui_instance() -> Iterator[tuple[DagsterInstance, WorkspaceProcessContext]]:
    """A persistent instance with the default run queue, and the code location loaded as the webserver
    and the daemon load it. Its run launcher runs a launched run in this process (the session's
    SparkSession), where the default one would start a process."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, create_test_daemon_workspace_context
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(
        module_name="dvd_platform.definitions", attribute="defs", working_directory=str(PROJECT_ROOT)),
        location_name="dvd_platform")
    with instance_for_test(set_dagster_home=False, synchronous_run_launcher=True) as instance, \
            create_test_daemon_workspace_context(InProcessTestWorkspaceLoadTarget(origin), instance) as workspace:
        yield instance, workspace


def test_a_range_write_keeps_each_day_in_one_file(spark, tmp_path):
    """``write_days`` puts each day's rows in one Parquet file, however Spark spread them over its partitions
    (before: a file per partition holding some of the day, 744 files for pagila's 186 days with payments)."""
    lake = LakeResource(root=str(tmp_path))
    days = [date(2022, 9, 1) + timedelta(n) for n in range(4)]  # the last one without rows
    rows = spark.range(0, 300, 1, 4).selectExpr("id", "date_add(DATE'2022-09-01', CAST(id % 3 AS int)) AS dt")
    written = lake.write_days(rows, "staged", "stg_probe", days)
    assert {day: len(list(Path(path).glob("*.parquet"))) for day, path in written.items()} == dict(
        zip(days, [1, 1, 1, 0]))
    back = lake.read_days(spark, "staged", "stg_probe", days, "id long, dt date").collect()
    assert sorted(r["id"] for r in back) == list(range(300))


def test_staged_columns_are_declared_on_the_asset_not_on_each_partition(sample_loaded, defs, dagster_instance):
    """The Columns tab comes from the definition (the contract's columns plus ``dt``), so the sample's range run
    gives each day's materialization its own figures and no copy of the columns (213 copies a table before)."""
    from dagster import TableSchema

    first, last, summary = sample_loaded
    key = AssetKey("stg_payment")
    declared = defs.resolve_asset_graph().get(key).metadata["dagster/column_schema"]
    assert [(c.name, c.type) for c in declared.columns] == [(c.name, c.type) for c in TABLES["payment"].schema] + [
        ("dt", "date")]
    records = [r for r in dagster_instance.fetch_materializations(key, limit=10_000).records
               if r.run_id == summary.run_id]
    assert sorted(r.partition_key for r in records) == [
        (first + timedelta(n)).isoformat() for n in range((last - first).days + 1)]
    for record in records:
        metadata = record.asset_materialization.metadata
        assert {"rows_in", "rows_out", "rows_quarantined"} <= metadata.keys()
        assert not [k for k, v in metadata.items() if isinstance(v.value, TableSchema)], record.partition_key


def test_thirty_day_range_is_one_run_and_one_step(sample_loaded, truth):
    """A 30-day backfill of stg_payment launched as the UI launches it (GraphQL launchPartitionBackfill),
    then one iteration of the backfill daemon: the runs it requests follow the backfill policy the
    instance applies to the asset, and there must be one. Launched as the run queue would, that run
    has one step, which materializes the 30 partitions."""
    from dagster._daemon.backfill import execute_backfill_iteration
    from dagster_graphql.test.utils import execute_dagster_graphql

    # The 30 days up to the sample's last day with payments: pagila's end on 2022-07-27, a month before its
    # calendar does, and a window of header-only days would stage nothing.
    last = truth.days_with_rows(truth.payments_per_day)[-1]
    days = [(last - timedelta(29 - n)).isoformat() for n in range(30)]
    with ui_instance() as (instance, workspace):
        launched = execute_dagster_graphql(workspace.create_request_context(), LAUNCH_BACKFILL, {"backfillParams": {
            "assetSelection": [{"path": ["stg_payment"]}], "partitionNames": days, "fromFailure": False, "tags": []}})
        backfill_id = launched.data["launchPartitionBackfill"]["backfillId"]
        list(execute_backfill_iteration(workspace, logging.getLogger("backfill")))
        runs = instance.get_runs(filters=RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        assert len(runs) == 1, f"the backfill requested {len(runs)} runs"
        (run,) = runs
        assert run.status == DagsterRunStatus.QUEUED
        assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (days[0], days[-1])

        instance.launch_run(run.run_id, workspace.create_request_context())  # what the run queue does
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.SUCCESS
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
        assert [e.step_key for e in events if e.event_type == DagsterEventType.STEP_START] == ["stg_payment"]
        materialized = [e.partition for e in events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION]
        assert sorted(materialized) == days


def test_bad_lines_are_quarantined_with_line_and_reason(stack, s3, settings_env, run_range, lake, spark, dagster_instance):
    day = date(2022, 9, 20)
    def rental(rental_id: int, hour: int, item: int | str, person: int, returned: str | None, updated: str) -> str:
        return line("rental", rental_id=rental_id, rental_date=f"{day} {hour}:00:00+00", inventory_id=item,
                    customer_id=person, return_date=returned, staff_id=person, last_update=updated)

    body = "".join(f"{text}\n" for text in (
        rental(1001, 10, 1, 1, "2022-09-22 10:00:00+00", "2022-09-20 10:00:00+00"),  # line 2: good
        "1002,2022-09-20 11:00:00+00,1,1",  # line 3: too few fields
        rental(1003, 12, "not-a-number", 1, None, "2022-09-20 12:00:00+00"),  # line 4: wrong type
        rental(1001, 10, 1, 1, "2022-09-23 10:00:00+00", "2022-09-20 13:00:00+00"),  # line 5: newer dup
        rental(1004, 14, 2, 2, None, "2022-09-20 14:00:00+00"),  # line 6: good
    ))
    drop(s3, settings_env["DVD_LANDING_BUCKET"], {day: {"rental": body}})
    summary = run_range(day, day, "key:raw_rental or key:stg_rental")
    # The day materializes; 3 of 5 rows quarantined is over the ratio threshold, so the blocking
    # quarantine check fails (ERROR) and would stop the warehouse assets of that day.
    assert summary.materialized == {"raw_rental": 1, "stg_rental": 1}, summary.lines()
    assert summary.checks["stg_rental:quarantine_ratio"] == (False, "ERROR")
    staged = {r["rental_id"]: r for r in lake.read_days(spark, "staged", "stg_rental", [day], staged_schema("rental")).collect()}
    assert set(staged) == {1001, 1004}
    assert staged[1001]["return_date"].day == 23  # the later version of the duplicate won
    quarantine = {r["line"]: r for r in lake.read_days(spark, "quarantine", "stg_rental", [day], quarantine_schema()).collect()}
    assert set(quarantine) == {2, 3, 4}
    assert "superseded by line 5" in quarantine[2]["reason"]
    assert f"expected {len(TABLES['rental'].columns)} fields, found fewer" in quarantine[3]["reason"]
    assert "inventory_id: cannot parse 'not-a-number' as int" in quarantine[4]["reason"]
    assert all(r["source_object"].startswith("s3://") and "rental" in r["source_object"] for r in quarantine.values())
    # The UI shows rows / quarantined / path per partition, and a preview of the staged rows as written.
    record = dagster_instance.fetch_materializations(AssetKey("stg_rental"), limit=1).records[0]
    metadata = record.asset_materialization.metadata
    assert record.partition_key == day.isoformat()
    assert metadata["rows_in"].value == 5 and metadata["rows_out"].value == 2 and metadata["rows_quarantined"].value == 3
    assert "quarantine_path" in metadata and "path" in metadata
    header, _, *rows = metadata["preview"].value.splitlines()
    assert header.split(" | ")[:2] == ["| rental_id", "rental_date"] and header.endswith("| dt |")
    assert sorted(r.split(" | ")[0] for r in rows) == ["| 1001", "| 1004"]


def test_field_counts_are_exact_whatever_the_fields_hold(spark, tmp_path):
    """Fields are counted as Spark's CSV parser splits them, not from its nulls (every empty unquoted field
    is null there), and a long quoted field does not break the count.

    Row 2 ends in an empty field: valid, staged with NULL there. Row 3 has one more field, and empty (a
    trailing comma): "more". Row 4 lacks the last field: "fewer". Row 5 has a quote inside an unquoted
    value, with a comma between its quotes: a character for the parser, so one field more ("more", not a
    parse error of shifted values). Row 6 has a quoted field of 20,000 characters: staged.
    """
    day = date(2022, 9, 20)
    columns = TABLES["rental"].columns
    def rental(rental_id: int, **values) -> str:
        return line("rental", rental_id=rental_id, rental_date=f"{day} 10:00:00+00", inventory_id=1, customer_id=1,
                    staff_id=1, **values)

    good = rental(2001)
    assert good.endswith(",")  # the last column is empty
    full = rental(2002, last_update=f"{day} 11:00:00+00")
    short = ",".join(full.split(",")[:-1])
    inner_quote = full.replace(f"{day} 10:00:00+00", f'{day} 10:00:00+00 "a, b"', 1)
    wide = rental(2006).replace(f"{day} 10:00:00+00", '"' + " " * 20_000 + f'{day} 10:00:00+00"', 1)
    path = tmp_path / "rental.csv"
    path.write_text("\n".join([",".join(columns), good, f"{full},", short, inner_quote, wide]) + "\n")
    result = stage_table(spark, "rental", [SourceFile(f"file://{path}", day, "s3://landing/rental.csv")])
    staged = {r["rental_id"]: r for r in result.staged.collect()}
    reasons = {r["line"]: r["reason"] for r in result.quarantine.collect()}
    result.annotated.unpersist()
    assert set(staged) == {2001, 2006} and staged[2001]["last_update"] is None
    more, fewer = f"expected {len(columns)} fields, found more", f"expected {len(columns)} fields, found fewer"
    assert set(reasons) == {3, 4, 5} and reasons[3] == more and reasons[4] == fewer
    assert reasons[5].startswith(f"{more}; ")  # then the shifted values' parse errors, as for any line


def test_lines_keep_their_day_and_source_whatever_the_staging_dir_is_called(spark, tmp_path):
    """Spark names the files it read by URI, escaping some characters (a space as %20): every line must
    still get its file's day and source object. (Joining on the whole path dropped them all.)"""
    days = (date(2022, 9, 21), date(2022, 9, 22))
    files = []
    for n, day in enumerate(days):
        folder = tmp_path / "staging dir+é" / "rental" / f"dt={day}"
        folder.mkdir(parents=True)
        at = f"{day} 10:00:00+00"
        body = line("rental", rental_id=2100 + n, rental_date=at, inventory_id=1, customer_id=1, staff_id=1)
        (folder / "a1.csv").write_text(",".join(TABLES["rental"].columns) + f"\n{body}\n")
        files.append(SourceFile(f"file://{folder / 'a1.csv'}", day, f"s3://lake/raw/rental/dt={day}/rental-a1.csv"))
    result = stage_table(spark, "rental", files)
    staged = sorted((r["rental_id"], r["dt"]) for r in result.staged.collect())
    lines = sorted((r["dt"], r["source_object"], r["line"]) for r in result.annotated.collect())
    result.annotated.unpersist()
    assert staged == [(2100, days[0]), (2101, days[1])]
    assert lines == [(day, f"s3://lake/raw/rental/dt={day}/rental-a1.csv", 2) for day in days]


def test_lines_without_a_day_fail_the_profile_instead_of_vanishing(spark):
    """The day profile refuses rows whose day could not be told (their file named otherwise), naming the count."""
    from dvd_platform.transforms.staging import day_profile

    annotated = spark.createDataFrame([(1, date(2022, 9, 21), ""), (2, None, ""), (3, None, "bad")],
                                      "rental_id int, dt date, _reason string")
    with pytest.raises(ValueError, match="^2 lines were read from a file Spark names other than its path"):
        day_profile(annotated, ("rental_id",), {})


def test_missing_file_fails_the_raw_asset_naming_the_key(sample_loaded, s3, settings_env, run_range, lake, spark):
    # sample_loaded: the rentals below reference inventory 1, customer 1 and staff 1 of the staged sample.
    good, bad = date(2022, 9, 21), date(2022, 9, 22)
    bucket = settings_env["DVD_LANDING_BUCKET"]
    rentals = {day: [row("rental", rental_id=rental_id, rental_date=f"{day} 10:00:00+00", inventory_id=1, customer_id=1,
                         staff_id=1, last_update=f"{day} 10:00:00+00")] for rental_id, day in ((2001, good), (2002, bad))}
    drop(s3, bucket, {day: {"rental": rows} for day, rows in rentals.items()})
    assert run_range(good, good, "key:raw_rental or key:stg_rental").ok
    before = lake.day_paths("staged", "stg_rental", [good])
    s3.delete_object(Bucket=bucket, Key="landing/rental/dt=2022-09-22/rental.csv")
    summary = run_range(good, bad, "key:raw_rental or key:stg_rental")
    assert not summary.ok
    failure = next(e for e in summary.result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "landing/rental/dt=2022-09-22/rental.csv" in str(failure.event_specific_data.error)
    assert lake.day_paths("staged", "stg_rental", [good]) == before  # the good day is untouched
    staged = lake.read_days(spark, "staged", "stg_rental", [good], staged_schema("rental")).collect()
    assert [r["rental_id"] for r in staged] == [2001]


def test_the_preview_shows_the_first_written_rows_of_the_window(tmp_path):
    """Read back from the snapshots, with no Spark job: an empty day is passed over, a day's files are read
    in turn, at most five rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dvd_platform.io_managers.parquet import NO_ROWS, preview

    empty, full = tmp_path / "dt=2022-03-01", tmp_path / "dt=2022-03-02"
    empty.mkdir()
    full.mkdir()
    pq.write_table(pa.table({"rental_id": [1], "note": ["a|b"]}), full / "part-0.parquet")
    pq.write_table(pa.table({"rental_id": list(range(2, 9)), "note": [None] * 7}), full / "part-1.parquet")
    header, rule, *rows = preview([str(empty), str(full)]).splitlines()
    assert (header, rule) == ("| rental_id | note |", "|---|---|")
    assert rows == ["| 1 | a\\|b |"] + [f"| {n} |  |" for n in range(2, 6)]
    assert preview([str(empty)]) == NO_ROWS


def test_a_read_names_only_the_snapshots_that_hold_rows(spark, tmp_path, capsys):
    """Spark builds a file index over every path of a read, and most daily snapshots of a reference table are
    empty: they are left out of the read (their rows, none, are the same), and a read of empty snapshots only
    is an empty frame of the schema, with no file scan at all. A snapshot directory that is gone (a concurrent
    re-stage removed the version) fails the read instead of reading as a day without rows."""
    schema = quarantine_schema()
    with_rows, *empty = (tmp_path / f"_day=2022-02-0{n}" for n in (1, 2, 3))
    spark.createDataFrame([("s3://lake/raw/x.csv", 2, "bad", "x,y", date(2022, 2, 1))], schema).write.parquet(
        str(with_rows))
    for folder in empty:
        folder.mkdir()
    capsys.readouterr()

    both = read_snapshots(spark, [str(with_rows), *map(str, empty)], schema)
    assert [r["line"] for r in both.collect()] == [2]
    both.explain()  # Spark's own plan text: the scan's file index says how many paths it was given
    assert "InMemoryFileIndex(1 paths)" in capsys.readouterr().out

    none = read_snapshots(spark, list(map(str, empty)), schema)
    assert none.collect() == [] and none.schema == schema
    none.explain()
    plan = capsys.readouterr().out
    assert "LocalTableScan" in plan and "FileScan" not in plan

    with pytest.raises(FileNotFoundError):
        read_snapshots(spark, [str(with_rows), str(tmp_path / "_day=2022-02-04")], schema)
