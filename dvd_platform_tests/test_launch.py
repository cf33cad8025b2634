"""`dvd-platform materialize` is a thin wrapper over Dagster's own `dg launch --partition-range`:
one run over the range, executed in the command's own process, summarized from the instance."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from dvd_platform.dev.stack.procs import free_port
from dvd_platform.tags import RANGE_END_TAG, RANGE_START_TAG
from dvd_platform.settings import ENV_VARS, PROJECT_ROOT

QUIET_INSTANCE = "telemetry:\n  enabled: false\n"


def _materialize(home: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen, str]:
    """``dvd-platform materialize ARGS`` with ``home`` as DAGSTER_HOME; the process and its output."""
    home.mkdir()
    (home / "dagster.yaml").write_text(QUIET_INSTANCE)
    proc = subprocess.Popen([sys.executable, "-m", "dvd_platform.cli", "materialize", *args], cwd=PROJECT_ROOT,
                            env={**env, "DAGSTER_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        output, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()  # a failing test must not leave its run behind
        output, _ = proc.communicate()
        raise AssertionError(f"materialize {' '.join(args)} still running after 600 s:\n{output[-4000:]}") from None
    return proc, output


def _instance(home: Path, monkeypatch) -> DagsterInstance:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return DagsterInstance.get()


def test_materialize_runs_the_range_as_one_run_in_its_own_process(sample_landing, settings_env, tmp_path, monkeypatch):
    source, _ = sample_landing
    first, _ = source.day_range()
    last = first + timedelta(days=2)
    proc, output = _materialize(tmp_path / "home", {**os.environ, **settings_env}, "--from", str(first),
                                "--to", str(last), "--select", "key:raw_language")
    assert proc.returncode == 0, output[-4000:]
    assert f"dg launch --assets 'key:\"raw_language\"' --partition-range {first}...{last}" in output

    with _instance(tmp_path / "home", monkeypatch) as instance:
        (run,) = instance.get_runs()  # the whole range: one run
        assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (str(first), str(last))
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
    # Every event of the execution (all but the plan, recorded when the run is created) came from the command's process.
    assert {event.pid for event in events if event.pid is not None} == {proc.pid}
    assert [e.step_key for e in events if e.event_type == DagsterEventType.STEP_START] == ["raw_drops"]
    assert f"run {run.run_id}: success" in output
    assert "raw_language                         3 partition(s) materialized" in output


def test_header_only_days_stage_without_spark(sample_landing, settings_env, tmp_path):
    """The sample's reference tables hold rows on its first day only. Staging two later days of language
    and category must not need Spark at all: the run points at a Spark Connect port nobody listens on, and
    succeeds, with an empty snapshot and passing checks for each day."""
    source, _ = sample_landing
    first, _ = source.day_range()
    days = (first + timedelta(days=1), first + timedelta(days=2))
    env = {**os.environ, **settings_env, "DVD_SPARK_REMOTE": f"sc://127.0.0.1:{free_port()}"}
    proc, output = _materialize(tmp_path / "home", env, "--from", str(days[0]), "--to", str(days[1]), "--select",
                                "key:raw_language or key:stg_language or key:raw_category or key:stg_category")
    assert proc.returncode == 0, output[-4000:]
    assert "stg_language                         2 partition(s) materialized" in output
    assert "check stg_category:primary_key                               passed" in output
    for day in days:
        snapshot = Path(settings_env["DVD_LAKE_ROOT"]) / "staged" / "stg_language" / f"dt={day}"
        assert snapshot.is_dir() and not any(snapshot.iterdir()), f"{snapshot}: not an empty snapshot"


def test_materialize_refuses_a_selection_that_matches_nothing(tmp_path, monkeypatch):
    """Dagster runs every asset of the job when a selection resolves to none: a typo must not do that."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["DVD_STATE_DIR"] = str(tmp_path / "no_stack")
    proc, output = _materialize(tmp_path / "home", env, "--from", "2022-02-01", "--to", "2022-02-01",
                                "--select", "key:raw_languag")
    assert proc.returncode == 1
    assert "matches no asset" in output, output[-3000:]
    with _instance(tmp_path / "home", monkeypatch) as instance:
        assert instance.get_runs() == []


def test_a_failed_check_on_one_day_is_not_hidden_by_the_other_days():
    """A range reports a check once per day; its summary is the worst failure, whatever the day order."""
    from dvd_platform.runner import RunSummary, merge_results

    assert merge_results(merge_results((False, "ERROR"), (False, "WARN")), (True, "WARN")) == (False, "ERROR")
    assert merge_results((True, "WARN"), (False, "WARN")) == (False, "WARN")
    assert merge_results((True, "ERROR"), (True, "WARN")) == (True, "WARN")
    days = RunSummary("days", True, checks={"stg_rental:quarantine_ratio": (False, "ERROR")})
    later = RunSummary("later", True, checks={"stg_rental:quarantine_ratio": (False, "WARN")})
    combined = RunSummary.combine([days, later])
    assert combined.checks["stg_rental:quarantine_ratio"] == (False, "ERROR")
    assert combined.failed_blocking_checks == ["stg_rental:quarantine_ratio"] and not combined.ok
