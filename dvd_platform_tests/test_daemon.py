"""The real daemon, end to end: `dvd-platform up` seeds three historical days and, without a click,
the landing sensor loads them and automation fills both marts with exactly the seeded revenue;
a corrected re-drop of day 2 changes day 2's marts and nothing else."""

from __future__ import annotations

import csv
import io
import json
import time
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import boto3
import psycopg2

from dvd_platform.settings import parse_env_file
from dvd_platform_tests.crafted import redrop_table
from dvd_platform_tests.test_up import _tail, start_up, stop_up

MANIFESTS = "landing/_manifests/"


def _seeded_payments(s3, bucket: str) -> dict[str, dict[str, Decimal]]:
    """day -> payment_id -> amount, read from the drops themselves (their manifests name the objects)."""
    out: dict[str, dict[str, Decimal]] = {}
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=MANIFESTS).get("Contents", []):
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        entry = next(o for o in manifest["objects"] if o["table"] == "payment")
        body = s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read().decode()
        out[manifest["day"]] = {row["payment_id"]: Decimal(row["amount"]) for row in csv.DictReader(io.StringIO(body))}
    return out


def _marts(dsn: str) -> tuple[dict, dict]:
    """(day -> revenue of mart_daily_revenue, month -> revenue of mart_category_monthly)."""
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT date::text, sum(revenue) FROM dw.mart_daily_revenue GROUP BY 1")
            daily = dict(cur.fetchall())
            cur.execute("SELECT to_char(month, 'YYYY-MM'), round(sum(revenue), 2) FROM dw.mart_category_monthly GROUP BY 1")
            monthly = dict(cur.fetchall())
        return daily, monthly
    finally:
        conn.close()


def _expected(payments: dict[str, dict[str, Decimal]]) -> tuple[dict, dict]:
    daily = {day: sum(rows.values(), Decimal(0)) for day, rows in payments.items()}
    monthly: dict[str, Decimal] = defaultdict(Decimal)
    for day, revenue in daily.items():
        monthly[day[:7]] += revenue
    return daily, dict(monthly)


def _wait_for(expected: tuple[dict, dict], dsn_of, proc, log: Path, seconds: float) -> tuple[dict, dict]:
    deadline, seen = time.monotonic() + seconds, ({}, {})
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"`up` exited early ({proc.returncode}):\n{_tail(log)}"
        dsn = dsn_of()
        if dsn:
            try:
                seen = _marts(dsn)
            except psycopg2.Error:
                pass  # not migrated yet
            if seen == expected:
                return seen
        time.sleep(5)
    raise AssertionError(f"marts {seen} never became {expected}\n{_tail(log)}")


def test_daemon_fills_the_marts_for_historical_days_and_follows_a_redrop(state_dir: Path):
    proc, log = start_up(state_dir, "--source", "generated", "--scale", "0.05", "--days", "3")
    env_file = state_dir / "stack.env"

    def dsn_of() -> str | None:
        return parse_env_file(env_file).get("DVD_PG_DSN") if env_file.exists() else None

    try:
        deadline = time.monotonic() + 120
        while "uploaded " not in log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(2)
        stack_env = parse_env_file(env_file)
        s3 = boto3.client("s3", endpoint_url=stack_env["DVD_S3_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id=stack_env.get("AWS_ACCESS_KEY_ID", "test"),
                          aws_secret_access_key=stack_env.get("AWS_SECRET_ACCESS_KEY", "test"))
        bucket = stack_env["DVD_LANDING_BUCKET"]
        payments = _seeded_payments(s3, bucket)
        assert len(payments) == 3, payments.keys()
        first = _wait_for(_expected(payments), dsn_of, proc, log, 600)

        # A corrected re-drop of day 2: every amount one dollar more.
        day2 = sorted(payments)[1]
        redrop_table(s3, bucket, date.fromisoformat(day2), "payment",
                     lambda rows: [[*r[:4], str(Decimal(r[4]) + 1), *r[5:]] for r in rows])
        payments[day2] = {pid: amount + 1 for pid, amount in payments[day2].items()}
        second = _wait_for(_expected(payments), dsn_of, proc, log, 420)
        changed = {day for day in first[0] if first[0][day] != second[0][day]}
        assert changed == {day2}  # the other days' marts kept their figures
    finally:
        stop_up(proc, state_dir)
