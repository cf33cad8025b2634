"""Run a selection of assets over a day range, in one process, through Dagster.

This is what ``dvd-platform materialize`` and the tests use: the same
definitions, IO managers and checks as a run launched from the UI, with the
partition range passed as the run's range tags (a single-run backfill).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from dagster import AssetSelection, DagsterInstance, DagsterEventType, Definitions, ExecuteInProcessResult

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
SOURCE_GROUP = "source"


@dataclass
class RunSummary:
    result: ExecuteInProcessResult
    materialized: dict[str, int] = field(default_factory=dict)  # asset -> partitions materialized
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)  # "asset:check" -> (passed, severity)
    failed_steps: list[str] = field(default_factory=list)

    @property
    def failed_blocking_checks(self) -> list[str]:
        return [name for name, (passed, severity) in self.checks.items() if not passed and severity == "ERROR"]

    @property
    def ok(self) -> bool:
        return self.result.success and not self.failed_steps and not self.failed_blocking_checks

    def lines(self) -> list[str]:
        out = [f"  {asset:32s} {count:5d} partition(s) materialized" for asset, count in sorted(self.materialized.items())]
        for name, (passed, severity) in sorted(self.checks.items()):
            out.append(f"  check {name:54s} {'passed' if passed else 'FAILED'} ({severity})")
        out += [f"  step {step} FAILED" for step in self.failed_steps]
        return out


def materialize_range(
    defs: Definitions,
    start: date,
    end: date,
    selection: str | AssetSelection | None = None,
    instance: DagsterInstance | None = None,
    tags: dict[str, str] | None = None,
) -> RunSummary:
    """Materialize ``selection`` for days ``start``..``end`` in one run.

    The default is every asset from landing on: the ``source`` group (the OLTP export,
    off by default) runs only when selected, so a default run never replaces file drops.
    """
    job = defs.resolve_implicit_global_asset_job_def()
    asset_graph = defs.resolve_asset_graph()
    if selection is None:
        sources = AssetSelection.groups(SOURCE_GROUP).resolve(asset_graph)
        keys = [k for k in asset_graph.materializable_asset_keys if k not in sources]
    else:
        sel = AssetSelection.from_string(selection) if isinstance(selection, str) else selection
        keys = list(sel.resolve(asset_graph))
    run_tags = {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat(), **(tags or {})}
    result = job.execute_in_process(
        asset_selection=keys, instance=instance, tags=run_tags, raise_on_error=False
    )
    summary = RunSummary(result)
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            name = event.asset_key.to_user_string()
            summary.materialized[name] = summary.materialized.get(name, 0) + 1
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            passed = summary.checks.get(name, (True, ""))[0] and evaluation.passed
            summary.checks[name] = (passed, evaluation.severity.value)
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            summary.failed_steps.append(event.step_key)
    return summary
