"""A real PostgreSQL cluster in a directory of ours, on a free loopback port.

initdb and pg_ctl refuse to run as root, so as root the server runs as the
``postgres`` system user (``runuser``); the data directory is handed to it.
Host connections need a password (scram-sha-256); the passwords are generated
once per cluster and kept in a 0600 file next to the data directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from psycopg2 import sql

from dvd_platform.dev.stack.procs import StackError, free_port, pid_alive
from dvd_platform.settings import parse_env_file, write_env_file

WAREHOUSE_DB = "dvd_warehouse"
DAGSTER_DB = "dagster"
LOADER_ROLE = "dvd_loader"
ANALYST_ROLE = "dvd_analyst"
#: The OLTP source database (`dvd-platform oltp load-sample` creates it) and its read-only exporter role.
OLTP_DB = "dvd_oltp"
OLTP_READER_ROLE = "dvd_oltp_reader"
ROLES = ("postgres", LOADER_ROLE, ANALYST_ROLE, OLTP_READER_ROLE)

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found via pg_config, "
    "PATH or /usr/lib/postgresql/*/bin. Install them, e.g. `apt-get install -y postgresql-15` "
    "(Debian/Ubuntu), or set DVD_PG_DSN to a server you already run."
)


def find_pg_bindir() -> Path:
    """Locate the directory holding initdb/pg_ctl, newest major version first."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise StackError(INSTALL_HINT)


def dsn(*, user: str, password: str, port: int, dbname: str, host: str = "127.0.0.1") -> str:
    """A libpq URI (no spaces, so stack.env stays sourceable by a shell); passwords are URL-safe tokens."""
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}"


@dataclass
class LocalPostgres:
    """One cluster under ``base_dir`` (``data/``, ``server.log``, socket, secrets)."""

    base_dir: Path
    data_dir: Path = field(init=False)  # the cluster (initdb's -D)
    secrets_file: Path = field(init=False)  # the roles' passwords, 0600

    def __post_init__(self) -> None:
        self.data_dir, self.secrets_file = self.base_dir / "data", self.base_dir / "secrets.env"

    # -- process ----------------------------------------------------------------

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StackError(
                "running as root, PostgreSQL must run as the 'postgres' user, which does not exist; "
                "`apt-get install -y postgresql-15` creates it"
            ) from exc
        return ["runuser", "-u", "postgres", "--", *argv]

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess:
        result = subprocess.run(self._as_server_user(argv), capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"{' '.join(argv[:2])} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def _hand_to_server_user(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (ValueError, IndexError, OSError):
            return None
        return pid if pid_alive(pid) else None

    def _secrets(self) -> dict[str, str]:
        """The roles' passwords; a cluster made before a role existed gets its password added."""
        values = parse_env_file(self.secrets_file) if self.secrets_file.exists() else {}
        missing = [role for role in ROLES if role not in values]
        if missing:
            values.update({role: secrets.token_urlsafe(18) for role in missing})
            write_env_file(self.secrets_file, values)
        return values

    def init(self) -> None:
        """initdb once; a later ``start`` reuses the cluster and its data."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        bindir = find_pg_bindir()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o755)
        self._hand_to_server_user(self.base_dir)
        if os.geteuid() == 0 and subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.base_dir)]).returncode:
            raise StackError(
                f"the 'postgres' user cannot reach {self.base_dir}: a parent directory is not searchable by others "
                "(chmod o+x it, or set DVD_STATE_DIR to a path under a world-searchable directory)"
            )
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self._secrets()["postgres"] + "\n")
        self._hand_to_server_user(pwfile)
        try:
            self._run([
                str(bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                "-E", "UTF8", "--locale=C.UTF-8",
            ])
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, port: int | None = None, server_options: dict[str, str] | None = None) -> int:
        """Start the server on ``port`` (a free one if None); returns the port."""
        self.init()
        if self.postmaster_pid():
            raise StackError(f"a server already runs on {self.data_dir}; run `dvd-platform stack down` first")
        bindir = find_pg_bindir()
        options = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.base_dir)}
        options.update(server_options or {})
        for attempt in range(3):
            chosen = port or free_port()
            opts = " ".join(f"-c {k}={v}" for k, v in {**options, "port": str(chosen)}.items())
            try:
                self._run([
                    str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.base_dir / "server.log"),
                    "-w", "-t", "60", "-o", opts, "start",
                ])
                return chosen
            except StackError:
                # The free port may have been taken between choosing and binding.
                if port is not None or attempt == 2:
                    log = self.base_dir / "server.log"
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    raise StackError(f"PostgreSQL did not start on port {chosen}; server.log:\n{tail}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if not self.postmaster_pid():
            return
        self._run([str(find_pg_bindir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    # -- databases and roles ------------------------------------------------------

    def bootstrap(self, port: int) -> dict[str, str]:
        """Create the warehouse database, the loader (owner), the read-only analyst and the OLTP reader.

        Idempotent; returns the DSNs for the stack file.
        """
        pw = self._secrets()
        admin = dsn(user="postgres", password=pw["postgres"], port=port, dbname="postgres")
        conn = psycopg2.connect(admin)
        conn.autocommit = True
        with conn.cursor() as cur:
            for role in (LOADER_ROLE, ANALYST_ROLE, OLTP_READER_ROLE):
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                statement = "ALTER ROLE {} LOGIN PASSWORD %s" if cur.fetchone() else "CREATE ROLE {} LOGIN PASSWORD %s"
                cur.execute(sql.SQL(statement).format(sql.Identifier(role)), (pw[role],))
            # The exporter only reads: every transaction of its role is read-only (SELECT grants come with the data).
            cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on")
                        .format(sql.Identifier(OLTP_READER_ROLE)))
            for db in (WAREHOUSE_DB, DAGSTER_DB):
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
                if not cur.fetchone():
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(LOADER_ROLE)))
        conn.close()

        conn = psycopg2.connect(dsn(user="postgres", password=pw["postgres"], port=port, dbname=WAREHOUSE_DB))
        conn.autocommit = True
        loader, analyst = sql.Identifier(LOADER_ROLE), sql.Identifier(ANALYST_ROLE)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(WAREHOUSE_DB)))
            cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(WAREHOUSE_DB), analyst))
            cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            for schema in ("dw", "dw_audit"):
                ident = sql.Identifier(schema)
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(ident, loader))
                cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, analyst))
                cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(ident, analyst))
                cur.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
                        loader, ident, analyst
                    )
                )
        conn.close()
        return {
            "DVD_PG_DSN": dsn(user=LOADER_ROLE, password=pw[LOADER_ROLE], port=port, dbname=WAREHOUSE_DB),
            "DVD_PG_ANALYST_DSN": dsn(user=ANALYST_ROLE, password=pw[ANALYST_ROLE], port=port, dbname=WAREHOUSE_DB),
            "DVD_PG_ADMIN_DSN": dsn(user="postgres", password=pw["postgres"], port=port, dbname=WAREHOUSE_DB),
            "DVD_DAGSTER_PG_URL": dsn(user=LOADER_ROLE, password=pw[LOADER_ROLE], port=port, dbname=DAGSTER_DB),
            "DVD_OLTP_DSN": dsn(user=OLTP_READER_ROLE, password=pw[OLTP_READER_ROLE], port=port, dbname=OLTP_DB),
        }
