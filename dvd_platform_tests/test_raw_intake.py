"""Raw intake skips only what the lake proves: a re-run of frozen days reads no landing object and
rewrites no reference; a day dropped again with other bytes is verified and frozen again; a header-only
object the landing listing proves is never read; the staging steps read the references the raw step
kept locally.

Days are in 2024-05, which no other test uses; ids are 71xxxx, outside pagila's.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterEventType

from dvd_platform.contract.drops import object_key
from dvd_platform.contract.tables import TABLES
from dvd_platform.io_managers.raw_refs import month_key
from dvd_platform.resources.lake import LakeResource
from dvd_platform_tests.crafted import drop_bytes, line

DAYS = (date(2024, 5, 1), date(2024, 5, 2))
SELECTION = "key:raw_rental or key:raw_store"
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _rental_file(on: date, rental_id: int) -> bytes:
    header = ",".join(TABLES["rental"].columns)
    at = f"{on} 10:00:00+00"
    rental = line("rental", rental_id=rental_id, rental_date=at, inventory_id=1, customer_id=1, staff_id=1, last_update=at)
    return f"{header}\n{rental}\n".encode()


def _lake_state(s3, bucket: str, tables: tuple[str, ...], on: date) -> dict[str, tuple[str, object]]:
    """Key -> (ETag, LastModified) of the raw zone for ``tables`` on ``on`` (its frozen objects and the month
    of references): a rewrite changes LastModified."""
    state = {}
    for table in tables:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"raw/{table}/dt={on}/").get("Contents", [])
        listed += s3.list_objects_v2(Bucket=bucket, Prefix=month_key(table, on)).get("Contents", [])
        state.update({item["Key"]: (item["ETag"], item["LastModified"]) for item in listed})
    return state


def _ref(s3, bucket: str, table: str, on: date) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key=month_key(table, on))["Body"].read())[on.isoformat()]


def test_a_rerun_of_frozen_days_reads_no_landing_object_and_rewrites_no_reference(stack, s3, settings_env,
                                                                                   run_range):
    landing, lake = settings_env["DVD_LANDING_BUCKET"], settings_env["DVD_LAKE_BUCKET"]
    for n, on in enumerate(DAYS):
        drop_bytes(s3, landing, on, {"rental": _rental_file(on, 710001 + n)})  # store: header-only
    first = run_range(DAYS[0], DAYS[-1], SELECTION)
    assert first.ok, first.lines()
    before = {on: _lake_state(s3, lake, ("rental", "store"), on) for on in DAYS}
    assert all(len(state) == 3 for state in before.values())  # rental: object + month; store: month only

    # Only the manifests stay in landing: a run that read any object of these days would fail.
    for on in DAYS:
        for table in ("rental", "store"):
            s3.delete_object(Bucket=landing, Key=object_key(table, on))
    again = run_range(DAYS[0], DAYS[-1], SELECTION)
    assert again.ok, again.lines()
    assert again.materialized == {"raw_rental": 2, "raw_store": 2}
    assert {on: _lake_state(s3, lake, ("rental", "store"), on) for on in DAYS} == before


def test_a_day_dropped_again_with_other_bytes_is_verified_and_frozen_again(stack, s3, settings_env, run_range):
    landing, lake = settings_env["DVD_LANDING_BUCKET"], settings_env["DVD_LAKE_BUCKET"]
    on = date(2024, 5, 3)
    drop_bytes(s3, landing, on, {"rental": _rental_file(on, 710101)})
    assert run_range(on, on, SELECTION).ok
    old = _ref(s3, lake, "rental", on)

    store_row = ",".join(TABLES["store"].columns) + f"\n9,1,1,{on} 09:00:00+00\n"
    drop_bytes(s3, landing, on, {"rental": _rental_file(on, 710102), "store": store_row.encode()})
    redropped = run_range(on, on, SELECTION)
    assert redropped.ok, redropped.lines()
    new_rental, new_store = _ref(s3, lake, "rental", on), _ref(s3, lake, "store", on)
    assert new_rental["md5"] != old["md5"]
    assert new_rental["key"] == f"raw/rental/dt={on}/rental-{new_rental['md5']}.csv"
    assert new_store["key"] is not None and new_store["rows"] == 1  # was header-only, now frozen

    # An md5 the lake does not hold proves nothing: the object is read again, and a lie is refused
    # although the lake holds frozen objects of that day.
    drop_bytes(s3, landing, on, {"rental": _rental_file(on, 710103)},
               edit=lambda m: next(o for o in m["objects"] if o["table"] == "rental").update(md5="0" * 32))
    lying = run_range(on, on, SELECTION)
    assert lying.failed_steps == ["raw_drops"]
    error = str(next(e for e in lying.result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
                .event_specific_data.error)
    assert f"s3://{landing}/{object_key('rental', on)}: md5 " in error and "the manifest says 000000" in error


def test_a_header_only_object_the_listing_proves_is_never_read(stack, s3, settings_env, run_range):
    """The endpoint's own request log (moto's) shows what the run asked for: the day's rental object is
    read (a GET of its first bytes), its header-only store object, whose listed size and ETag are the
    contract header's, is not; its reference still records it as header-only."""
    landing, lake = settings_env["DVD_LANDING_BUCKET"], settings_env["DVD_LAKE_BUCKET"]
    on = date(2024, 5, 4)
    drop_bytes(s3, landing, on, {"rental": _rental_file(on, 710201)})  # store: header-only
    log = stack[0].state_dir / "s3.log"
    start = log.stat().st_size
    assert run_range(on, on, SELECTION).ok
    with open(log, "rb") as requests_file:
        requests_file.seek(start)
        requests = ANSI_COLOUR.sub("", requests_file.read().decode(errors="replace"))  # werkzeug colours a 206
    assert f'"GET /{landing}/{object_key("rental", on)} ' in requests  # reads are logged: the next line can fail
    assert f'"GET /{landing}/{object_key("store", on)} ' not in requests
    header = (",".join(TABLES["store"].columns) + "\n").encode()
    assert _ref(s3, lake, "store", on) == {"day": on.isoformat(), "bucket": lake, "key": None, "rows": 0,
                                           "bytes": len(header), "md5": hashlib.md5(header).hexdigest()}


def _requests_since(log: Path, start: int) -> str:
    with open(log, "rb") as requests_file:
        requests_file.seek(start)
        return ANSI_COLOUR.sub("", requests_file.read().decode(errors="replace"))


def test_staging_reads_the_references_the_raw_step_kept_and_fetches_what_it_cannot_use(stack, s3, settings_env, run_range):
    """The raw step keeps each month of references it writes in the staging dir, under its md5: its staging
    step finds it by the listed ETag, with no request for it. Without usable copies (damaged, or another
    machine's staging dir), the references are fetched, and the same rows are staged."""
    landing, lake = settings_env["DVD_LANDING_BUCKET"], settings_env["DVD_LAKE_BUCKET"]
    on = date(2024, 5, 6)
    drop_bytes(s3, landing, on, {"rental": _rental_file(on, 710301)})
    log, ref = stack[0].state_dir / "s3.log", f"/{lake}/{month_key('rental', on)}"
    staged = LakeResource(root=settings_env["DVD_LAKE_ROOT"])
    start = log.stat().st_size
    # Its foreign keys resolve to nothing on this stack (blocking checks fail): the day is staged all the same.
    assert run_range(on, on, "key:raw_rental or key:stg_rental").materialized == {"raw_rental": 1, "stg_rental": 1}
    requests = _requests_since(log, start)
    assert f'"PUT {ref} ' in requests  # requests are logged: the next line can fail
    assert f'"GET {ref} ' not in requests.split(f'"PUT {ref} ')[-1]  # the raw step reads the month before it writes
    assert staged.rows_per_day("staged", "stg_rental", [on]) == {on: 1}

    copies = list((Path(settings_env["DVD_STAGING_DIR"]) / "_refs").glob("*.json"))
    assert copies
    for copy in copies:  # damaged (a crash mid-write on another file system); none at all goes the same way
        copy.write_bytes(b"{")
    start = log.stat().st_size
    assert run_range(on, on, "key:stg_rental").materialized == {"stg_rental": 1}
    assert f'"GET {ref} ' in _requests_since(log, start)
    assert staged.rows_per_day("staged", "stg_rental", [on]) == {on: 1}


def test_a_range_records_its_references_in_one_object_per_table_and_month(stack, s3, settings_env, run_range):
    """Four days over two months: two writes per table (one per month, found by the endpoint's log), no
    object per day, and each month records its days; the staging step reads them back."""
    landing, lake = settings_env["DVD_LANDING_BUCKET"], settings_env["DVD_LAKE_BUCKET"]
    days = [date(2024, 5, 30), date(2024, 5, 31), date(2024, 6, 1), date(2024, 6, 2)]
    for n, on in enumerate(days):
        drop_bytes(s3, landing, on, {"rental": _rental_file(on, 710401 + n)})
    log = stack[0].state_dir / "s3.log"
    start = log.stat().st_size
    # Its foreign keys resolve to nothing on this stack (blocking checks fail): the days are staged all the same.
    assert run_range(days[0], days[-1], SELECTION + " or key:stg_rental").materialized == {
        "raw_rental": 4, "raw_store": 4, "stg_rental": 4}
    puts = re.findall(r'"PUT /[^ ]*/raw/(\w+)/_refs/(month=[\d-]+)\.json ', _requests_since(log, start))
    assert sorted(puts) == [("rental", "month=2024-05"), ("rental", "month=2024-06"),
                            ("store", "month=2024-05"), ("store", "month=2024-06")]
    for on in days:
        assert [item["Key"] for item in s3.list_objects_v2(Bucket=lake, Prefix=f"raw/store/dt={on}/")
                .get("Contents", [])] == []  # header-only: nothing per day
        assert _ref(s3, lake, "store", on)["rows"] == 0 and _ref(s3, lake, "rental", on)["rows"] == 1
    assert LakeResource(root=settings_env["DVD_LAKE_ROOT"]).rows_per_day("staged", "stg_rental", days) == \
        dict.fromkeys(days, 1)


class _RacingClient:
    """The real S3 client, except that before this writer's first PUT of a month another writer records
    ``rival`` in it: the interleaving of two runs that read the same month and write it back."""

    def __init__(self, client, rival):
        self.client, self.rival, self.puts = client, rival, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def put_object(self, **kwargs):
        if not self.puts:
            self.rival()
        self.puts.append({k: v for k, v in kwargs.items() if k.startswith("If")})
        return self.client.put_object(**kwargs)


def test_runs_recording_the_same_month_at_once_lose_no_day(stack, s3, settings_env):
    """Each writer merges its days into the month it read and writes it only if nobody changed it since
    (If-Match on its ETag, enforced by the endpoint); a writer that lost the race reads the month again."""
    from dvd_platform.io_managers.raw_refs import RawObject, fetch, record

    lake = settings_env["DVD_LAKE_BUCKET"]
    key = month_key("rental", "2024-07-01")

    def ref(day: str) -> RawObject:
        return RawObject(day, lake, None, 10, "0" * 32, 0)

    def nothing_kept(key, etag):
        return None

    record(s3, lake, "rental", [ref("2024-07-01")], nothing_kept, lambda body: None)
    racing = _RacingClient(s3, lambda: record(s3, lake, "rental", [ref("2024-07-02")], nothing_kept,
                                              lambda body: None))
    assert record(racing, lake, "rental", [ref("2024-07-03")], nothing_kept, lambda body: None) == 1
    assert sorted(json.loads(fetch(s3, lake, key)[0])) == ["2024-07-01", "2024-07-02", "2024-07-03"]
    assert len(racing.puts) == 2 and "IfMatch" in racing.puts[0]  # refused once, written on the second try


def test_a_month_deleted_before_the_write_is_written_anew(stack, s3, settings_env):
    """An If-Match on a month that is gone is refused as NoSuchKey: the writer reads it again (none) and
    creates it with its own days."""
    from dvd_platform.io_managers.raw_refs import RawObject, fetch, record

    lake = settings_env["DVD_LAKE_BUCKET"]
    key = month_key("rental", "2024-08-01")
    first = RawObject("2024-08-01", lake, None, 10, "0" * 32, 0)
    second = RawObject("2024-08-02", lake, None, 10, "0" * 32, 0)
    record(s3, lake, "rental", [first], lambda key, etag: None, lambda body: None)
    racing = _RacingClient(s3, lambda: s3.delete_object(Bucket=lake, Key=key))
    assert record(racing, lake, "rental", [second], lambda key, etag: None, lambda body: None) == 1
    assert sorted(json.loads(fetch(s3, lake, key)[0])) == ["2024-08-02"]
    assert [list(condition) for condition in racing.puts] == [["IfMatch"], ["IfNoneMatch"]]


def test_many_writers_of_one_month_at_once_lose_no_day(stack, s3, settings_env):
    """Sixteen writers record their days in one month at the same time against the stack's S3 endpoint:
    each write is conditional on the month it read, so a writer that lost a race merges again (with
    unconditional writes, most days are lost here)."""
    from concurrent.futures import ThreadPoolExecutor

    from dvd_platform.io_managers.raw_refs import RawObject, fetch, record

    lake = settings_env["DVD_LAKE_BUCKET"]
    days = [[f"2024-09-{writer + 1:02d}T{n}" for n in range(3)] for writer in range(16)]

    def write(writer_days: list[str]) -> None:
        for day in writer_days:  # one write per day: many chances to interleave
            record(s3, lake, "rental", [RawObject(day[:10], lake, None, 10, day[-1] * 32, 0)],
                   lambda key, etag: None, lambda body: None)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, days))
    recorded_md5 = {day: raw["md5"][0] for day, raw in json.loads(fetch(s3, lake, month_key("rental", "2024-09-01"))[0]).items()}
    assert recorded_md5 == {f"2024-09-{writer + 1:02d}": "2" for writer in range(16)}


def test_a_damaged_month_fails_staging_naming_it_and_the_raw_step_writes_it_again(stack, s3, settings_env,
                                                                               run_range):
    landing, lake = settings_env["DVD_LANDING_BUCKET"], settings_env["DVD_LAKE_BUCKET"]
    on = date(2024, 10, 1)
    drop_bytes(s3, landing, on, {"rental": _rental_file(on, 710501)})
    assert run_range(on, on, "key:raw_rental").ok
    s3.put_object(Bucket=lake, Key=month_key("rental", on), Body=b"not json")
    staged = run_range(on, on, "key:stg_rental")
    assert staged.failed_steps == ["stg_rental"]
    error = str(next(e for e in staged.result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
                .event_specific_data.error)
    assert f"s3://{lake}/{month_key('rental', on)} is not a month of raw references" in error
    again = run_range(on, on, "key:raw_rental")
    assert again.ok, again.lines()
    assert _ref(s3, lake, "rental", on)["rows"] == 1
    assert run_range(on, on, "key:stg_rental").materialized == {"stg_rental": 1}


def test_a_day_without_a_reference_fails_the_load_naming_the_partition_and_key(stack, settings_env):
    from dagster import AssetKey, build_input_context

    from dvd_platform.io_managers.raw_s3 import RawS3IOManager
    from dvd_platform.partitions import daily_partitions
    from dvd_platform.resources.s3 import S3Buckets

    lake = settings_env["DVD_LAKE_BUCKET"]
    manager = RawS3IOManager(s3=S3Buckets(endpoint_url=settings_env["DVD_S3_ENDPOINT_URL"], lake_bucket=lake),
                             staging_dir=settings_env["DVD_STAGING_DIR"])
    context = build_input_context(asset_key=AssetKey("raw_rental"), partition_key="2024-05-09",
                                  asset_partitions_def=daily_partitions)
    with pytest.raises(FileNotFoundError, match=re.escape(
            f"raw_rental partition 2024-05-09 is not materialized "
            f"(s3://{lake}/raw/rental/_refs/month=2024-05.json does not record it)")):
        manager.load_input(context)


def test_one_s3_client_per_configuration_and_credentials(monkeypatch):
    """A run's resources, the raw IO manager's nested copy and each sensor tick build S3Buckets anew: they share
    one client while the configuration and the AWS variables are the same, and get another when they differ."""
    from dvd_platform.resources.s3 import S3Buckets

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    first = S3Buckets(endpoint_url="http://127.0.0.1:9", landing_bucket="in").get_client()
    assert S3Buckets(endpoint_url="http://127.0.0.1:9", landing_bucket="in").get_client() is first
    assert S3Buckets(endpoint_url="http://127.0.0.1:9", landing_bucket="other").get_client() is first  # not a client setting
    assert S3Buckets(endpoint_url="http://127.0.0.1:8", landing_bucket="in").get_client() is not first
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second")
    rotated = S3Buckets(endpoint_url="http://127.0.0.1:9", landing_bucket="in").get_client()
    assert rotated is not first
    assert rotated._request_signer._credentials.access_key == "second"
