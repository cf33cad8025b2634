"""A throw-away warehouse database on the session's server, for tests that must not touch the shared one."""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Iterator

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn


@contextmanager
def scratch_database(settings_env: dict[str, str], prefix: str) -> Iterator[dict[str, str]]:
    """DSNs (loader, analyst) of a new empty database with the schemas the stack gives the warehouse."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(settings_env["DVD_PG_ADMIN_DSN"])
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER dvd_loader").format(sql.Identifier(name)))
    try:
        db_admin = psycopg2.connect(make_dsn(settings_env["DVD_PG_ADMIN_DSN"], dbname=name))
        db_admin.autocommit = True
        with db_admin.cursor() as cur:
            for schema in ("dw", "dw_audit"):
                ident = sql.Identifier(schema)
                cur.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION dvd_loader").format(ident))
                cur.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO dvd_analyst").format(ident))
                cur.execute(
                    sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE dvd_loader IN SCHEMA {} GRANT SELECT ON TABLES TO dvd_analyst")
                    .format(ident)
                )
        db_admin.close()
        yield {
            "loader": make_dsn(settings_env["DVD_PG_DSN"], dbname=name),
            "analyst": make_dsn(settings_env["DVD_PG_ANALYST_DSN"], dbname=name),
        }
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
