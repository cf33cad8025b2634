"""The per-load stage tables in ``dw_stage``: created, validated, dropped, and swept when abandoned.

Spark's executors COPY a load's rows into an UNLOGGED stage table named per load, and
record each finished COPY in a ledger table beside it (``<stage>_parts``, see
``copy_in.py``). The load holds a session-level advisory lock named after its stage for
its whole life (released when its connection ends, also when its process is killed), so
a stage whose lock is free belongs to a dead load, and the next load drops it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from dvd_platform.warehouse.copy_in import PART_COLUMN
from dvd_platform.warehouse.errors import WarehouseLoadError
from dvd_platform.warehouse.window import Window

STAGE_SCHEMA = "dw_stage"  # owned by the loader; UNLOGGED per-load tables only
STAGE_LOCK_CLASS = 4_711_001  # advisory-lock namespace of live stage tables (first key of the pair)


@dataclass(frozen=True)
class Stage:
    """One load's stage table and its ledger."""

    name: str

    @classmethod
    def new(cls, asset: str) -> Stage:
        return cls(f"{asset}_{uuid.uuid4().hex[:12]}")

    @property
    def ledger_name(self) -> str:
        return f"{self.name}_parts"

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(STAGE_SCHEMA, self.name)

    @property
    def ledger(self) -> sql.Identifier:
        return sql.Identifier(STAGE_SCHEMA, self.ledger_name)

    def create(self, cur, columns: tuple[tuple[str, str], ...]) -> None:
        """Take the stage's advisory lock, sweep abandoned stages, and create the stage and its ledger."""
        # Held for the whole load (session level, released when this connection ends, also
        # when the process is killed): a stage whose lock is free belongs to a dead load.
        cur.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (STAGE_LOCK_CLASS, self.name))
        drop_abandoned_stages(cur)
        cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({}, {} int NOT NULL)").format(
            self.table, sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns),
            sql.Identifier(PART_COLUMN)))
        cur.execute(sql.SQL("CREATE UNLOGGED TABLE {} (part int PRIMARY KEY, attempts int NOT NULL DEFAULT 1)")
                    .format(self.ledger))

    def count(self, cur) -> int:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(self.table))
        return cur.fetchone()[0]

    def check_window(self, cur, time_column: str, window: Window, asset: str) -> None:
        """Rows outside the window would survive the window's delete: refuse them, naming the days."""
        cur.execute(
            sql.SQL("SELECT min({c}), max({c}), count(*) FROM {s} WHERE {c} < %(window_start)s OR {c} >= %(window_end)s")
            .format(c=sql.Identifier(time_column), s=self.table),
            window.params,
        )
        low, high, n = cur.fetchone()
        if n:
            raise WarehouseLoadError(
                f"{asset} for {window}: {n} row(s) have {time_column} outside the partition "
                f"(from {low} to {high}); the warehouse was not changed"
            )

    def drop(self, conn) -> None:
        """Drop the stage and its ledger; a lost server leaves them to the next load's sweep."""
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(self.table, self.ledger))
            conn.commit()
        except psycopg2.Error:
            pass  # the server went away: the next load drops the abandoned stage (its lock is free)


def drop_abandoned_stages(cur) -> None:
    """Drop stage tables left by loads that died (SIGKILL, lost server): their advisory lock is free.

    A live load holds its lock, so ``pg_try_advisory_lock`` fails for it and its
    tables are left alone. Ledger tables go with their stage (``<stage>_parts``).
    """
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename NOT LIKE '%%\\_parts'",
                (STAGE_SCHEMA,))
    for (name,) in cur.fetchall():
        cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (STAGE_LOCK_CLASS, name))
        if cur.fetchone()[0]:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(
                sql.Identifier(STAGE_SCHEMA, name), sql.Identifier(STAGE_SCHEMA, f"{name}_parts")))
            cur.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (STAGE_LOCK_CLASS, name))
