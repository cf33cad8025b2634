"""The local stack: a real PostgreSQL cluster and a real S3 endpoint on loopback.

Used by ``dvd-platform stack up|down``, ``make up`` and the test-suite. When the
environment already names reachable services (``DVD_PG_DSN``,
``DVD_S3_ENDPOINT_URL``), nothing is started and those are used as they are.
"""

from dvd_platform.dev.stack.stack import Stack, StackError

__all__ = ["Stack", "StackError"]
