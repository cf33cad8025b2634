"""Spark, configured from the environment, through dagster-pyspark: a classic driver or a Spark Connect client.

One SparkSession per process: with the in-process executor every Spark step of a
run shares it (a JVM per step would cost ~7 s each on this machine kind).

When ``DVD_SPARK_REMOTE`` names a Spark Connect server (``sc://host:port``; the
local stack starts one), the run attaches to it as a client and starts no JVM of
its own: about 1 s instead of 6-7 s per run. Without it the run starts a classic
driver on ``spark.master``, as before. The code of the assets is the same in both
modes: it uses only the DataFrame API, which Spark Connect serves. What Connect
does not serve (``sparkContext``, RDDs, the status tracker) the platform does not
use, except ``setLogLevel`` in classic mode (see :meth:`SparkResource.session`).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any
from urllib.parse import urlparse

from dagster import ConfigurableResource, InitResourceContext
from dagster_pyspark import LazyPySparkResource
from pydantic import PrivateAttr

REMOTE_ENV = "DVD_SPARK_REMOTE"
CODEGEN_ENV = "DVD_SPARK_CODEGEN"
CONNECT_DEFAULT_PORT = 15002
#: The JIT of a classic driver, a JVM that lives for one run: C1 only. Its work is many small plans, each
#: compiled once; the compiler threads used about half a fresh JVM's CPU and C2's code did not pay back
#: within a run (pagila, classic: range 105.8 -> 99.7 s, one day 23.9 -> 19.8 s; BENCHMARKS.md section 15).
#: A long-lived Connect server keeps C2: warm, its busiest one-day runs were up to 3.4 s faster with it.
#: Measured at pagila's size only. ``extra_conf`` setting spark.driver.extraJavaOptions replaces these options.
SHORT_LIVED_JIT = "-XX:TieredStopAtLevel=1"


#: Unless DVD_SPARK_CODEGEN turns it on, the platform's session runs queries interpreted: whole-stage and
#: expression code generation off (a few operators, e.g. the hash aggregate's row joiner, still generate theirs).
#: Why: Spark turns each query stage and expression into Java source, compiles it with Janino, and the JVM's JIT
#: compiles the generated classes again; that may pay back when a stage runs over many rows, but a day's window
#: holds a few hundred to a few thousand, and most of a run's plans run once. Whole pagila as one run on the local
#: Connect server: 81.1-85.8 s interpreted against 86.1-89.0 s, about 30 % less time in Spark jobs, and the test
#: suite's Connect servers used 8-17 % less CPU (three runs against one); 7 generated days at 100x pagila: 114.0 s
#: against 112.5 s (BENCHMARKS.md section 21). The second setting is Spark's internal switch (its own test suites
#: run every expression interpreted with it). Both modes are set in full, Spark's defaults for ``COMPILED``: a
#: process's Connect session outlives a run.
INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
COMPILED = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


#: The error class a Spark Connect server answers with for a session it has closed.
SESSION_CLOSED = "INVALID_HANDLE.SESSION_CLOSED"


class SparkConnectUnreachable(ConnectionError):
    """Nothing accepts connections at the Spark Connect URL a run was given."""


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Fail at once, naming the URL, when nothing listens at a Spark Connect URL.

    Why: the Connect client retries a refused connection for at least 10 minutes (pyspark's
    ``DefaultPolicy``, meant to ride out a server restart), so a run pointed at a server that is down
    would say nothing for that long. Checked when a run first uses Spark; a server lost later in the run
    still gets the client's retries."""
    parsed = urlparse(url)
    address = (parsed.hostname or "", parsed.port or CONNECT_DEFAULT_PORT)
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError as exc:
        raise SparkConnectUnreachable(
            f"no Spark Connect server at {url} ({exc}): start the local stack (`dvd-platform stack up`) or set "
            f"{REMOTE_ENV} to a running server (empty: a classic driver)") from exc


class SparkResource(ConfigurableResource):
    """``spark.master`` and sizing from config; the same code runs local, standalone, YARN, k8s or over Connect.

    ``remote`` is the Spark Connect URL; empty means "read ``DVD_SPARK_REMOTE`` when the
    run starts" (an optional variable: unset or empty, the run starts a classic driver).
    ``codegen`` likewise: empty reads ``DVD_SPARK_CODEGEN`` (unset: off, see ``INTERPRETED``).
    """

    master: str = "local[2]"
    driver_memory: str = "2g"
    shuffle_partitions: int = 4
    remote: str = ""
    codegen: str = ""
    extra_conf: dict[str, str] = {}

    _pyspark: LazyPySparkResource | None = PrivateAttr(default=None)
    _reachable: bool = PrivateAttr(default=False)

    def server_config(self) -> dict[str, str]:
        """What the JVM that runs the queries starts with: the classic driver, or a Spark Connect server.

        These are static: a client attaching over Connect cannot change them, so the
        local stack starts its Connect server with them (``dvd_platform.dev.stack.spark_connect``).
        """
        conf = {
            "spark.master": self.master,
            "spark.app.name": "dvd_platform",
            "spark.driver.memory": self.driver_memory,
            "spark.default.parallelism": str(self.shuffle_partitions),
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            # The JVM's log level from its start; a Connect client has no setLogLevel.
            "spark.driver.extraJavaOptions": "-Dlog4j2.level=WARN",
        }
        if self.master.startswith("local"):
            conf["spark.driver.host"] = "127.0.0.1"
            conf["spark.driver.bindAddress"] = "127.0.0.1"
        return conf

    def session_config(self) -> dict[str, str]:
        """SQL settings of the platform's session: a Connect client sets these on its own session."""
        return {
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            # Days are cut in UTC: timestamps are instants, shown and truncated in UTC.
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.adaptive.enabled": "true",
            # A whole day's file stays one split, so row order within a split is file order
            # (staging derives line numbers from it).
            "spark.sql.files.maxPartitionBytes": str(2 * 1024**3),
            # A range reads one directory per day: list them in the driver, not with a Spark job per read.
            "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
            # The warehouse load streams Arrow batches of CSV lines to COPY (warehouse/copy_in.py):
            # 10x the default batch halves its time here (per-batch cost), at a few MB per batch.
            "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",
            **(COMPILED if self.codegen_on else INTERPRETED),
        }

    @property
    def codegen_on(self) -> bool:
        """Whether Spark generates code for the platform's queries (``codegen``, else ``DVD_SPARK_CODEGEN``).
        A value that is neither on nor off fails the run's start, rather than silently choosing a mode."""
        value = (self.codegen or os.environ.get(CODEGEN_ENV, "")).strip().lower()
        if value not in _ON + _OFF:
            raise ValueError(f"{CODEGEN_ENV} (or SparkResource.codegen) = {value!r}: use 1 (Spark generates code) "
                             "or 0 (interpreted, the default)")
        return value in _ON

    @property
    def remote_url(self) -> str:
        return self.remote or os.environ.get(REMOTE_ENV, "")

    def spark_config(self) -> dict[str, Any]:
        """The builder's settings: the server's and the session's (classic), or the URL and the session's (Connect).

        Over Connect, ``extra_conf`` can only carry session (``spark.sql.*``) settings:
        the server's are fixed when it starts.
        """
        if self.remote_url:
            return {"spark.remote": self.remote_url, **self.session_config(), **self.extra_conf}
        driver = self.server_config()
        driver["spark.driver.extraJavaOptions"] += " " + SHORT_LIVED_JIT
        return {**driver, **self.session_config(), **self.extra_conf}

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Classic executors must run this interpreter (the venv's packages), and bind loopback, not eth0.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # A Connect session holds server memory (cached frames) until it is released or times out:
        # release it when this process exits.
        os.environ.setdefault("SPARK_CONNECT_RELEASE_SESSION_ON_EXIT", "true")
        self._pyspark = LazyPySparkResource(spark_config=self.spark_config())
        if context.log is not None:  # the run's log says how its queries run: a run's speed depends on it
            where = self.remote_url or self.master
            mode = "compiled (DVD_SPARK_CODEGEN=1)" if self.codegen_on else "interpreted"
            context.log.info(f"Spark: {where}, queries {mode}")

    def _renew_if_closed(self) -> None:
        """Once per run, over Connect: a new session when the server has closed this process's (it closes one
        idle for ``spark.connect.session.manager.defaultSessionTimeout``, 10 minutes on the local stack).

        Why: pyspark hands every run of a process the same default session, so a long-lived process (a test
        worker, a notebook calling ``materialize_range``) would fail every later run with
        ``INVALID_HANDLE.SESSION_CLOSED``. Asking one setting is a round trip without a Spark job."""
        try:  # the builder itself asks the server first (it sets the session's options)
            self._pyspark.spark_session.conf.get("spark.sql.session.timeZone")
        except Exception as exc:  # pyspark raises its own wrapper of the server's SparkSQLException
            if SESSION_CLOSED not in str(exc):
                raise
            from pyspark.sql.connect.session import SparkSession as ConnectSession

            closed = ConnectSession._get_default_session()
            if closed is not None:
                closed.stop()  # best effort; forgets the default session, so the builder makes a new one
            self._pyspark = LazyPySparkResource(spark_config=self.spark_config())

    @property
    def session(self):
        """The process's SparkSession (created on first use, so non-Spark steps start no JVM and attach to nothing)."""
        if self._pyspark is None:
            raise RuntimeError("SparkResource used outside a Dagster run")
        if self.remote_url and not self._reachable:
            check_reachable(self.remote_url)
            self._reachable = True
            self._renew_if_closed()
        spark = self._pyspark.spark_session
        if not self.remote_url:
            # Classic only (Connect has no SparkContext): quiets what the pyspark shell default would log.
            # A Connect server's level is set when it starts (-Dlog4j2.level, server_config).
            spark.sparkContext.setLogLevel("WARN")
        return spark
