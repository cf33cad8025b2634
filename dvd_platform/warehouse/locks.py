"""The table locks a load declares (``LoadSpec.locks``) and the loader takes first, before its snapshot.

The rule they keep: a month swap of ``dw.fact_payment`` (``sql/008_swap_partitions.sql``)
drops the old partition's rows instead of deleting them, which a SERIALIZABLE transaction
cannot see. So every load that *writes* ``dw.fact_payment`` (its own load, the rental load
completing late payments, the dimension loads re-binding them) takes ROW EXCLUSIVE on it,
and a swap takes SHARE ROW EXCLUSIVE, which conflicts with it: a swap never overlaps another
writer. Every load that only *reads* it (the marts) takes ACCESS SHARE: a payment month
swapped in after its snapshot would look empty to it (its rows are all newer), so it waits
for a swap in progress (the detach holds ACCESS EXCLUSIVE until commit), or holds it off.

A lock taken after the snapshot protects nothing, so the loader takes the locks as the
first statements of each attempt of the load's transaction (``take``), before the load
SQL, which holds none. Several locks would be taken in the order of their tables' names,
the same in every load, so that two loads cannot wait for each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from psycopg2 import sql

#: PostgreSQL's table lock modes, weakest first.
MODES = ("ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE",
         "EXCLUSIVE", "ACCESS EXCLUSIVE")


@dataclass(frozen=True)
class Lock:
    """``LOCK TABLE <table> IN <mode> MODE``, held until the transaction ends."""

    table: str  # "schema.table"
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"{self.mode!r} is not a table lock mode: one of {', '.join(MODES)}")
        if self.table.count(".") != 1:
            raise ValueError(f"{self.table!r}: name a table as schema.table")

    def statement(self) -> sql.Composed:
        return sql.SQL("LOCK TABLE {} IN {} MODE").format(sql.Identifier(*self.table.split(".")), sql.SQL(self.mode))


#: Taken by every load that writes dw.fact_payment.
WRITES_FACT_PAYMENT = Lock("dw.fact_payment", "ROW EXCLUSIVE")
#: Taken by every load that reads dw.fact_payment without writing it.
READS_FACT_PAYMENT = Lock("dw.fact_payment", "ACCESS SHARE")
#: Taken by a month swap of a partitioned table instead of its writers' lock.
SWAP_MODE = "SHARE ROW EXCLUSIVE"


def with_swap(locks: Iterable[Lock], parent: str) -> tuple[Lock, ...]:
    """``locks`` with the swap's lock on ``parent`` in place of any other lock on it."""
    return (Lock(parent, SWAP_MODE), *(lock for lock in locks if lock.table != parent))


def take(cur, locks: Iterable[Lock]) -> None:
    """Take ``locks``, in the order of their tables' names (the first statements of a transaction)."""
    for lock in sorted(locks, key=lambda lock: lock.table):
        cur.execute(lock.statement())
