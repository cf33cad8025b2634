"""How a load replaces its window inside its transaction: one statement, or a month swap.

Each returns ``run(cursor) -> rows loaded``, called once per attempt of the load's
SERIALIZABLE transaction after the loader has taken the load's locks (``locks.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from psycopg2 import sql

from dvd_platform.warehouse.stage import STAGE_SCHEMA
from dvd_platform.warehouse.window import Window

Replace = Callable[[object], int]


def statement_runner(statement: sql.Composable, window: Window) -> Replace:
    """Replace the window with one statement; the rows it reports loaded (its last SELECT, or its row count)."""
    def run(cur) -> int:
        cur.execute(statement, window.params)
        return cur.fetchone()[0] if cur.description else cur.rowcount
    return run


def month_swapper(template: sql.SQL, stage: sql.Identifier, parent: str, window: Window,
                  lock_timeout_seconds: float) -> Replace:
    """Replace whole months by partition swap, partial months by the template run on the parent.

    The swap drops the old partition's rows rather than deleting them, so the loader first,
    before the transaction's snapshot, locks out every other writer of the parent
    (``locks.with_swap``) until commit. The new months are all built before the first
    detach, which locks out readers of the parent until commit.
    """
    parent_schema, parent_table = parent.split(".")
    parent_ident = sql.Identifier(parent_schema, parent_table)
    pieces = window.months()

    def run(cur) -> int:
        loaded, replacements = 0, []
        for piece, whole in pieces:
            if whole:
                name = f"{parent_table}_p{piece.first_day:%Y_%m}"  # the partition's own name, in the stage schema
                replacement = sql.Identifier(STAGE_SCHEMA, name)
                cur.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(replacement, parent_ident))
                cur.execute(template.format(stage=stage, target=replacement), piece.params)
                replacements.append(f"{STAGE_SCHEMA}.{name}")
            else:
                cur.execute(template.format(stage=stage, target=parent_ident), piece.params)
            loaded += cur.fetchone()[0]
        if replacements:
            cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(lock_timeout_seconds * 1000)}ms",))
            cur.execute("SELECT dw.swap_partitions(%s::regclass, %s::regclass[])", (parent, replacements))
        return loaded
    return run


def has_whole_month(window: Window) -> bool:
    """Whether a month swap of ``window`` swaps any partition (else it only runs the template)."""
    return any(whole for _, whole in window.months())
