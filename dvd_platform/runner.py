"""Run a selection of assets over a day range as one run, through Dagster.

Two ways in, the same run: ``launch_range`` is ``dvd-platform materialize``, a thin wrapper over
Dagster's own ``dg launch --partition-range``; ``materialize_range`` is the in-process API the
tests use (``execute_in_process``: its result keeps the events in memory). Both pass the range as
the run's range tags (a single-run backfill) and run every step in the calling process (the code
location's in-process executor), one step per asset for the whole range.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import click
from dagster import (
    AssetKey,
    AssetSelection,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    ExecuteInProcessResult,
    RunsFilter,
)

from dvd_platform.tags import DEFAULT_SELECTION, DEFINITIONS_MODULE, RANGE_END_TAG, RANGE_START_TAG


@dataclass
class RunSummary:
    """What a run did, from its events, however it was launched: what `materialize` prints and tests check."""

    run_id: str
    success: bool  # Dagster's verdict on the run
    result: ExecuteInProcessResult | None = None  # materialize_range's, whose events tests inspect
    materialized: dict[str, int] = field(default_factory=dict)  # asset -> partitions materialized
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)  # "asset:check" -> (passed, severity)
    failed_steps: list[str] = field(default_factory=list)

    @classmethod
    def of_events(cls, run_id: str, success: bool, events: Iterable[DagsterEvent],
                  result: ExecuteInProcessResult | None = None) -> RunSummary:
        summary = cls(run_id, success, result)
        for event in events:
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

    @property
    def failed_blocking_checks(self) -> list[str]:
        return [name for name, (passed, severity) in self.checks.items() if not passed and severity == "ERROR"]

    @property
    def ok(self) -> bool:
        return self.success and not self.failed_steps and not self.failed_blocking_checks

    def lines(self) -> list[str]:
        out = [f"  {asset:32s} {count:5d} partition(s) materialized" for asset, count in sorted(self.materialized.items())]
        for name, (passed, severity) in sorted(self.checks.items()):
            out.append(f"  check {name:54s} {'passed' if passed else 'FAILED'} ({severity})")
        out += [f"  step {step} FAILED" for step in self.failed_steps]
        return out


def range_tags(start: date, end: date) -> dict[str, str]:
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}


def selected_keys(defs: Definitions, selection: str | AssetSelection | None = None) -> list[AssetKey]:
    """The assets ``selection`` names (default ``DEFAULT_SELECTION``), read as ``dg launch --assets`` reads
    it: comma-separated parts in Dagster's selection syntax. Matching nothing is an error, not an empty
    run: Dagster runs every asset of the job when given none (a typo would export from the OLTP)."""
    if not isinstance(selection, AssetSelection):
        selection = AssetSelection.from_coercible((selection or DEFAULT_SELECTION).split(","))
    keys = list(selection.resolve(defs.resolve_asset_graph()))
    if not keys:
        raise ValueError(f"the selection {selection} matches no asset")
    return keys


def materialize_range(
    defs: Definitions,
    start: date,
    end: date,
    selection: str | AssetSelection | None = None,
    instance: DagsterInstance | None = None,
    tags: dict[str, str] | None = None,
) -> RunSummary:
    """Materialize ``selection`` (default: ``DEFAULT_SELECTION``) for days ``start``..``end`` in one run."""
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=selected_keys(defs, selection), instance=instance,
        tags={**range_tags(start, end), **(tags or {})}, raise_on_error=False,
    )
    return RunSummary.of_events(result.run_id, result.success, result.all_events, result)


def launch_argv(start: date, end: date, selection: str | None = None) -> list[str]:
    """The arguments of ``dg`` that run ``selection`` over the days as one run (every partitioned asset
    has the single-run backfill policy, which ``--partition-range`` requires)."""
    return ["launch", "--assets", selection or DEFAULT_SELECTION,
            "--partition-range", f"{start.isoformat()}...{end.isoformat()}", "-m", DEFINITIONS_MODULE]


def launch_range(start: date, end: date, selection: str | None = None) -> RunSummary:
    """``dg launch`` of ``selection`` over ``start``..``end`` in this process, then that run's summary.

    In this process (Dagster's CLI entry point, not a child process), so that stopping or killing
    this process stops the run, as it did the in-process helper. The run is read back from the
    instance of ``DAGSTER_HOME``, as configured; without one, from a throw-away instance.
    """
    from dvd_platform.definitions import defs  # first: it filters Dagster's notices for this process

    from dagster_dg_cli.cli import cli as dg

    selected_keys(defs, selection)  # before anything runs: a selection that matches nothing is refused
    with _dagster_home():
        started = datetime.now(timezone.utc)
        failure: click.ClickException | None = None
        try:
            dg.main(args=launch_argv(start, end, selection), prog_name="dg", standalone_mode=False)
        except click.ClickException as exc:  # "Materialization failed." (the summary says why), or a usage error
            failure = exc
        run = _run_of_this_process(start, end, started)
        if run is None:
            raise failure or RuntimeError("`dg launch` returned without starting a run")
        with DagsterInstance.get() as instance:
            events = [record.dagster_event for record in instance.all_logs(run.run_id) if record.dagster_event]
    return RunSummary.of_events(run.run_id, run.status == DagsterRunStatus.SUCCESS, events)


def _run_of_this_process(start: date, end: date, since: datetime) -> DagsterRun | None:
    """The run over these days that this process started (its events carry the process id): the
    instance may hold other runs of the same range, started by the UI or another command."""
    with DagsterInstance.get() as instance:
        for run in instance.get_runs(RunsFilter(tags=range_tags(start, end), created_after=since)):
            starts = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_START)
            if any(record.dagster_event.pid == os.getpid() for record in starts):
                return run
    return None


@contextmanager
def _dagster_home() -> Iterator[None]:
    """DAGSTER_HOME as it is set; else a throw-away instance for this launch, with telemetry off like
    the project's (Dagster's CLI would otherwise make its temporary instance in the working folder)."""
    if os.environ.get("DAGSTER_HOME"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="dvd-dagster-home-") as home:
        Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        os.environ["DAGSTER_HOME"] = home
        try:
            yield
        finally:
            del os.environ["DAGSTER_HOME"]
