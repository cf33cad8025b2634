"""The pipeline on a real Spark standalone cluster gives the same warehouse as the local run.

A master and a worker are started on 127.0.0.1 with pyspark's own launcher
(``bin/spark-class``); ``dvd-platform materialize`` then runs in a subprocess
with ``DVD_SPARK_MASTER=spark://...``, so the driver, the executor JVM and its
Python workers are separate processes, as on a cluster, and the executors COPY
into PostgreSQL themselves. The same generated days are also run in process on
the session's local Spark; both go to their own scratch warehouse and lake, and
every warehouse table must be identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from dvd_platform.stack.procs import free_port
from dvd_platform_tests.scratch import scratch_database
from dvd_platform_tests.test_warehouse import checksum

FIRST, LAST = date(2025, 3, 1), date(2025, 3, 2)
TABLES = ("dim_date", "dim_customer", "dim_film", "dim_store", "dim_staff", "bridge_film_category",
          "fact_rental", "fact_payment", "mart_daily_revenue", "mart_category_monthly")


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except OSError:
        return 0


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory) -> Iterator[str]:
    """A standalone master and one 2-core worker on loopback; yields the master URL."""
    base = tmp_path_factory.mktemp("spark-cluster")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(base / "logs"),
           "SPARK_WORKER_DIR": str(base / "work"), "SPARK_NO_DAEMONIZE": "1"}
    port, ui_port, worker_ui = free_port(), free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    commands = [
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(ui_port)],
        ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2", "--memory", "2g",
         "--webui-port", str(worker_ui), "--work-dir", str(base / "work"), url],
    ]
    procs: list[subprocess.Popen] = []
    try:
        for i, args in enumerate(commands):
            log = open(base / f"{args[0].rsplit('.', 1)[-1].lower()}.log", "wb")
            procs.append(subprocess.Popen([str(_spark_class()), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        deadline = time.monotonic() + 90
        while _alive_workers(ui_port) < 1:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "\n".join(p.read_text()[-2000:] for p in base.glob("*.log"))
                pytest.fail(f"the standalone cluster did not come up at {url}:\n{logs}")
            time.sleep(0.5)
        yield url
    finally:
        # A graceful stop is not under test, and the worker can take half a minute over it:
        # give SIGTERM a few seconds, then kill each process group (executors included).
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _fingerprints(dsn: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every warehouse table."""
    conn = psycopg2.connect(dsn)
    try:
        return {table: checksum(conn, table) for table in TABLES}
    finally:
        conn.close()


def _buckets(s3, tag: str) -> tuple[str, str]:
    names = (f"dvd-cluster-{tag}-landing", f"dvd-cluster-{tag}-lake")
    for name in names:
        s3.create_bucket(Bucket=name)
    return names


def test_standalone_cluster_run_equals_the_local_run(spark_cluster, settings_env, s3, run_range, tmp_path,
                                                     monkeypatch):
    from dvd_platform.seed.drops import seed
    from dvd_platform.seed.generator import GeneratedSource

    days = [date.fromordinal(d) for d in range(FIRST.toordinal(), LAST.toordinal() + 1)]
    landing, _ = _buckets(s3, "src")
    seed(GeneratedSource(scale=0.3, seed=7, start=FIRST, days=len(days)), s3, landing, days)

    with scratch_database(settings_env, "dvd_local") as local_db, \
            scratch_database(settings_env, "dvd_cluster") as cluster_db:
        # The local run: in process, on the session's local SparkSession.
        _, local_lake_bucket = _buckets(s3, "local")
        for key, value in {"DVD_PG_DSN": local_db["loader"], "DVD_LANDING_BUCKET": landing,
                           "DVD_LAKE_BUCKET": local_lake_bucket, "DVD_LAKE_ROOT": str(tmp_path / "local-lake"),
                           "DVD_STAGING_DIR": str(tmp_path / "local-staging")}.items():
            monkeypatch.setenv(key, value)
        local = run_range(FIRST, LAST)
        assert local.ok, local.lines()

        # The cluster run: its own driver process, executors on the standalone worker.
        _, cluster_lake_bucket = _buckets(s3, "cluster")
        env = {**os.environ, "DVD_PG_DSN": cluster_db["loader"], "DVD_LAKE_BUCKET": cluster_lake_bucket,
               "DVD_LAKE_ROOT": str(tmp_path / "cluster-lake"), "DVD_STAGING_DIR": str(tmp_path / "cluster-staging"),
               "DVD_SPARK_MASTER": spark_cluster, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
        env.pop("DAGSTER_HOME", None)
        result = subprocess.run([sys.executable, "-m", "dvd_platform.cli", "materialize", "--from", str(FIRST),
                                 "--to", str(LAST)], env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert "success" in result.stdout

        local_tables, cluster_tables = _fingerprints(local_db["loader"]), _fingerprints(cluster_db["loader"])
    for table in ("dim_customer", "dim_film", "fact_rental", "fact_payment", "mart_daily_revenue"):
        assert local_tables[table][0] > 0, f"{table} is empty: the comparison would prove nothing"
    assert cluster_tables == local_tables
