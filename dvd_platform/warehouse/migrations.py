"""Versioned SQL migrations for the warehouse (``sql/NNN_name.sql``, shipped as package data).

Why our own small runner: the schema is plain SQL reviewed as such, and every
loader run applies pending migrations before it writes, so several runs starting
at once (backfills) must not race. The runner therefore

* takes a session-level ``pg_advisory_lock`` for the whole run, so concurrent
  callers queue up and the later ones find nothing left to do;
* applies each pending file in its own transaction together with its row in
  ``dw_audit.schema_migrations``, so a failed file leaves neither half-applied
  DDL nor a record claiming it ran (PostgreSQL DDL is transactional);
* stores a sha256 of each file and refuses to continue when an applied file was
  edited afterwards: the database would silently differ from what the file says,
  and the fix is a new migration, not an edit.

Migrations are meant to run as the loader role (``DVD_PG_DSN``), which owns the
``dw`` and ``dw_audit`` schemas, so that the analyst's default privileges (granted
for objects the loader creates) apply to the new tables.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg2
import psycopg2.extensions

from dvd_platform.package_files import SQL_DIR

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["MigrationError", "Migration", "apply_migrations", "discover_migrations", "SQL_DIR"]

log = logging.getLogger(__name__)

#: ``NNN_lower_snake.sql``; ASCII digits only (``\d`` would accept other scripts' digits).
MIGRATION_NAME = re.compile(r"[0-9]{3}_[a-z0-9_]+\.sql", re.ASCII)

#: Key of the session advisory lock serializing runners (within one database:
#: advisory locks are scoped to the current database). An arbitrary constant,
#: distinct from hashtext() values of partition parents by being 64-bit.
ADVISORY_LOCK_KEY = 0x6476645F6D696772  # "dvd_migr"

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS dw_audit.schema_migrations (
    version     text PRIMARY KEY,
    name        text,
    checksum    text,
    applied_at  timestamptz DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations cannot be applied as they are (bad file, edited file, failing SQL)."""


@dataclass(frozen=True)
class Migration:
    """One migration file: its version (``"001"``), file name, SQL text and sha256."""

    version: str
    name: str
    path: Traversable  # a pathlib.Path for a package on disk, as installed or in a checkout
    sql: str
    checksum: str


def discover_migrations(sql_dir: Traversable = SQL_DIR) -> list[Migration]:
    """The migration files at the top level of ``sql_dir``, in version order.

    Only the top level holds migrations; subfolders (e.g. ``sql/oltp/``, source
    DDL used by tests) are ignored whatever their content. A top-level file with
    a malformed name is an error rather than skipped, because a skipped
    ``01_fix.sql`` or ``002-add-index.sql`` would silently never run. Hidden
    files (editor swap files, ``.gitkeep``) are not migrations and are ignored.
    """
    if not sql_dir.is_dir():
        raise MigrationError(f"migration directory {sql_dir} does not exist")
    migrations: dict[str, Migration] = {}
    for path in sorted(sql_dir.iterdir(), key=lambda entry: entry.name):
        if path.is_dir() or path.name.startswith("."):
            continue
        if not MIGRATION_NAME.fullmatch(path.name):
            raise MigrationError(
                f"{path}: not a valid migration file name (expected NNN_lower_snake_name.sql, e.g. "
                f"007_add_index.sql); move non-migration files into a subfolder of {sql_dir}"
            )
        data = path.read_bytes()
        version = path.name[:3]
        if version in migrations:
            raise MigrationError(
                f"{path}: version {version} is also used by {migrations[version].path.name}; versions must be unique"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MigrationError(f"{path}: not UTF-8 text ({exc})") from exc
        migrations[version] = Migration(version, path.name, path, text, hashlib.sha256(data).hexdigest())
    return [migrations[v] for v in sorted(migrations)]


def apply_migrations(
    conn_or_dsn: psycopg2.extensions.connection | str, sql_dir: Traversable = SQL_DIR
) -> list[str]:
    """Apply the pending migrations of ``sql_dir``; return the versions applied, in order.

    ``conn_or_dsn`` is a libpq DSN (a connection is opened and closed here) or an
    open psycopg2 connection with no transaction in progress (its autocommit
    setting is restored afterwards; it is left open). Raises
    :class:`MigrationError` for a malformed or duplicated file name, an applied
    file whose checksum changed, or a file whose SQL fails (that file is rolled
    back; the ones before it stay applied).
    """
    migrations = discover_migrations(sql_dir)  # validate files before touching the database

    own_conn = isinstance(conn_or_dsn, str)
    conn = psycopg2.connect(conn_or_dsn) if own_conn else conn_or_dsn
    if not own_conn and conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        # Committing per migration would also commit (or roll back) the caller's work.
        raise MigrationError("apply_migrations needs a connection without a transaction in progress")
    saved_autocommit = conn.autocommit
    locked = False
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            # Blocks until a concurrent runner finishes; held across our transactions.
            cur.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
            locked = True
            # Under the lock, so two first-time runners do not race on CREATE TABLE.
            cur.execute(_CREATE_LEDGER)
            pending = _pending(cur, migrations, sql_dir)
        conn.autocommit = False
        for migration in pending:
            _apply(conn, migration)
        return [migration.version for migration in pending]
    finally:
        _release(conn, locked, saved_autocommit, own_conn)


def _pending(cur, migrations: list[Migration], sql_dir: Traversable) -> list[Migration]:
    """The migrations not applied yet, after checking that the applied ones were not edited since."""
    cur.execute("SELECT version, name, checksum FROM dw_audit.schema_migrations")
    applied = {version: (name, checksum) for version, name, checksum in cur.fetchall()}
    pending: list[Migration] = []
    for migration in migrations:
        if migration.version not in applied:
            pending.append(migration)
            continue
        name, checksum = applied[migration.version]
        if checksum != migration.checksum:
            raise MigrationError(
                f"{migration.path}: migration {migration.version} was applied as {name} with checksum "
                f"{checksum} but the file's sha256 is now {migration.checksum}; applied migrations must "
                "not be edited: revert the file and add a new migration instead"
            )
    unknown = sorted(set(applied) - {m.version for m in migrations})
    if unknown:
        log.warning("database has migrations with no file in %s: %s (older code?)", sql_dir, ", ".join(unknown))
    return pending


def _apply(conn, migration: Migration) -> None:
    """Apply one migration and record it, in one transaction (rolled back if its SQL fails)."""
    try:
        with conn.cursor() as cur:
            # No parameters: psycopg2 leaves '%' in the SQL alone (format('%I') etc.).
            cur.execute(migration.sql)
            cur.execute(
                "INSERT INTO dw_audit.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
        conn.commit()
    except psycopg2.Error as exc:
        conn.rollback()
        raise MigrationError(f"{migration.path}: migration failed and was rolled back: {exc}".rstrip()) from exc
    log.info("applied migration %s", migration.name)


def _release(conn, locked: bool, saved_autocommit: bool, own_conn: bool) -> None:
    """Roll back what is open, release the advisory lock, restore autocommit; close a connection we opened."""
    if conn.closed:
        return
    try:
        if conn.info.transaction_status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            conn.rollback()
        if locked:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
        conn.autocommit = saved_autocommit
    except psycopg2.Error:
        log.warning("could not release the migration lock cleanly", exc_info=True)
    finally:
        if own_conn:
            conn.close()
