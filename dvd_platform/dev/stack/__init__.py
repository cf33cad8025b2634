"""The local stack: a real PostgreSQL cluster and a real S3 endpoint on loopback.

Used by ``dvd-platform stack up|down``, ``make up`` and the test-suite. When the
environment already names reachable services (``DVD_PG_DSN``,
``DVD_S3_ENDPOINT_URL``), nothing is started and those are used as they are.
"""

from typing import TYPE_CHECKING

__all__ = ["Stack", "StackError"]

if TYPE_CHECKING:
    from dvd_platform.dev.stack.stack import Stack, StackError


def __getattr__(name: str):
    """``Stack`` and ``StackError`` on first use (PEP 562). Why: ``stack.py`` imports Dagster and the platform's
    resources (about 1.2 s), and the light submodules (``procs``, ``spark_connect``) are imported through this
    package by processes that never start a stack: every pytest process loads the suite's conftest."""
    if name in __all__:
        from dvd_platform.dev.stack import stack

        return getattr(stack, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
