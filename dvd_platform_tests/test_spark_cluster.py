"""A classic driver on a real Spark standalone cluster, with code generation, gives the same warehouse as an
interpreted run through Spark Connect.

A master and a worker are started on 127.0.0.1 with pyspark's own launcher
(``bin/spark-class``); ``dvd-platform materialize`` then runs in a subprocess
with ``DVD_SPARK_MASTER=spark://...``, no Spark Connect URL and ``DVD_SPARK_CODEGEN=1``, so it starts a classic
driver that compiles its queries as Spark does by default, and the driver,
the executor JVM and its Python workers are separate processes, as on a cluster; the executors COPY
into PostgreSQL themselves. The same generated days are also run in process through the session's Spark
Connect server, interpreted (the platform's default); both go to their own scratch warehouse and lake, and every
warehouse table must be identical.

So one comparison covers the ways the same code runs elsewhere: a cluster, classic mode against Connect, and
generated code against interpreted queries. A second one, Connect against a classic ``local[2]`` driver, cost
the suite 150-190 s; it differed
from this one in the master (executors inside the driver's JVM) and the loopback driver address
``server_config`` sets for a local master, and no longer runs in the suite (``pipeline_benchmark.py
--spark classic`` still runs that mode over pagila).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dvd_platform.dev.stack.procs import free_port
from dvd_platform.resources.spark import CODEGEN_ENV
from dvd_platform_tests.two_runs import in_process_and_subprocess


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


def test_a_compiled_classic_run_on_a_standalone_cluster_loads_what_an_interpreted_spark_connect_run_loads(
        spark_cluster, settings_env, s3, run_range, tmp_path, monkeypatch):
    assert settings_env.get("DVD_SPARK_REMOTE", "").startswith("sc://"), \
        "the session must run on Spark Connect, or both runs are classic"
    cluster_env = {"DVD_SPARK_MASTER": spark_cluster, "DVD_SPARK_REMOTE": "", CODEGEN_ENV: "1"}
    connect, cluster = in_process_and_subprocess("cluster", cluster_env,
                                               settings_env=settings_env, s3=s3, run_range=run_range,
                                               tmp_path=tmp_path, monkeypatch=monkeypatch,
                                               subprocess_logs=f"Spark: {spark_cluster}, queries compiled")
    assert cluster == connect
