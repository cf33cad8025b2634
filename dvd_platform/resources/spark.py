"""Spark, configured from the environment, through dagster-pyspark.

One SparkSession per process: with the in-process executor every Spark step of a
run shares it (a JVM per step would cost ~7 s each on this machine kind).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from dagster_pyspark import LazyPySparkResource
from pydantic import PrivateAttr


class SparkResource(ConfigurableResource):
    """``spark.master`` and sizing from config; the same code runs local, standalone, YARN or k8s."""

    master: str = "local[2]"
    driver_memory: str = "2g"
    shuffle_partitions: int = 4
    extra_conf: dict[str, str] = {}

    _pyspark: LazyPySparkResource | None = PrivateAttr(default=None)

    def spark_config(self) -> dict[str, Any]:
        conf = {
            "spark.master": self.master,
            "spark.app.name": "dvd_platform",
            "spark.driver.memory": self.driver_memory,
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.default.parallelism": str(self.shuffle_partitions),
            # Days are cut in UTC: timestamps are instants, shown and truncated in UTC.
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.adaptive.enabled": "true",
            # A whole day's file stays one split, so row order within a split is file order
            # (staging derives line numbers from it).
            "spark.sql.files.maxPartitionBytes": str(2 * 1024**3),
            # A range reads one directory per day: list them in the driver, not with a Spark job per read.
            "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
            "spark.driver.extraJavaOptions": "-Dlog4j2.level=WARN",
            # The warehouse load streams Arrow batches of CSV lines to COPY (warehouse/copy_in.py):
            # 10x the default batch halves its time here (per-batch cost), at a few MB per batch.
            "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
        }
        if self.master.startswith("local"):
            conf["spark.driver.host"] = "127.0.0.1"
            conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf.update(self.extra_conf)
        return conf

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Executors must run this interpreter (the venv's packages), and bind loopback, not eth0.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        self._pyspark = LazyPySparkResource(spark_config=self.spark_config())

    @property
    def session(self):
        """The process's SparkSession (created on first use, so non-Spark steps start no JVM)."""
        if self._pyspark is None:
            raise RuntimeError("SparkResource used outside a Dagster run")
        spark = self._pyspark.spark_session
        spark.sparkContext.setLogLevel("WARN")
        return spark
