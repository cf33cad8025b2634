"""Names the runtime and its launchers share: run tags, the source group, the code location module.

Runtime modules (sensors, checks, assets) import them from here, never from ``runner.py``
(the CLI's launcher), so the code location does not depend on how runs are launched.
"""

from __future__ import annotations

#: The tags of a single-run backfill over a partition range (Dagster's own names).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
#: The asset group of the source connectors (the OLTP export).
SOURCE_GROUP = "source"
DEFINITIONS_MODULE = "dvd_platform.definitions"
#: Every asset from landing on: the ``source`` group (the OLTP export, off by default) runs only when
#: selected, so a default run never replaces file drops.
DEFAULT_SELECTION = f"not group:{SOURCE_GROUP}"
