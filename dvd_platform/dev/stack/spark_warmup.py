"""Warm a fresh Spark Connect server up with the kinds of work a pipeline run does.

Why: the first run on a new server paid about twice a later run's time (112 s against 47-52 s
for days of the same size in the daemon test, now in ``test_up``): class loading, JIT and the first Python worker
start. The stack runs this in the background right after the server starts, while seeding and
``dg dev`` start, so the first run a user or the landing sensor launches finds a warm server.

Run as ``python -m dvd_platform.dev.stack.spark_warmup sc://HOST:PORT WORK_DIR``; dev tooling only.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator


def _same_batches(batches: Iterator) -> Iterator:
    yield from batches


def warm_up(url: str, work_dir: str) -> float:
    """CSV read, a window, an aggregation, a join, Parquet write and read, and ``mapInArrow`` on
    the server's Python workers (the warehouse COPY path). Returns the seconds it took."""
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    from dvd_platform.resources.spark import SparkResource

    started = time.monotonic()
    spark = SparkSession.builder.remote(url).getOrCreate()
    try:
        for key, value in SparkResource().session_config().items():
            spark.conf.set(key, value)
        rows = spark.range(0, 5000).selectExpr(
            "id", "cast(id % 97 as int) AS k", "timestamp_seconds(id * 600) AS ts",
            "cast(id / 7 as decimal(10, 2)) AS amount")
        rows.write.mode("overwrite").option("header", True).csv(f"{work_dir}/csv")
        read = spark.read.schema(rows.schema).option("header", True).csv(f"{work_dir}/csv")
        latest = read.withColumn("n", F.row_number().over(Window.partitionBy("k").orderBy(F.desc("ts"))))
        latest.where("n = 1").write.mode("overwrite").parquet(f"{work_dir}/parquet")
        snapshot = spark.read.parquet(f"{work_dir}/parquet")
        daily = read.join(snapshot.select("k", F.col("ts").alias("last_ts")), "k").groupBy(F.to_date("ts")).agg(
            F.count("*"), F.sum("amount"))
        daily.collect()
        read.mapInArrow(_same_batches, read.schema).count()
    finally:
        spark.stop()
    return time.monotonic() - started


def main(argv: list[str]) -> int:
    url = argv[1]
    with tempfile.TemporaryDirectory(prefix="dvd-spark-warmup-", dir=argv[2] if len(argv) > 2 else None) as work:
        print(f"spark connect warm-up: {warm_up(url, work):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
