"""The thresholds of the data-quality checks, as a resource: set per deployment, like a DSN.

A resource rather than ``os.environ`` reads inside the checks, so that the values a run used
are its configuration (``definitions.py`` binds them to ``DVD_QUARANTINE_ERROR_RATIO`` and
``DVD_FRESHNESS_LAG_DAYS`` with ``EnvVar``, resolved when a run starts) and a test passes its
own without touching the environment. The defaults here are the ones ``stack up`` writes to
``stack.env``.
"""

from __future__ import annotations

from dagster import ConfigurableResource


class CheckThresholds(ConfigurableResource):
    # Text, because Dagster resolves an EnvVar only into str (and int) fields; read as quarantine_ratio.
    quarantine_error_ratio: str = "0.05"  # quarantined / read rows of a day above which quarantine_ratio is an ERROR
    freshness_lag_days: int = 2  # days the newest loaded payment day may lag today before freshness warns

    @property
    def quarantine_ratio(self) -> float:
        return float(self.quarantine_error_ratio)
