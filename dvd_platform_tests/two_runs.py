"""The same generated days loaded twice, in process and in a subprocess with other Spark settings.

Each run gets its own scratch warehouse, lake bucket and lake root; both read the
same landing drops. The in-process run uses the session's Spark (whatever the
session's stack chose); the subprocess is ``dvd-platform materialize`` with the
given environment. Used to prove that where Spark runs (a Spark Connect server, a classic driver on a
standalone cluster) does not change the warehouse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import psycopg2

from dvd_platform_tests.scratch import scratch_database
from dvd_platform_tests.test_warehouse import checksum

FIRST, LAST = date(2025, 3, 1), date(2025, 3, 2)
TABLES = ("dim_date", "dim_customer", "dim_film", "dim_store", "dim_staff", "bridge_film_category",
          "fact_rental", "fact_payment", "mart_daily_revenue", "mart_category_monthly")
#: Left in the environment by a Spark Connect session of this process; a classic child must not inherit them.
CONNECT_MARKERS = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")


def client_env() -> dict[str, str]:
    """This process's environment without ``CONNECT_MARKERS``: for a child that chooses its own Spark."""
    return {key: value for key, value in os.environ.items() if key not in CONNECT_MARKERS}


def fingerprints(dsn: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every warehouse table."""
    conn = psycopg2.connect(dsn)
    try:
        return {table: checksum(conn, table) for table in TABLES}
    finally:
        conn.close()


def _buckets(s3, name: str, tag: str) -> tuple[str, str]:
    names = (f"dvd-{name}-{tag}-landing", f"dvd-{name}-{tag}-lake")
    for bucket in names:
        s3.create_bucket(Bucket=bucket)
    return names


def in_process_and_subprocess(name: str, subprocess_env: dict[str, str], *, settings_env, s3, run_range,
                              tmp_path: Path, monkeypatch, subprocess_logs: str = "") -> tuple[dict, dict]:
    """Fingerprints of every warehouse table after the in-process run and after the subprocess run, whose
    output must hold ``subprocess_logs`` (a line its run logs, to show it ran as the test meant)."""
    from dvd_platform.dev.seed.upload import seed
    from dvd_platform.dev.seed.generator import GeneratedSource

    days = [FIRST + timedelta(n) for n in range((LAST - FIRST).days + 1)]
    landing, _ = _buckets(s3, name, "src")
    seed(GeneratedSource(scale=0.3, seed=7, start=FIRST, days=len(days)), s3, landing, days)

    with scratch_database(settings_env, f"dvd_{name}_local") as local_db, \
            scratch_database(settings_env, f"dvd_{name}_other") as other_db:
        _, local_lake = _buckets(s3, name, "local")
        for key, value in {"DVD_PG_DSN": local_db["loader"], "DVD_LANDING_BUCKET": landing,
                           "DVD_LAKE_BUCKET": local_lake, "DVD_LAKE_ROOT": str(tmp_path / "local-lake"),
                           "DVD_STAGING_DIR": str(tmp_path / "local-staging")}.items():
            monkeypatch.setenv(key, value)
        local = run_range(FIRST, LAST)
        assert local.ok, local.lines()

        _, other_lake = _buckets(s3, name, "other")
        env = client_env()
        env.update({"DVD_PG_DSN": other_db["loader"], "DVD_LAKE_BUCKET": other_lake,
                    "DVD_LAKE_ROOT": str(tmp_path / "other-lake"), "DVD_STAGING_DIR": str(tmp_path / "other-staging"),
                    "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1", **subprocess_env})
        env.pop("DAGSTER_HOME", None)
        result = subprocess.run([sys.executable, "-m", "dvd_platform.cli", "materialize", "--from", str(FIRST),
                                 "--to", str(LAST)], env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "success" in result.stdout
        assert subprocess_logs in result.stdout + result.stderr, (result.stdout + result.stderr)[-4000:]

        local_tables, other_tables = fingerprints(local_db["loader"]), fingerprints(other_db["loader"])
    for table in ("dim_customer", "dim_film", "fact_rental", "fact_payment", "mart_daily_revenue"):
        assert local_tables[table][0] > 0, f"{table} is empty: the comparison would prove nothing"
    return local_tables, other_tables
