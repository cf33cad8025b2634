"""Spark Connect: the stack's long-lived server serves runs, a run through it loads what a classic run loads,
and ``stack down`` leaves no JVM or Python worker behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from dagster import build_init_resource_context

from dvd_platform import settings
from dvd_platform.resources.spark import REMOTE_ENV, SHORT_LIVED_JIT, SparkConnectUnreachable, SparkResource
from dvd_platform.dev.stack import Stack
from dvd_platform.dev.stack.procs import descendants, free_port, pid_alive, port_open
from dvd_platform_tests.test_stack import _live_processes_mentioning
from dvd_platform_tests.two_runs import CONNECT_MARKERS, in_process_and_subprocess

#: Attach, then report from a Python worker of the server which interpreter it runs and where it imports
#: the COPY path from (the executor side of the warehouse load, ``mapInArrow``).
PROBE = """
import json, sys
from pyspark.sql import SparkSession

def where(batches):
    import sys
    import pyarrow as pa
    import dvd_platform.warehouse.copy_in as copy_in
    for _ in batches:
        yield pa.RecordBatch.from_pydict({"python": [sys.executable], "module": [copy_in.__file__]})

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
row = spark.range(1).mapInArrow(where, "python string, module string").collect()[0]
print(json.dumps([row["python"], row["module"]]))
"""


#: Attach as a run does, have the server close the session (released through a second client, as its idle
#: timeout would), check the old handle is dead, then attach as the next run would: ids and a count.
CLOSED_SESSION = """
import json, sys
from dagster import build_init_resource_context
from pyspark.sql.connect.client import SparkConnectClient
from dvd_platform.resources.spark import SESSION_CLOSED, SparkResource

def attach():
    resource = SparkResource(remote=sys.argv[1])
    resource.setup_for_execution(build_init_resource_context())
    return resource.session

first = attach()
old = first.session_id
SparkConnectClient(f"{sys.argv[1]}/;session_id={old}").release_session()
try:
    first.range(1).count()
    raise SystemExit("the released session still answers: the test proves nothing")
except Exception as exc:
    if SESSION_CLOSED not in str(exc):
        raise
renewed = attach()
print(json.dumps([old, renewed.session_id, renewed.range(3).count()]))
"""


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _client_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in CONNECT_MARKERS}


def test_stack_with_spark_connect_warms_up_serves_runs_and_down_leaves_no_process(settings_env, state_dir):
    """Postgres and S3 come from the session (reachable: not started again); only the Connect server starts,
    and the stack warms it up in the background with a client that ends by itself."""
    env = {**_client_env(), **settings_env}
    env.pop(REMOTE_ENV, None)
    stack = Stack(state_dir / "connect", spark_connect=True)
    values = stack.up(environ=env)
    processes: list[int] = []
    try:
        url = values[REMOTE_ENV]
        assert url.startswith("sc://127.0.0.1:") and port_open(_port(url))
        assert settings.parse_env_file(stack.env_file)[REMOTE_ENV] == url
        (server,) = stack.pids()
        probe = subprocess.run([sys.executable, "-c", PROBE, url], env=_client_env(), capture_output=True, text=True,
                               timeout=600)
        assert probe.returncode == 0, probe.stderr[-3000:]
        python, module = json.loads(probe.stdout.strip().splitlines()[-1])
        import dvd_platform.warehouse.copy_in as copy_in

        assert (python, module) == (sys.executable, copy_in.__file__)
        processes = descendants(server)
        assert len(processes) > 1, "the server's Python workers were not found: the leak check would prove nothing"
        warm_log = stack.wait_for_warm_up(240)
        assert re.search(r"^spark connect warm-up: [0-9.]+ s$", warm_log, re.M), warm_log[-3000:]
    finally:
        stack.down()
    assert [pid for pid in processes if pid_alive(pid)] == []
    assert not port_open(_port(url))
    assert _live_processes_mentioning(str(state_dir / "connect")) == []
    assert not stack.env_file.exists()


def test_a_run_through_spark_connect_loads_what_a_classic_run_loads(settings_env, s3, run_range, tmp_path,
                                                                     monkeypatch):
    """The in-process run goes through the session's Connect server; the subprocess starts a classic driver."""
    session_remote = settings_env.get(REMOTE_ENV, "")
    assert session_remote.startswith("sc://"), "the session must run on Connect, or both runs are classic"
    in_process, subprocess_run = in_process_and_subprocess("connect", {REMOTE_ENV: ""}, settings_env=settings_env,
                                                           s3=s3, run_range=run_range, tmp_path=tmp_path,
                                                           monkeypatch=monkeypatch)
    assert subprocess_run == in_process


def test_a_session_the_server_closed_is_replaced_at_the_next_run(settings_env):
    """A long-lived process (a test worker, a notebook) keeps pyspark's one default session; once the server
    has closed it (idle for 10 minutes), the next run attaches with a new one instead of failing every step
    with INVALID_HANDLE.SESSION_CLOSED. In a child process: this one's session is the suite's."""
    result = subprocess.run([sys.executable, "-c", CLOSED_SESSION, settings_env[REMOTE_ENV]], env=_client_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    old, new, count = json.loads(result.stdout.strip().splitlines()[-1])
    assert new != old and count == 3


def test_an_unreachable_connect_server_fails_at_once_naming_its_url():
    """The Connect client alone would retry a refused connection for ten minutes before a word."""
    url = f"sc://127.0.0.1:{free_port()}"  # nothing listens there
    spark = SparkResource(remote=url)
    spark.setup_for_execution(build_init_resource_context())
    with pytest.raises(SparkConnectUnreachable, match=re.escape(f"no Spark Connect server at {url}")):
        spark.session


def test_a_classic_driver_compiles_with_c1_only_and_the_connect_server_keeps_c2(monkeypatch):
    """A classic driver lives for one run: C1 only (``SHORT_LIVED_JIT``; pagila's range ran 105.8 -> 99.7 s
    in classic mode). The stack starts its long-lived Connect server with ``server_config``: C2 stays
    there (warm, the busiest one-day runs were faster with it). A Connect client sends no JVM option."""
    monkeypatch.delenv(REMOTE_ENV, raising=False)
    classic = SparkResource().spark_config()["spark.driver.extraJavaOptions"].split()
    assert SHORT_LIVED_JIT == "-XX:TieredStopAtLevel=1"
    assert SHORT_LIVED_JIT in classic and "-Dlog4j2.level=WARN" in classic
    assert "TieredStopAtLevel" not in SparkResource().server_config()["spark.driver.extraJavaOptions"]
    assert not [k for k in SparkResource(remote="sc://127.0.0.1:15002").spark_config() if "extraJavaOptions" in k]
