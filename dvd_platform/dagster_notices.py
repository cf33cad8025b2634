"""Dagster's beta, preview and supersession notices, filtered in the processes the project starts.

Why: the platform uses a few Dagster APIs marked beta on purpose (the single-run backfill
policy, code references). Every process that loaded the definitions printed some 25 such
notices, burying the lines an operator needs. They say nothing anyone can act on while the
Dagster version is pinned, so they are filtered by category, and only they: deprecations
and every other warning still print.

Where: ``dvd_platform.definitions`` calls :func:`filter_dagster_notices` before it builds
anything, which covers each process that loads the code location (``dvd-platform
materialize``, the code server and run workers of ``dg dev``, ``dg check defs``);
``python -m dvd_platform.dagster_notices ARGS`` is ``dg ARGS`` with the filter, which is
how ``dvd-platform up`` starts ``dg dev`` (``dg`` loads some preview classes of its own);
the test suite filters the same categories in ``pyproject.toml``. ``PYTHONWARNINGS`` cannot
do it: it is read at interpreter start, before ``dagster`` can be imported to name the
categories.
"""

from __future__ import annotations

import runpy
import warnings


def filter_dagster_notices() -> None:
    """Ignore Dagster's BetaWarning, PreviewWarning and SupersessionWarning in this process."""
    from dagster import BetaWarning, PreviewWarning, SupersessionWarning

    for category in (BetaWarning, PreviewWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


if __name__ == "__main__":
    filter_dagster_notices()
    runpy.run_module("dagster_dg_cli.cli", run_name="__main__", alter_sys=True)
