"""Run a selection of assets over a day range as one run, through Dagster.

Two ways in, the same run: ``launch_range`` is ``dvd-platform materialize``, a thin wrapper over
Dagster's own ``dg launch --partition-range``; ``materialize_range`` is the in-process API the
tests use (``execute_in_process``: its result keeps the events in memory). Both pass the range as
the run's range tags (a single-run backfill) and run every step in the calling process (the code
location's in-process executor), one step per asset for the whole range.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
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

from dvd_platform.partitions import monthly_partitions
from dvd_platform.tags import DEFAULT_SELECTION, DEFINITIONS_MODULE, RANGE_END_TAG, RANGE_START_TAG


@dataclass
class RunSummary:
    """What a run did, from its events, however it was launched: what `materialize` prints and tests check."""

    run_id: str
    success: bool  # Dagster's verdict on the run
    result: ExecuteInProcessResult | None = None  # materialize_range's, whose events tests inspect
    materialized: dict[str, int] = field(default_factory=dict)  # asset -> partitions materialized
    fixups: dict[str, int] = field(default_factory=dict)  # asset -> partitions another asset's load changed
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)  # "asset:check" -> (passed, severity)
    failed_steps: list[str] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)  # partitions with a failed blocking ERROR check
    follow_ups: list[RunSummary] = field(default_factory=list)  # the command's further runs (combine)

    @classmethod
    def of_events(cls, run_id: str, success: bool, events: Iterable[DagsterEvent],
                  result: ExecuteInProcessResult | None = None) -> RunSummary:
        summary = cls(run_id, success, result)
        for event in events:
            if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                name = event.asset_key.to_user_string()
                counts = summary.fixups if "changed_by" in event.materialization.metadata else summary.materialized
                counts[name] = counts.get(name, 0) + 1
            elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                evaluation = event.event_specific_data
                name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                summary.checks[name] = merge_results(summary.checks.get(name), (evaluation.passed,
                                                                               evaluation.severity.value))
                if not evaluation.passed and evaluation.blocking and evaluation.severity.value == "ERROR":
                    summary.blocked.add(evaluation.partition)
            elif event.event_type == DagsterEventType.STEP_FAILURE:
                summary.failed_steps.append(event.step_key)
        return summary

    @classmethod
    def combine(cls, runs: list[RunSummary]) -> RunSummary:
        """One summary of the runs one command made (the first run's id and events; totals of all)."""
        first, combined = runs[0], cls(runs[0].run_id, all(r.success for r in runs), runs[0].result)
        combined.follow_ups = runs[1:]
        for run in runs:
            for totals, counts in ((combined.materialized, run.materialized), (combined.fixups, run.fixups)):
                for asset, count in counts.items():
                    totals[asset] = totals.get(asset, 0) + count
            for name, outcome in run.checks.items():
                combined.checks[name] = merge_results(combined.checks.get(name), outcome)
            combined.failed_steps += run.failed_steps
            combined.blocked |= run.blocked
        return combined

    @property
    def failed_blocking_checks(self) -> list[str]:
        return [name for name, (passed, severity) in self.checks.items() if not passed and severity == "ERROR"]

    @property
    def ok(self) -> bool:
        return self.success and not self.failed_steps and not self.failed_blocking_checks

    def lines(self) -> list[str]:
        out = [f"  run {run.run_id}" for run in [self, *self.follow_ups]] if self.follow_ups else []
        out += [f"  {asset:32s} {count:5d} partition(s) materialized" for asset, count in sorted(self.materialized.items())]
        out += [f"  {asset:32s} {count:5d} partition(s) changed by another asset's load (fix-up)"
                for asset, count in sorted(self.fixups.items())]
        for name, (passed, severity) in sorted(self.checks.items()):
            out.append(f"  check {name:54s} {'passed' if passed else 'FAILED'} ({severity})")
        out += [f"  step {step} FAILED" for step in self.failed_steps]
        if self.blocked:
            out.append(f"  blocked by a failed check: {', '.join(sorted(self.blocked))}")
        return out


def merge_results(seen: tuple[bool, str] | None, new: tuple[bool, str]) -> tuple[bool, str]:
    """One check's results over partitions (and runs) as one (passed, severity): passed when every
    one passed; when some failed, the worst failure's severity (an ERROR on one day is not hidden
    by a WARN on a later day), else the latest severity."""
    if seen is None:
        return new
    (seen_passed, seen_severity), (passed, severity) = seen, new
    if passed:
        return (seen_passed, seen_severity if not seen_passed else severity)
    if not seen_passed and "ERROR" in (seen_severity, severity):
        return (False, "ERROR")
    return (False, severity)


def range_tags(start: date | str, end: date | str) -> dict[str, str]:
    return {RANGE_START_TAG: str(start), RANGE_END_TAG: str(end)}


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


#: Runs ``keys`` over the partition keys ``first``..``last`` as one run and summarizes it.
Launcher = Callable[[list[AssetKey], str, str], RunSummary]


def run_plan(defs: Definitions, start: date, end: date, keys: list[AssetKey], launch: Launcher) -> RunSummary:
    """The runs that materialize ``keys`` over ``start``..``end``, however they are launched.

    1. The daily (and unpartitioned) assets over the days, one run.
    2. If a blocking check failed on some days, the assets that run did not reach, over each stretch
       of the other days: a bad day holds only itself (the daemon does the same by automation).
    3. The monthly assets over the months the days touch, one run (Dagster runs one partitioning
       per run), unless a run above failed for another reason than a failed check.
    """
    graph = defs.resolve_asset_graph()
    monthly = [k for k in keys if graph.get(k).partitions_def == monthly_partitions]
    daily = [k for k in keys if k not in monthly]
    runs: list[RunSummary] = []
    if daily:
        runs.append(launch(daily, start.isoformat(), end.isoformat()))
        first = runs[0]
        rest = [k for k in daily if k.to_user_string() not in first.materialized]
        if first.blocked and rest:
            runs += [launch(rest, a.isoformat(), b.isoformat()) for a, b in good_stretches(start, end, first.blocked)]
    if monthly and all(run.success or run.blocked for run in runs):
        runs.append(launch(monthly, start.replace(day=1).isoformat(), end.replace(day=1).isoformat()))
    return RunSummary.combine(runs)


def good_stretches(start: date, end: date, blocked: set[str]) -> list[tuple[date, date]]:
    """The runs of consecutive days in ``start``..``end`` that are not ``blocked``."""
    stretches: list[tuple[date, date]] = []
    day = start
    while day <= end:
        if day.isoformat() not in blocked:
            if stretches and stretches[-1][1] == day - timedelta(1):
                stretches[-1] = (stretches[-1][0], day)
            else:
                stretches.append((day, day))
        day += timedelta(1)
    return stretches


def materialize_range(
    defs: Definitions,
    start: date,
    end: date,
    selection: str | AssetSelection | None = None,
    instance: DagsterInstance | None = None,
    tags: dict[str, str] | None = None,
) -> RunSummary:
    """Materialize ``selection`` (default: ``DEFAULT_SELECTION``) for days ``start``..``end`` in process
    (``run_plan``: one run for the days, and one for the months when monthly assets are selected)."""
    job = defs.resolve_implicit_global_asset_job_def()

    def launch(keys: list[AssetKey], first: str, last: str) -> RunSummary:
        result = job.execute_in_process(asset_selection=keys, instance=instance,
                                        tags={**range_tags(first, last), **(tags or {})}, raise_on_error=False)
        return RunSummary.of_events(result.run_id, result.success, result.all_events, result)

    return run_plan(defs, start, end, selected_keys(defs, selection), launch)


def launch_argv(first: str, last: str, keys: list[AssetKey]) -> list[str]:
    """The arguments of ``dg`` that run ``keys`` over the partitions as one run (every partitioned asset
    has the single-run backfill policy, which ``--partition-range`` requires)."""
    selection = " or ".join(f'key:"{key.to_user_string()}"' for key in keys)
    return ["launch", "--assets", selection, "--partition-range", f"{first}...{last}", "-m", DEFINITIONS_MODULE]


def launch_range(start: date, end: date, selection: str | None = None) -> RunSummary:
    """``run_plan`` through ``dg launch`` in this process, then a summary of its runs.

    In this process (Dagster's CLI entry point, not a child process), so that stopping or killing
    this process stops the run, as it did the in-process helper. The runs are read back from the
    instance of ``DAGSTER_HOME``, as configured; without one, from a throw-away instance.
    """
    from dvd_platform.definitions import defs  # first: it filters Dagster's notices for this process

    keys = selected_keys(defs, selection)  # before anything runs: a selection that matches nothing is refused
    with _dagster_home():
        return run_plan(defs, start, end, keys, _dg_launch)


def _dg_launch(keys: list[AssetKey], first: str, last: str) -> RunSummary:
    from dagster_dg_cli.cli import cli as dg

    started = datetime.now(timezone.utc)
    failure: click.ClickException | None = None
    print("  $ " + shlex.join(["dg", *launch_argv(first, last, keys)]), flush=True)
    try:
        dg.main(args=launch_argv(first, last, keys), prog_name="dg", standalone_mode=False)
    except click.ClickException as exc:  # "Materialization failed." (the summary says why), or a usage error
        failure = exc
    run = _run_of_this_process(first, last, started)
    if run is None:
        raise failure or RuntimeError("`dg launch` returned without starting a run")
    with DagsterInstance.get() as instance:
        events = [record.dagster_event for record in instance.all_logs(run.run_id) if record.dagster_event]
    return RunSummary.of_events(run.run_id, run.status == DagsterRunStatus.SUCCESS, events)


def _run_of_this_process(start: str, end: str, since: datetime) -> DagsterRun | None:
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
