"""Warm a fresh Spark Connect server up with the platform's own pipeline on one generated day.

Why: a new server pays its class loading, Janino compilation and JIT once, in whatever run comes first.
That was about 30 s of a whole-pagila range (105 s on a fresh server against 76-80 s on one that had run
one generated day of the pipeline before; BENCHMARKS.md section 18) and about twice a later run's time in
``test_daemon``. A handful of synthetic queries (the first warm-up) saved under half of it: what warms the
server is the platform's own query shapes, so this runs the platform itself: the whole ``daily_pipeline``
graph on one generated day (scale 0.05), in an ephemeral Dagster instance, against scratch buckets, a scratch
lake and a scratch warehouse database (``dvd_warmup``) of the stack's own cluster, all removed afterwards.
Nothing of the user's buckets, lake, warehouse or Dagster history is touched. Where the stack was given a
PostgreSQL server (``DVD_PG_DSN`` set, no superuser DSN) it warms raw and staging only: it creates no
database on a server it does not own.

The stack starts this in the background right after the server, while seeding and ``dg dev`` start.

Run as ``python -m dvd_platform.dev.stack.spark_warmup WORK_DIR`` with the stack's settings in the
environment; dev tooling only.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Iterator

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

WARMUP_DB = "dvd_warmup"
WARMUP_DAY = date(2022, 2, 1)
WARMUP_SCALE = 0.05
#: Without a warehouse of its own the warm-up runs these groups only.
NO_WAREHOUSE_SELECTION = "group:raw or group:staging"


def _with_db(dsn: str, dbname: str) -> str:
    return make_dsn(**{**parse_dsn(dsn), "dbname": dbname})


@contextmanager
def scratch_warehouse(admin_dsn: str, loader_dsn: str) -> Iterator[str]:
    """A fresh ``dvd_warmup`` database owned by the loader, with the schemas the stack gives the warehouse;
    yields the loader's DSN of it and drops it afterwards (a killed warm-up's is dropped by the next one)."""
    loader = parse_dsn(loader_dsn)["user"]
    conn = psycopg2.connect(_with_db(admin_dsn, "postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(WARMUP_DB)))
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(WARMUP_DB), sql.Identifier(loader)))
        with psycopg2.connect(_with_db(admin_dsn, WARMUP_DB)) as db, db.cursor() as cur:
            for schema in ("dw", "dw_audit"):
                cur.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(sql.Identifier(schema),
                                                                                 sql.Identifier(loader)))
        db.close()
        yield _with_db(loader_dsn, WARMUP_DB)
    finally:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(WARMUP_DB)))
        conn.close()


@contextmanager
def scratch_buckets(client) -> Iterator[tuple[str, str]]:
    """A landing and a lake bucket of the warm-up's own, emptied and deleted afterwards."""
    suffix = uuid.uuid4().hex[:12]
    buckets = (f"dvd-warmup-landing-{suffix}", f"dvd-warmup-lake-{suffix}")
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    try:
        yield buckets
    finally:
        for bucket in buckets:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=bucket, Key=item["Key"])
            client.delete_bucket(Bucket=bucket)


def warm_up(work_dir: Path) -> tuple[float, bool]:
    """One generated day through the pipeline on scratch storage; returns its seconds and whether it succeeded."""
    from dagster import DagsterInstance

    from dvd_platform.definitions import defs
    from dvd_platform.dev.seed.generator import GeneratedSource
    from dvd_platform.dev.seed.upload import seed
    from dvd_platform.resources.s3 import s3_client
    from dvd_platform.runner import materialize_range

    started = time.monotonic()
    shutil.rmtree(work_dir, ignore_errors=True)  # a killed warm-up's lake
    client = s3_client(os.environ.get("DVD_S3_ENDPOINT_URL") or None)
    admin, loader = os.environ.get("DVD_PG_ADMIN_DSN"), os.environ.get("DVD_PG_DSN", "")
    with scratch_buckets(client) as (landing, lake_bucket), \
            (scratch_warehouse(admin, loader) if admin else _no_warehouse()) as warehouse_dsn:
        os.environ.update({"DVD_LANDING_BUCKET": landing, "DVD_LAKE_BUCKET": lake_bucket,
                           "DVD_LAKE_ROOT": str(work_dir / "lake"), "DVD_STAGING_DIR": str(work_dir / "staging"),
                           "DVD_PG_DSN": warehouse_dsn or loader})
        seed(GeneratedSource(scale=WARMUP_SCALE, days=1, start=WARMUP_DAY), client, landing, [WARMUP_DAY])
        with DagsterInstance.ephemeral() as instance:
            summary = materialize_range(defs, WARMUP_DAY, WARMUP_DAY, None if warehouse_dsn else NO_WAREHOUSE_SELECTION,
                                        instance=instance)
    shutil.rmtree(work_dir, ignore_errors=True)
    return time.monotonic() - started, summary.ok


@contextmanager
def _no_warehouse() -> Iterator[None]:
    yield None


def main(argv: list[str]) -> int:
    seconds, ok = warm_up(Path(argv[1]) / "warmup")
    print(f"spark connect warm-up: {seconds:.1f} s" + ("" if ok else " (the warm-up run failed; see above)"),
          flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
