"""A long-lived Spark Connect server on loopback, so runs attach to a warm JVM instead of starting one each.

Started with the launcher pyspark ships (``sbin/start-connect-server.sh``, with
``SPARK_HOME`` = the installed ``pyspark`` folder), with the platform's server
settings (:meth:`SparkResource.server_config`), on the newest JDK the machine has for Spark
unless ``JAVA_HOME`` names one (``java.py`` says why). Its Python workers (``mapInArrow``
of the warehouse COPY) run this interpreter, so they import the same
``dvd_platform`` and pyarrow as the runs.

The launcher daemonizes the JVM; it is started in a session of its own, so its
process group holds the JVM, and ``stop`` ends that group and the Python workers
the JVM forked: nothing outlives ``stack down``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dvd_platform.dev.stack.java import server_java_env
from dvd_platform.dev.stack.procs import StackError, descendants, end_group, free_port, pid_alive, port_open, stop_pid

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
IDENT = "dvd"
#: A client that died without releasing its session (its cached frames) frees it after this long.
SESSION_TIMEOUT = "10min"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _pgid(pid: int | None) -> int | None:
    try:
        return os.getpgid(pid) if pid else None
    except ProcessLookupError:
        return None


@dataclass
class ConnectServer:
    """One Spark Connect server whose pid file, logs and conf dir live under ``base_dir``."""

    base_dir: Path
    port: int = 0
    pid: int | None = None
    pgid: int | None = None  # the launcher's session: the JVM and the Python workers it forks

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.base_dir / f"spark-{IDENT}-{SERVER_CLASS}-1.pid"

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "logs"

    def _env(self) -> dict[str, str]:
        conf_dir = self.base_dir / "conf"  # empty: no spark-defaults.conf of the machine's leaks in
        conf_dir.mkdir(parents=True, exist_ok=True)
        return {**os.environ, **server_java_env(os.environ),
                "SPARK_HOME": str(spark_home()), "SPARK_CONF_DIR": str(conf_dir),
                "SPARK_LOG_DIR": str(self.log_dir), "SPARK_PID_DIR": str(self.base_dir),
                "SPARK_IDENT_STRING": IDENT, "SPARK_LOCAL_IP": "127.0.0.1",
                "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}

    def start(self, conf: dict[str, str], timeout: float = 120) -> None:
        """Start on a free port with ``conf`` (``--conf`` each); wait until it accepts connections."""
        for attempt in range(3):
            self.port = free_port()
            self.pid_file.unlink(missing_ok=True)  # a stale one would make the launcher refuse to start
            settings = {**conf, "spark.connect.grpc.binding.address": "127.0.0.1",
                        "spark.connect.grpc.binding.port": str(self.port),
                        "spark.connect.session.manager.defaultSessionTimeout": SESSION_TIMEOUT}
            argv = [str(spark_home() / "sbin" / "start-connect-server.sh")]
            for key, value in settings.items():
                argv += ["--conf", f"{key}={value}"]
            launched = subprocess.run(argv, env=self._env(), capture_output=True, text=True, timeout=120,
                                      start_new_session=True)  # our own stop, not the terminal's Ctrl-C, ends it
            self.read_pid_file()
            if launched.returncode == 0 and self.pid and self._wait_ready(timeout):
                return
            self.stop()
        raise StackError(f"the Spark Connect server did not come up on 127.0.0.1:{self.port}; "
                         f"launcher: {launched.stdout[-1000:]}{launched.stderr[-1000:]}\nlog:\n{self.log_tail()}")

    def read_pid_file(self) -> None:
        """The JVM the launcher started, from its pid file (none: no JVM), and its process group."""
        self.pid = int(self.pid_file.read_text()) if self.pid_file.exists() else None
        self.pgid = _pgid(self.pid)

    def warm_up_in_background(self) -> int:
        """Start ``spark_warmup`` against this server, detached; returns its pid (see that module for why).
        Its output goes to ``logs/warmup.log``; whoever stops the server ends it too if it still runs
        (``stop_warm_up``: ``Stack.down``, the test run's ``shared_spark``), and it fails by itself once the
        server is gone."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / "warmup.log", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "dvd_platform.dev.stack.spark_warmup", self.url,
                                     str(self.base_dir)], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self._env(), start_new_session=True)
        return proc.pid

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(self.pid):
                return False
            if port_open(self.port):
                return True
            time.sleep(0.2)
        return False

    def log_tail(self) -> str:
        logs = sorted(self.log_dir.glob("*.out")) if self.log_dir.is_dir() else []
        return logs[-1].read_text(errors="replace")[-2000:] if logs else "(no log)"

    def stop(self) -> None:
        """SIGTERM to the JVM and its Python workers, SIGKILL to what is left after the grace time.

        pyspark's worker daemon moves itself and its workers to a process group of
        their own, so they are found as the JVM's descendants before it goes.
        """
        workers = descendants(self.pid)[1:] if self.pid and pid_alive(self.pid) else []
        if self.pgid is not None and self.pgid != os.getpgrp():  # never our own group
            end_group(self.pgid)
        for pid in workers:
            stop_pid(pid)
        self.pid_file.unlink(missing_ok=True)


def stop_warm_up(pid: int | None) -> None:
    """End a server's warm-up client if it still runs (it would retry a stopped server for minutes); a pid
    reused since by another process is left alone (where /proc cannot tell, the client ends by itself once
    its server is gone)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
    except OSError:
        return
    if b"spark_warmup" in cmdline:
        stop_pid(pid)
