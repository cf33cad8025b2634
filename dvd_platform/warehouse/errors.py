"""What a load or a connection to the warehouse raises."""

from __future__ import annotations


class WarehouseLoadError(RuntimeError):
    """A load failed; the message names the asset and partition range. The warehouse is unchanged."""


class WarehouseConnectionError(WarehouseLoadError):
    """Connecting failed for a reason a retry cannot fix (bad password, unknown database or role, ...)."""


class WarehouseUnavailable(WarehouseConnectionError):
    """The server could not be reached after retries (a transient fault outlasted the retry policy)."""
