"""One Spark Connect server for a whole test run, shared by pytest-xdist's workers and the pytest runs a test starts.

Why: each worker's session stack started a server of its own, and a fresh server spends much of its CPU
compiling Spark's own hot code (its JIT) and on its warm-up, whatever little it then serves. On two cores the
suite is CPU-bound, and the second worker's server used 118-137 s of CPU (BENCHMARKS.md section 21);
``make up`` still gets a server per stack, as does every test that starts a stack of its own.

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
from dvd_platform.dev.stack.stack import SPARK_DEFAULTS, connect_server_conf

ENV = "DVD_TEST_SPARK_DIR"


def claim() -> Path | None:
    """Name the run's server directory, unless a parent pytest already did; returns it when this process owns it."""
    if os.environ.get(ENV):
        return None
    path = Path(tempfile.mkdtemp(prefix="dvd-tests-spark-"))
    path.chmod(0o755)
    os.environ[ENV] = str(path)
    return path


def _state_file(path: Path) -> Path:
    return path / "server.json"


def _server(path: Path, state: dict) -> ConnectServer:
    return ConnectServer(path / "server", state.get("port", 0), state.get("pid"), state.get("pgid"))


def server_url() -> str:
    """The run's server, started here if no process of the run has started it yet (or it has died)."""
    path = Path(os.environ[ENV])
    with open(path / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        state = json.loads(_state_file(path).read_text()) if _state_file(path).exists() else {}
        server = _server(path, state)
        if state and pid_alive(server.pid) and port_open(server.port):
            return server.url
        server.start(connect_server_conf(SPARK_DEFAULTS))
        state = {"pid": server.pid, "pgid": server.pgid, "port": server.port,
                 "warmup_pid": server.warm_up_in_background()}
        _state_file(path).write_text(json.dumps(state))
        return server.url


def release(path: Path) -> None:
    """Stop the server started in ``path`` (if any) with its Python workers and warm-up client; remove ``path``."""
    if _state_file(path).exists():
        state = json.loads(_state_file(path).read_text())
        stop_warm_up(state.get("warmup_pid"))
        _server(path, state).stop()
    shutil.rmtree(path, ignore_errors=True)
