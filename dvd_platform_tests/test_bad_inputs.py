"""The bad-input corpus (issue 9): every case gives a clear error naming its object, or a
quarantine with line number and reason; none breaks another partition; none changes the warehouse.

The corpus is data: ``RAW_CASES`` are drops the raw assets must refuse (one day each, all in
one run, one error naming every key), ``STAGE_CASES`` are drops that pass verification and
whose bad lines staging must quarantine or whose bad values a blocking check must stop (one
day each, all in one full-graph run). Days are in 2023-06, which no other test uses; ids are
70xxxx, outside pagila's. The oversized line gets its own run: it fails the staging step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Callable

import pytest
from dagster import DagsterEventType

from dvd_platform.io_managers.raw_refs import recorded
from dvd_platform.resources.lake import LakeResource
from dvd_platform.contract.drops import manifest_key, object_key
from dvd_platform.contract.tables import TABLES
from dvd_platform.transforms.schemas import quarantine_schema, staged_schema
from dvd_platform.transforms.staging import NOT_UTF8, UNBALANCED_QUOTES
from dvd_platform_tests.crafted import drop_bytes, line
from dvd_platform_tests.test_warehouse import checksums, query


def day(n: int) -> date:
    return date(2023, 6, n)


def csv(table: str, *lines: str | bytes, header: str | None = None) -> bytes:
    """A file body: ``table``'s contract header (or ``header``), then ``lines``, newline-terminated."""
    parts = [header if header is not None else ",".join(TABLES[table].columns), *lines]
    return b"".join((p if isinstance(p, bytes) else p.encode()) + b"\n" for p in parts)


def rental(rental_id: int | str, on: date, at: str = "10:00:00", last_update: str | None = None) -> str:
    ts = f"{on} {at}+00"  # inventory 1, customer 1, staff 1: in every sample
    return line("rental", rental_id=rental_id, rental_date=ts, inventory_id=1, customer_id=1, staff_id=1,
                last_update=last_update or ts)


def payment(payment_id: int | str, on: date, amount: str = "2.99", rental_id: int = 700001) -> str:
    return line("payment", payment_id=payment_id, customer_id=1, staff_id=1, rental_id=rental_id, amount=amount,
                payment_date=f"{on} 11:00:00+00")


def address(address_id: int, text: str, on: date) -> str:
    return f"{address_id},{text},,Alberta,300,12345,555,{on} 09:00:00+00"


RENTAL_HEADER = ",".join(TABLES["rental"].columns)
RENTAL_FIELDS = len(TABLES["rental"].columns)


# ============================================================================ raw refusals


@dataclass(frozen=True)
class RawCase:
    name: str
    day: date
    body: bytes  # the rental object
    reason: str  # what the error says after the key
    key: str | None = None  # where the object and its manifest entry are put (default: the layout's key)
    edit: Callable[[dict], None] | None = None  # a lie in the manifest


def _lie(field_name: str, value) -> Callable[[dict], None]:
    def edit(manifest: dict) -> None:
        entry = next(o for o in manifest["objects"] if o["table"] == "rental")
        entry[field_name] = value(entry[field_name]) if callable(value) else value
    return edit


RAW_CASES = [
    RawCase("empty file", day(1), b"", "is empty (not even a header row)"),
    RawCase("wrong delimiter", day(2), csv("rental", rental(700101, day(2)).replace(",", ";"),
                                           header=RENTAL_HEADER.replace(",", ";")), "differs from the rental contract"),
    RawCase("missing column", day(3), csv("rental", "700102,2023-06-03 10:00:00+00,1,1,1,2023-06-03 10:00:00+00",
                                          header=RENTAL_HEADER.replace(",return_date", "")),
            "differs from the rental contract"),
    RawCase("extra column", day(4), csv("rental", rental(700103, day(4)) + ",x", header=RENTAL_HEADER + ",note"),
            "differs from the rental contract"),
    RawCase("reordered columns", day(5), csv("rental", rental(700104, day(5)),
                                             header=RENTAL_HEADER.replace("rental_id,rental_date", "rental_date,rental_id")),
            "differs from the rental contract"),
    RawCase("non-UTF-8 header", day(6), csv("rental", rental(700105, day(6)), header=RENTAL_HEADER.encode()
                                            .replace(b"rental_id", b"rental\xff_id")),
            "differs from the rental contract"),
    RawCase("manifest lies about the size", day(7), csv("rental", rental(700106, day(7))), "the manifest says",
            edit=_lie("bytes", lambda n: n + 7)),
    RawCase("manifest lies about the md5", day(8), csv("rental", rental(700107, day(8))),
            "the manifest says 00000000000000000000000000000000", edit=_lie("md5", "0" * 32)),
    RawCase("key outside the layout", day(9), csv("rental", rental(700108, day(9))), "outside the landing layout",
            key="landing/rental/dt=2023-06-09/../../payment/dt=2023-06-09/payment.csv"),
]


def test_raw_refuses_each_bad_drop_naming_its_key(stack, s3, settings_env, run_range):
    bucket, lake_bucket = settings_env["DVD_LANDING_BUCKET"], settings_env["DVD_LAKE_BUCKET"]
    for case in RAW_CASES:
        drop_bytes(s3, bucket, case.day, {"rental": case.body}, edit=case.edit,
                   keys={"rental": case.key} if case.key else None)
    first, last = RAW_CASES[0].day, RAW_CASES[-1].day
    summary = run_range(first, last, "key:raw_rental")
    assert not summary.ok and summary.failed_steps == ["raw_drops"]
    failure = next(e for e in summary.result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    message = str(failure.event_specific_data.error)  # with its cause: the IncompleteDropError
    assert f"IncompleteDropError: {len(RAW_CASES)} objects refused" in message
    lines = message.splitlines()
    for case in RAW_CASES:  # one line per case, naming the object and what is wrong with it
        key = case.key or object_key("rental", case.day)
        assert any(f"s3://{bucket}/{key}" in line and case.reason in line for line in lines), (case.name, message)
    # Nothing of those days was frozen or recorded, so nothing downstream can read them.
    for case in RAW_CASES:
        frozen = s3.list_objects_v2(Bucket=lake_bucket, Prefix=f"raw/rental/dt={case.day}/").get("KeyCount", 0)
        assert frozen == 0, case.name
        assert case.day.isoformat() not in recorded(s3, lake_bucket, "rental", case.day, case.day), case.name
    assert not summary.materialized


def test_a_manifest_that_is_not_json_is_refused_naming_it(stack, s3, settings_env, run_range):
    on, bucket = day(22), settings_env["DVD_LANDING_BUCKET"]
    drop_bytes(s3, bucket, on, {})
    s3.put_object(Bucket=bucket, Key=manifest_key(on), Body=b'{"format": "dvd-drop/1", "objects": [')  # cut short
    summary = run_range(on, on, "key:raw_rental")
    assert summary.failed_steps == ["raw_drops"]
    failure = next(e for e in summary.result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert f"manifest s3://{bucket}/{manifest_key(on)} is not valid JSON" in str(failure.event_specific_data.error)


# ============================================================================ staging: quarantine and blocking checks


@dataclass(frozen=True)
class StageCase:
    name: str
    day: date
    bodies: dict[str, bytes]  # table -> file body
    quarantined: dict[str, dict[int, str]] = field(default_factory=dict)  # table -> line -> reason (substring)
    staged: dict[str, set[int]] = field(default_factory=dict)  # table -> primary keys staged that day
    failing_check: str | None = None  # the blocking check that stops this day's warehouse load


GOOD = day(10)  # loaded to the warehouse before the corpus run
STAGE_CASES = [
    StageCase("header only (no rows that day)", day(11), {}, staged={"rental": set(), "payment": set()}),
    StageCase("non-UTF-8 bytes in a field", day(12),
              {"address": csv("address", address(700201, "Calle Jos\xe9 1", day(12)).encode("latin-1"),
                              address(700202, "Calle Mayor 2", day(12)))},
              quarantined={"address": {2: NOT_UTF8}}, staged={"address": {700202}}),
    StageCase("embedded newline and quotes", day(13),
              {"address": csv("address", address(700203, '"1 Main St\nApt 2"', day(13)),
                              address(700204, '"12 ""Quoted"" Lane, Unit 3"', day(13)))},
              quarantined={"address": {2: UNBALANCED_QUOTES, 3: UNBALANCED_QUOTES}}, staged={"address": {700204}}),
    StageCase("null keys", day(14),
              {"rental": csv("rental", rental("", day(14)), rental(700205, day(14))),
               "payment": csv("payment", payment("", day(14)))},
              quarantined={"rental": {2: "missing primary key (rental_id)"},
                           "payment": {2: "missing primary key (payment_id)"}},
              staged={"rental": {700205}}),
    StageCase("duplicate keys", day(15),
              {"rental": csv("rental", rental(700206, day(15)), rental(700206, day(15), last_update="2023-06-15 12:00:00+00"),
                             rental(700206, day(15), last_update="2023-06-15 12:00:00+00"))},
              quarantined={"rental": {2: "superseded by line 4", 3: "superseded by line 4"}}, staged={"rental": {700206}}),
    StageCase("future dates", day(16), {"rental": csv("rental", rental(700207, date(2099, 6, 16)))},
              staged={"rental": {700207}}, failing_check="stg_rental:event_time_in_partition"),
    StageCase("negative amounts", day(17), {"payment": csv("payment", payment(700208, day(17), amount="-5.00"))},
              staged={"payment": {700208}}, failing_check="stg_payment:amount_not_negative"),
    StageCase("wrong delimiter / field count in data lines", day(18),
              {"rental": csv("rental", rental(700209, day(18)).replace(",", ";"), rental(700210, day(18)) + ",extra",
                             rental(700211, day(18)))},
              quarantined={"rental": {2: f"expected {RENTAL_FIELDS} fields, found fewer",
                                       3: f"expected {RENTAL_FIELDS} fields, found more"}},
              staged={"rental": {700211}}),
    StageCase("a good day in the same run", day(19),
              {"rental": csv("rental", rental(700212, day(19))), "payment": csv("payment", payment(700212, day(19), rental_id=700212))},
              staged={"rental": {700212}, "payment": {700212}}),
]


@pytest.fixture(scope="module")
def lake(settings_env) -> LakeResource:
    return LakeResource(root=settings_env["DVD_LAKE_ROOT"])


CORPUS_TABLES = ("rental", "payment", "address")
FACTS = "key:fact_rental or key:fact_payment"


def test_bad_lines_and_values_are_quarantined_or_blocked_and_the_warehouse_is_unchanged(
        sample_loaded, s3, settings_env, run_range, lake, spark, pg):
    bucket, lake_bucket = settings_env["DVD_LANDING_BUCKET"], settings_env["DVD_LAKE_BUCKET"]
    drop_bytes(s3, bucket, GOOD, {"rental": csv("rental", rental(700001, GOOD)),
                                  "payment": csv("payment", payment(700001, GOOD))})
    good = run_range(GOOD, GOOD, f"key:raw_rental or key:raw_payment or key:stg_rental or key:stg_payment or {FACTS}")
    assert good.ok, good.lines()
    assert query(pg, "SELECT rental_id FROM dw.fact_rental WHERE rental_id >= 700000") == [(700001,)]
    before = checksums(pg)

    for case in STAGE_CASES:
        drop_bytes(s3, bucket, case.day, case.bodies)
    first, last = STAGE_CASES[0].day, STAGE_CASES[-1].day
    days = [case.day for case in STAGE_CASES]
    # Rentals and addresses, then payments: stg_payment runs after stg_rental (its foreign-key check reads the
    # staged rentals), so in one run a failed stg_rental check would skip it and hide the payment cases.
    # Each run holds only its bad days: the command runs the dependents again over the other days
    # (runner.run_plan). So each selection holds what its facts read (fact_payment reads stg_payment).
    lines_run = run_range(first, last, "key:raw_rental or key:raw_address or key:stg_rental or key:stg_address "
                                       "or key:dim_customer or key:fact_rental")
    # (Not fact_rental: without stg_rental in the run nothing would hold it back from the staged rentals.)
    payments_run = run_range(first, last, "key:raw_payment or key:stg_payment or key:fact_payment")

    # Nothing crashed: every day was verified, frozen and staged; only blocking checks failed their steps.
    for summary, tables in ((lines_run, ("rental", "address")), (payments_run, ("payment",))):
        for table in tables:
            assert summary.materialized[f"raw_{table}"] == summary.materialized[f"stg_{table}"] == len(days)
    assert sorted(lines_run.failed_steps) == ["stg_address", "stg_rental"], lines_run.lines()
    assert payments_run.failed_steps == ["stg_payment"], payments_run.lines()
    # Each case is in the staged rows or the quarantine of its own day, with its line and reason.
    staged, quarantined = {}, {}
    for table in CORPUS_TABLES:
        pk = TABLES[table].primary_key[0]
        for row in lake.read_days(spark, "staged", f"stg_{table}", days, staged_schema(table)).collect():
            staged.setdefault((table, row["dt"]), set()).add(row[pk])
        for row in lake.read_days(spark, "quarantine", f"stg_{table}", days, quarantine_schema()).collect():
            quarantined.setdefault((table, row["dt"]), {})[row["line"]] = row
    for case in STAGE_CASES:
        for table, expected in case.staged.items():
            assert staged.get((table, case.day), set()) == expected, (case.name, table)
        for table in CORPUS_TABLES:
            got, expected = quarantined.get((table, case.day), {}), case.quarantined.get(table, {})
            assert set(got) == set(expected), (case.name, table, [(r["line"], r["reason"]) for r in got.values()])
            for line, reason in expected.items():
                assert reason in got[line]["reason"], (case.name, got[line]["reason"])
                assert got[line]["source_object"].startswith(f"s3://{lake_bucket}/raw/{table}/dt={case.day}/")
    quoted = lake.read_days(spark, "staged", "stg_address", [day(13)], staged_schema("address")).collect()
    assert quoted[0]["address"] == '12 "Quoted" Lane, Unit 3'  # doubled quotes and commas inside quotes are fine
    assert quarantined[("address", day(12))][2]["raw_line"].startswith("700201,Calle Jos\ufffd 1,")  # readable

    # Bad values that parse are stopped by their blocking checks (and so are the quarantine ratios).
    checks = {**lines_run.checks, **payments_run.checks}
    for case in STAGE_CASES:
        if case.failing_check:
            assert checks[case.failing_check] == (False, "ERROR"), case.name
            run = lines_run if case.failing_check.startswith(("stg_rental", "stg_address")) else payments_run
            assert case.day.isoformat() in run.blocked, (case.name, run.lines())
    assert {"stg_rental:quarantine_ratio", "stg_address:quarantine_ratio", "stg_payment:quarantine_ratio"} <= {
        name for name, (passed, severity) in checks.items() if not passed and severity == "ERROR"}
    # ... so nothing of those days reached the warehouse. The good day of the same runs (day 19) did:
    # its rental and payment are the only new fact rows; every other table is exactly as before.
    good_day = STAGE_CASES[-1].day
    assert good_day.isoformat() not in lines_run.blocked | payments_run.blocked
    assert query(pg, "SELECT rental_id FROM dw.fact_rental WHERE rental_id >= 700000 ORDER BY 1") == [(700001,), (700212,)]
    assert query(pg, "SELECT payment_id FROM dw.fact_payment WHERE payment_id >= 700000 ORDER BY 1") == [(700001,), (700212,)]
    after = checksums(pg)
    for fact in ("fact_rental", "fact_payment"):
        assert after.pop(fact)[0] == before.pop(fact)[0] + 1, fact
    assert after == before


def test_an_oversized_line_is_refused_naming_object_and_line(stack, s3, settings_env, run_range, lake, defs):
    """A line over the raw IO manager's ``max_line_bytes`` (1 MiB) fails the day with its key and line number.

    This stands for the 2 GB line: the guard counts bytes while the download streams, so
    it stops after ``max_line_bytes`` whatever the line's size, and Spark never sees it.
    """
    on = day(21)
    limit = defs.resources["raw_io_manager"].max_line_bytes
    body = csv("rental", rental(700301, on), b"700302," + b"x" * limit, rental(700303, on))
    drop_bytes(s3, settings_env["DVD_LANDING_BUCKET"], on, {"rental": body})
    summary = run_range(on, on, "key:raw_rental or key:stg_rental")
    assert summary.materialized == {"raw_rental": 1}  # the object itself is as its manifest says
    assert summary.failed_steps == ["stg_rental"]
    failure = next(e for e in summary.result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    message = str(failure.event_specific_data.error)
    assert f"/raw/rental/dt={on}/rental-" in message and f"line 3 is longer than {limit} bytes" in message, message
    assert lake.day_paths("staged", "stg_rental", [on]) == {}
