"""Fix-ups: fact days that a load changed outside its own asset, made visible to Dagster.

A rental load completes the late payments of other days; a dimension load re-binds fact keys of
any day. The load SQL records each changed (fact, day) in ``dw_audit.pending_fixups`` inside the
load's transaction (``sql/009_pending_fixups.sql``). The loading asset then reports each as an
``AssetMaterialization`` of that fact partition, with the reason, so automation refreshes the marts
of those days, and only then deletes the rows it reported: a crash in between leaves them for the
next load of the same asset to report (reported twice at worst, never lost).
"""

from __future__ import annotations

from collections.abc import Iterator

from dagster import AssetMaterialization

from dvd_platform.resources.warehouse import WarehouseResource

PENDING = "SELECT asset, day, reason FROM dw_audit.pending_fixups WHERE changed_by = %s ORDER BY asset, day, reason"
REPORTED = "DELETE FROM dw_audit.pending_fixups WHERE changed_by = %s AND asset = %s AND day = %s AND reason = %s"


def report_fixups(warehouse: WarehouseResource, changed_by: str) -> Iterator[AssetMaterialization]:
    """Yield one materialization per fact day ``changed_by``'s loads changed, then forget those rows."""
    pending = warehouse.query(PENDING, (changed_by,))
    for asset, day, reason in pending:
        yield AssetMaterialization(asset_key=asset, partition=day.isoformat(),
                                   metadata={"reason": reason, "changed_by": changed_by})
    if pending:
        conn = warehouse.connect()
        try:
            with conn.cursor() as cur:
                cur.executemany(REPORTED, [(changed_by, *row) for row in pending])
            conn.commit()
        finally:
            conn.close()
