"""One Spark Connect server for a whole test run, shared by pytest-xdist's workers and the pytest runs a test starts.

Why: each worker's session stack started a server of its own, and a fresh server spends much of its CPU
compiling Spark's own hot code (its JIT) and on its warm-up, whatever little it then serves. On two cores the
suite is CPU-bound; the second worker's server used about 130 s of CPU (BENCHMARKS.md section 21, at
``7cd8aef``: 494 s for all servers, less the loaded sample's 270 s and ``up``'s 95 s). ``make up`` still gets a
server per stack, as does every test that starts a stack of its own.

The run's first process (the xdist controller, or pytest alone) names a directory in ``ENV``, which its
workers and the pytest runs its tests start inherit. The first session stack that needs Spark starts the
server there, under a file lock, and the others attach to it; the process that named the directory stops
the server and its warm-up client when pytest ends (``pytest_unconfigure``), after every worker has closed
its session. A run without a session stack starts no server.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

from dvd_platform.dev.stack.procs import pid_alive, port_open
from dvd_platform.dev.stack.spark_connect import ConnectServer, stop_warm_up

ENV = "DVD_TEST_SPARK_DIR"
#: What ``server_url`` records of the server it started: pid, pgid, port and the warm-up client's pid.
State = dict[str, int | None]


def claim() -> Path | None:
    """Name the run's server directory, unless a parent pytest already did (its directory still exists);
    returns it when this process owns it."""
    if os.environ.get(ENV) and Path(os.environ[ENV]).is_dir():
        return None
    path = Path(tempfile.mkdtemp(prefix="dvd-tests-spark-"))
    os.environ[ENV] = str(path)
    return path


def state_file(path: Path) -> Path:
    """Where the server started in ``path`` is recorded (tests read it to check it was stopped)."""
    return path / "server.json"


def _read(path: Path) -> State:
    return json.loads(state_file(path).read_text()) if state_file(path).exists() else {}


def _server(path: Path, state: State) -> ConnectServer:
    return ConnectServer(path / "server", state.get("port") or 0, state.get("pid"), state.get("pgid"))


def _stop(path: Path, state: State) -> None:
    """The recorded server, its Python workers and its warm-up client; a server whose start was never recorded
    is found by the launcher's pid file."""
    stop_warm_up(state.get("warmup_pid"))
    server = _server(path, state)
    if server.pid is None:
        server.read_pid_file()
    server.stop()


def server_url() -> str:
    """The run's server, started here if no process of the run has started it yet, or if it has died (a stack
    already attached to a dead one is not mended: its runs fail naming the URL)."""
    from dvd_platform.dev.stack.stack import SPARK_DEFAULTS, connect_server_conf  # Dagster's import: only here

    path = Path(os.environ[ENV])
    with open(path / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        state = _read(path)
        server = _server(path, state)
        if state and pid_alive(server.pid) and port_open(server.port):
            return server.url
        _stop(path, state)  # what is left of a dead or unanswering one
        state = {}
        try:
            server.start(connect_server_conf(SPARK_DEFAULTS))
            state = {"pid": server.pid, "pgid": server.pgid, "port": server.port}
            state["warmup_pid"] = server.warm_up_in_background()
        finally:
            state_file(path).write_text(json.dumps(state))
        return server.url


def release(path: Path) -> None:
    """Stop what was started in ``path`` (if anything), remove ``path`` and forget it."""
    _stop(path, _read(path))
    shutil.rmtree(path, ignore_errors=True)
    if os.environ.get(ENV) == str(path):
        del os.environ[ENV]
