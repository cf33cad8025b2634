"""The OLTP source database the ``oltp_export`` asset reads (pagila-shaped PostgreSQL)."""

from __future__ import annotations

from dagster import ConfigurableResource

from dvd_platform.oltp.export import OltpDropSource


class OltpSource(ConfigurableResource):
    """Where the exporter reads: a DSN of a read-only role (``DVD_OLTP_DSN``).

    Read-only twice over: the role has SELECT grants only (and, in the local stack,
    ``default_transaction_read_only``), and every export transaction is READ ONLY.
    """

    dsn: str

    def drop_source(self) -> OltpDropSource:
        return OltpDropSource(self.dsn)
