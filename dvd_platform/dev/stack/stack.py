"""``Stack``: bring the local services up or down and write ``stack.env``."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from dvd_platform import settings
from dvd_platform.resources.s3 import s3_client
from dvd_platform.resources.spark import REMOTE_ENV, SparkResource
from dvd_platform.resources.thresholds import CheckThresholds
from dvd_platform.dev.stack.postgres import LocalPostgres
from dvd_platform.dev.stack.procs import StackError, pid_alive, stop_pid
from dvd_platform.dev.stack.s3 import MotoServer, ensure_buckets
from dvd_platform.dev.stack.spark_connect import ConnectServer, stop_warm_up

__all__ = ["Stack", "StackError"]

#: Events per batch Dagster stores at once (see DAGSTER_EVENT_BATCH_SIZE in settings.ENV_VARS).
EVENT_BATCH_SIZE = "1000"
#: The Spark settings a stack writes when the environment has none: a local master on this machine's two cores.
SPARK_DEFAULTS = {"DVD_SPARK_MASTER": "local[2]", "DVD_SPARK_DRIVER_MEMORY": "2g", "DVD_SPARK_SHUFFLE_PARTITIONS": "4"}


def connect_server_conf(values: dict[str, str]) -> dict[str, str]:
    """The platform's Spark Connect server settings for a stack's ``DVD_SPARK_*`` values (``SPARK_DEFAULTS``)."""
    resource = SparkResource(master=values["DVD_SPARK_MASTER"], driver_memory=values["DVD_SPARK_DRIVER_MEMORY"],
                             shuffle_partitions=int(values["DVD_SPARK_SHUFFLE_PARTITIONS"]))
    return resource.server_config()


def _check_postgres(dsn: str) -> None:
    try:
        psycopg2.connect(dsn, connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        # libpq's message names host and port, never the password.
        raise StackError(f"DVD_PG_DSN is set but the server is not reachable: {str(exc).strip()}") from exc


@dataclass
class Stack:
    """The services one project checkout (or one test session) uses.

    ``state_dir`` holds the Postgres cluster, logs, ``stack.json`` (what *this*
    stack started, so ``down`` stops exactly that) and ``stack.env``.

    With ``spark_connect`` it also starts a Spark Connect server and writes its URL
    as ``DVD_SPARK_REMOTE``: runs then attach to that warm JVM instead of starting
    their own (``dvd-platform stack up`` and ``up`` do; tests and benchmarks choose).
    ``spark_connect_conf`` adds server settings (e.g. Spark's event log).
    """

    state_dir: Path = field(default_factory=settings.state_dir)
    pg_server_options: dict[str, str] = field(default_factory=dict)
    spark_connect: bool = False
    spark_connect_conf: dict[str, str] = field(default_factory=dict)

    @property
    def env_file(self) -> Path:
        return self.state_dir / "stack.env"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def dagster_home(self) -> Path:
        """The local Dagster instance, used unless the environment names another DAGSTER_HOME."""
        return self.state_dir / "dagster_home"

    @property
    def postgres(self) -> LocalPostgres:
        return LocalPostgres(self.state_dir / "pg")

    def _connect_server(self, state: dict) -> ConnectServer:
        saved = state.get("spark_connect", {})
        return ConnectServer(self.state_dir / "spark-connect", saved.get("port", 0), saved.get("pid"), saved.get("pgid"))

    def _read_state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _write_state(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2))

    def up(self, environ: dict[str, str] | None = None) -> dict[str, str]:
        """Start what the environment does not already provide; return the settings.

        Idempotent: a second ``up`` on a running stack returns its settings.
        """
        environ = dict(os.environ if environ is None else environ)
        if self.env_file.exists() and self.is_running():
            return settings.parse_env_file(self.env_file)
        self.down()  # clear a stale state left by a killed session
        state: dict = {}
        defaults = CheckThresholds()
        values: dict[str, str] = {
            "DVD_LANDING_BUCKET": environ.get("DVD_LANDING_BUCKET", settings.DEFAULT_LANDING_BUCKET),
            "DVD_LAKE_BUCKET": environ.get("DVD_LAKE_BUCKET", settings.DEFAULT_LAKE_BUCKET),
            "DVD_LAKE_ROOT": environ.get("DVD_LAKE_ROOT", str(self.state_dir / "lake")),
            "DVD_STAGING_DIR": environ.get("DVD_STAGING_DIR", str(self.state_dir / "staging")),
            "DAGSTER_HOME": environ.get("DAGSTER_HOME", str(self.dagster_home)),
            # Dagster then stores a run's planned events and a range step's materializations in batches
            # (dvd_platform/event_log_storage.py): a whole-pagila run plans 7,889 before its first step.
            "DAGSTER_EVENT_BATCH_SIZE": environ.get("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE),
            **{key: environ.get(key, default) for key, default in SPARK_DEFAULTS.items()},
            # The code location reads the check thresholds with EnvVar, which has no default: write them.
            "DVD_QUARANTINE_ERROR_RATIO": environ.get("DVD_QUARANTINE_ERROR_RATIO", defaults.quarantine_error_ratio),
            "DVD_FRESHNESS_LAG_DAYS": environ.get("DVD_FRESHNESS_LAG_DAYS", str(defaults.freshness_lag_days)),
        }
        try:
            if environ.get("DVD_PG_DSN"):
                _check_postgres(environ["DVD_PG_DSN"])
                for key in ("DVD_PG_DSN", "DVD_PG_ANALYST_DSN", "DVD_PG_ADMIN_DSN", "DVD_DAGSTER_PG_URL", "DVD_OLTP_DSN"):
                    if environ.get(key):
                        values[key] = environ[key]
            else:
                pg = self.postgres
                port = pg.start(server_options=self.pg_server_options)
                state["postgres"] = {"base_dir": str(pg.base_dir), "port": port}
                self._write_state(state)
                values.update(pg.bootstrap(port))

            self._s3_up(environ, state, values)
            if environ.get(REMOTE_ENV):
                values[REMOTE_ENV] = environ[REMOTE_ENV]
            elif self.spark_connect:
                values[REMOTE_ENV] = self._start_connect_server(state, values)
        except BaseException:
            self.down()
            raise
        for key in ("DVD_LAKE_ROOT", "DVD_STAGING_DIR", "DAGSTER_HOME"):
            if "://" not in values[key]:
                Path(values[key]).mkdir(parents=True, exist_ok=True)
        if Path(values["DAGSTER_HOME"]).resolve() == self.dagster_home.resolve():
            # The project's dagster.yaml is the template of the local instance and Dagster reads only
            # this copy; an instance the environment names keeps its own configuration.
            shutil.copyfile(settings.PROJECT_ROOT / "dagster.yaml", self.dagster_home / "dagster.yaml")
        settings.write_env_file(self.env_file, values)
        return values

    def _s3_up(self, environ: dict[str, str], state: dict, values: dict[str, str]) -> None:
        """The S3 endpoint the environment names, else a moto server of ours; then the two buckets."""
        if environ.get("DVD_S3_ENDPOINT_URL") or environ.get("AWS_ACCESS_KEY_ID"):
            values["DVD_S3_ENDPOINT_URL"] = environ.get("DVD_S3_ENDPOINT_URL", "")
            client = s3_client(values["DVD_S3_ENDPOINT_URL"] or None)
        else:
            moto = MotoServer(self.state_dir / "s3.log")
            moto.start()
            state["s3"] = {"pid": moto.pid, "port": moto.port}
            self._write_state(state)
            values.update({
                "DVD_S3_ENDPOINT_URL": moto.endpoint_url,
                "AWS_ACCESS_KEY_ID": "dvdlocal",
                "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(18),
                "AWS_DEFAULT_REGION": "us-east-1",
            })
            client = s3_client(moto.endpoint_url, values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"])
        ensure_buckets(client, [values["DVD_LANDING_BUCKET"], values["DVD_LAKE_BUCKET"]])

    def _start_connect_server(self, state: dict, values: dict[str, str]) -> str:
        """Start the Spark Connect server with the platform's server settings; returns its URL."""
        server = self._connect_server({})
        try:
            server.start({**connect_server_conf(values), **self.spark_connect_conf})
            warmup = server.warm_up_in_background()
        finally:
            state["spark_connect"] = {"pid": server.pid, "port": server.port, "pgid": server.pgid}
            self._write_state(state)
        state["spark_connect"]["warmup_pid"] = warmup
        self._write_state(state)
        return server.url

    def is_running(self) -> bool:
        """True when everything this stack started is still alive."""
        state = self._read_state()
        if not state:
            return False
        ok = True
        if "postgres" in state:
            ok &= LocalPostgres(Path(state["postgres"]["base_dir"])).postmaster_pid() is not None
        if "s3" in state:
            ok &= pid_alive(state["s3"]["pid"])
        if "spark_connect" in state:
            ok &= bool(state["spark_connect"]["pid"]) and pid_alive(state["spark_connect"]["pid"])
        return ok

    def pids(self) -> list[int]:
        """Process ids of the servers this stack started (for leak checks)."""
        state = self._read_state()
        pids = []
        if "postgres" in state and (pid := LocalPostgres(Path(state["postgres"]["base_dir"])).postmaster_pid()):
            pids.append(pid)
        if "s3" in state and pid_alive(state["s3"]["pid"]):
            pids.append(state["s3"]["pid"])
        if "spark_connect" in state and state["spark_connect"]["pid"] and pid_alive(state["spark_connect"]["pid"]):
            pids.append(state["spark_connect"]["pid"])
        return pids

    def stop_warm_up(self) -> None:
        """End the Connect server's warm-up client now, if it still runs (so the server's first work is the
        caller's: the benchmarks' cold case)."""
        stop_warm_up(self._read_state().get("spark_connect", {}).get("warmup_pid"))

    def wait_for_warm_up(self, timeout: float) -> str:
        """Wait until the Connect server's warm-up client has ended; returns its log (``warmup.log``).
        ``TimeoutError`` when it still runs after ``timeout`` seconds."""
        state = self._read_state()
        pid = state["spark_connect"]["warmup_pid"]
        deadline = time.monotonic() + timeout
        while pid_alive(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the warm-up client {pid} still runs after {timeout} s")
            time.sleep(0.2)
        return (self._connect_server(state).log_dir / "warmup.log").read_text(errors="replace")

    def down(self) -> None:
        """Stop what ``up`` started; keep the data (the Postgres cluster) for next time."""
        state = self._read_state()
        errors = []
        if "spark_connect" in state:
            stop_warm_up(state["spark_connect"].get("warmup_pid"))
            self._connect_server(state).stop()
        if "s3" in state:
            stop_pid(state["s3"]["pid"])
        if "postgres" in state:
            try:
                LocalPostgres(Path(state["postgres"]["base_dir"])).stop()
            except StackError as exc:
                errors.append(str(exc))
        self.state_file.unlink(missing_ok=True)
        self.env_file.unlink(missing_ok=True)
        if errors:
            raise StackError("; ".join(errors))

