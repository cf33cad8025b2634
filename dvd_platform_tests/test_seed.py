"""Sample drops: the session sample (pagila or generated) lands day by day with complete manifests; re-seeding is byte-identical."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from dvd_platform.contract.drops import SeedError, manifest_key, object_key
from dvd_platform.contract.tables import TABLES
from dvd_platform.dev.seed.sources import FolderSource
from dvd_platform.dev.seed.upload import seed
from dvd_platform_tests.crafted import line


def _source_counts_per_day(path, column: str) -> Counter:
    """Rows per UTC day computed straight from a source CSV (independently of the seeder's parser)."""
    counts: Counter = Counter()
    with open(path, newline="") as stream:
        for row in csv.DictReader(stream):
            text = row[column]
            local = datetime.strptime(text[:19], "%Y-%m-%d %H:%M:%S")
            sign, hours = text[-3], int(text[-2:])
            offset = timedelta(hours=hours) * (1 if sign == "+" else -1)
            counts[(local - offset).date()] += 1
    return counts


def _manifest(s3, bucket: str, day: date) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key=manifest_key(day))["Body"].read())


def test_sample_lands_with_exact_counts_per_day(sample_landing, sample_dir, s3, settings_env, truth):
    source, result = sample_landing
    bucket = settings_env["DVD_LANDING_BUCKET"]
    first, last = source.day_range()
    days = [first + timedelta(n) for n in range((last - first).days + 1)]
    assert result.days == days
    expected = {
        "rental": _source_counts_per_day(sample_dir / "rental.csv", "rental_date"),
        "payment": _source_counts_per_day(sample_dir / "payment.csv", "payment_date"),
    }
    assert sum(expected["rental"].values()) == result.rows["rental"] == truth.rentals > 0
    assert sum(expected["payment"].values()) == result.rows["payment"] == truth.payments > 0
    non_empty = Counter()
    # The bucket's listing gives each object's size and ETag: one request per 1,000 objects, not one each.
    listed = {o["Key"]: o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
              for o in page.get("Contents", [])}
    for day in days:
        manifest = _manifest(s3, bucket, day)
        assert manifest["day"] == day.isoformat()
        assert {o["table"] for o in manifest["objects"]} == set(TABLES)  # complete: every table every day
        for obj in manifest["objects"]:
            stored = listed[obj["key"]]
            assert stored["Size"] == obj["bytes"] and stored["ETag"].strip('"') == obj["md5"], obj["key"]
            if obj["table"] in expected:
                body = s3.get_object(Bucket=bucket, Key=obj["key"])["Body"].read().decode()
                rows = list(csv.reader(io.StringIO(body)))
                assert rows[0] == list(TABLES[obj["table"]].columns)
                assert len(rows) - 1 == obj["rows"] == expected[obj["table"]].get(day, 0), (obj["key"], day)
                non_empty[obj["table"]] += bool(obj["rows"])
    assert non_empty == {table: sum(1 for n in expected[table].values() if n) for table in expected}
    # Reference snapshot whole on the first day, header-only afterwards (one snapshot source).
    first_manifest = {o["table"]: o["rows"] for o in _manifest(s3, bucket, first)["objects"]}
    with open(sample_dir / "customer.csv") as stream:
        assert first_manifest["customer"] == sum(1 for _ in stream) - 1
    later = {o["table"]: o["rows"] for o in _manifest(s3, bucket, first + timedelta(1))["objects"]}
    assert later["customer"] == later["film"] == 0


def test_reseeding_a_day_is_byte_identical(sample_landing, s3, settings_env, sample_dir):
    bucket = settings_env["DVD_LANDING_BUCKET"]
    day = date(2022, 5, 25)
    keys = [object_key(t, day) for t in TABLES] + [manifest_key(day)]
    before = {k: hashlib.md5(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest() for k in keys}
    seed(FolderSource(sample_dir), s3, bucket, [day])
    after = {k: hashlib.md5(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest() for k in keys}
    assert before == after


def test_bad_source_folder_names_the_file(tmp_path, sample_dir):
    for table in TABLES:
        (tmp_path / f"{table}.csv").write_text((sample_dir / f"{table}.csv").read_text())
    (tmp_path / "rental.csv").write_text("rental_id,rental_date\n1,2022-05-24 22:54:33+01\n")
    with pytest.raises(SeedError, match=r"rental\.csv: header"):
        FolderSource(tmp_path).day_range()
    (tmp_path / "rental.csv").unlink()
    with pytest.raises(SeedError, match=r"rental\.csv: missing"):
        FolderSource(tmp_path).day_range()
    bad = line("rental", rental_id=1, rental_date="not-a-date", inventory_id=1, customer_id=1, staff_id=1,
               last_update="2022-02-16 02:30:53+00")
    (tmp_path / "rental.csv").write_text(",".join(TABLES["rental"].columns) + f"\n{bad}\n")
    with pytest.raises(SeedError, match=r"rental\.csv:2: bad rental_date"):
        FolderSource(tmp_path).day_range()


def test_a_folder_lacking_an_optional_column_is_laid_out_by_name(tmp_path, sample_dir):
    """A sample file whose header lacks an optional contract column (or orders columns otherwise) is
    read by column name, the missing column written empty; a key, required or unknown column is refused."""
    for table in TABLES:
        (tmp_path / f"{table}.csv").write_text((sample_dir / f"{table}.csv").read_text())
    full = dict(rental_id="7", rental_date="2022-05-24 22:54:33+01", inventory_id="3", customer_id="4",
                staff_id="1", last_update="2022-05-25 00:00:00+00")
    columns = list(full)[::-1]  # every contract column but return_date (and any the contract adds), reordered
    (tmp_path / "rental.csv").write_text(",".join(columns) + "\n" + ",".join(full[c] for c in columns) + "\n")
    source = FolderSource(tmp_path)
    out = tmp_path / "out"
    source.write_days([date(2022, 5, 24)], out)
    written = (out / "rental" / "dt=2022-05-24" / "rental.csv").read_text().splitlines()
    assert written == [",".join(TABLES["rental"].columns), line("rental", **full)]
    for header, refused in ((columns + ["no_such_column"], "unknown: \\['no_such_column'\\]"),
                            (columns + ["rental_id"], "named twice: \\['rental_id'\\]"),
                            ([c for c in columns if c != "customer_id"], "of which key or required: \\['customer_id'\\]")):
        (tmp_path / "rental.csv").write_text(",".join(header) + "\n")
        with pytest.raises(SeedError, match=rf"rental\.csv: header .*{refused}"):
            FolderSource(tmp_path).day_range()
    # A row that is not as wide as the header cannot be laid out by name: refused, naming file and line.
    (tmp_path / "rental.csv").write_text(",".join(columns) + "\n" + ",".join(full[c] for c in columns) + ",x\n")
    with pytest.raises(SeedError, match=r"rental\.csv:2: 7 fields, the header has 6"):
        FolderSource(tmp_path).day_range()


def test_drip_lands_one_complete_day_at_a_time_the_given_seconds_apart(s3, tmp_path):
    """`up --drip S` (and `seed --drip S`): each day's objects, then its manifest, then S seconds before the
    next day, so a sensor sees the days land one by one. Each manifest is read back as its day is reported."""
    import time

    from dvd_platform.dev.seed.generator import GeneratedSource

    bucket = "dvd-drip-landing"
    s3.create_bucket(Bucket=bucket)
    days = [date(2031, 1, 1) + timedelta(n) for n in range(3)]
    reported: list[tuple[float, list[str]]] = []

    def log(line: str) -> None:  # called once a day's upload (manifest last) is done
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="landing/_manifests/").get("Contents", [])
        reported.append((time.monotonic(), sorted(o["Key"] for o in listed)))

    seed(GeneratedSource(scale=0.05, seed=3, start=days[0], days=3), s3, bucket, days, drip=0.6, log=log)
    assert [keys for _, keys in reported] == [sorted(manifest_key(d) for d in days[:n + 1]) for n in range(3)]
    gaps = [later - earlier for (earlier, _), (later, _) in zip(reported, reported[1:])]
    assert all(gap >= 0.6 for gap in gaps), gaps
    for day in days:
        manifest = _manifest(s3, bucket, day)
        for entry in manifest["objects"]:  # every object its manifest names is there, whole
            assert s3.head_object(Bucket=bucket, Key=entry["key"])["ContentLength"] == entry["bytes"]


class _FailingPuts:
    """An S3 client whose ``put_object`` of one key fails, as an endpoint refusing one upload would."""

    def __init__(self, client, failing_key: str):
        self._client, self.failing_key = client, failing_key

    def put_object(self, **kwargs):
        if kwargs["Key"] == self.failing_key:
            raise ConnectionError(f"refused: {kwargs['Key']}")
        return self._client.put_object(**kwargs)


def test_a_failed_upload_leaves_its_day_and_the_days_after_it_without_a_manifest(s3):
    """Every day's objects are queued at once (``upload_drops``), yet a day is complete only once all its
    objects are in: a refused object of day 2 fails the upload naming it, day 1 keeps its manifest, and day 2
    and every day after it get none (the sensor, which reads only manifests, sees no half day)."""
    from dvd_platform.dev.seed.generator import GeneratedSource

    bucket = "dvd-failed-upload-landing"
    s3.create_bucket(Bucket=bucket)
    days = [date(2031, 3, 1) + timedelta(n) for n in range(4)]
    failing = _FailingPuts(s3, object_key("payment", days[1]))
    with pytest.raises(ConnectionError, match=failing.failing_key):
        seed(GeneratedSource(scale=0.05, seed=3, start=days[0], days=4), failing, bucket, days)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="landing/_manifests/").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == [manifest_key(days[0])]
    for entry in _manifest(s3, bucket, days[0])["objects"]:  # the complete day is whole
        assert s3.head_object(Bucket=bucket, Key=entry["key"])["ContentLength"] == entry["bytes"]


def test_a_day_named_twice_is_refused_before_anything_is_uploaded(s3):
    """Every day's objects are queued at once, keyed by day: a repeated day would be uploaded twice and its first
    uploads' errors go unseen, so it is refused, naming the day, before any object goes up."""
    from dvd_platform.dev.seed.generator import GeneratedSource

    bucket = "dvd-repeated-day-landing"
    s3.create_bucket(Bucket=bucket)
    day = date(2031, 4, 1)
    with pytest.raises(ValueError, match="2031-04-01"):
        seed(GeneratedSource(scale=0.05, seed=3, start=day, days=1), s3, bucket, [day, day])
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
