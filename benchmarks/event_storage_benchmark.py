"""What one Dagster event costs to store: Dagster's SQLite event log against the platform's pooled one.

A whole-pagila range run writes about 17,500 asset-check evaluations, 7,900 planned and 7,700
per-partition materializations (``pipeline_benchmark.py`` counts them). This script stores the
same kinds of event, with the platform's metadata shapes, into a fresh instance of each kind, in
the same run: check evaluations one by one (as Dagster sends them), planned materializations and
materializations one by one and then in batches (as Dagster sends them when
``DAGSTER_EVENT_BATCH_SIZE`` is set, which ``stack up`` does; Dagster's own SQLite storage then
still stores them one by one):

``dagster``
    Dagster's default local storage (``SqliteEventLogStorage``: an engine per statement).
``pooled``
    The local ``dagster.yaml`` of this project (``dvd_platform/event_log_storage.py``).

It prints milliseconds per event and the ratios default / pooled, and Dagster's one by one over
the pooled storage's batches. DAGSTER_HOME is a temp dir on
the same disk as the stack's (``--dir``, default the system temp dir).

Usage (from the project root)::

    .venv/bin/python benchmarks/event_storage_benchmark.py [--events 500] [--dir /tmp]
        [--out benchmarks/results/event_storage.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from common import host_info, load_average, log, results_file, write_results

ROOT = Path(__file__).resolve().parent.parent
#: DAGSTER_EVENT_BATCH_SIZE of the batched measurements: what ``stack up`` writes.
BATCH_SIZE = 1000


def _entry(run_id: str, dagster_event):
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(user_message="", level=10, job_name="__ASSET_JOB", run_id=run_id, error_info=None,
                         timestamp=time.time(), dagster_event=dagster_event)


def day(i: int) -> str:
    return (date(2022, 1, 1) + timedelta(i)).isoformat()


def check_planned(events: int):
    """What a run stores before its steps for a check over ``events`` days: one event, a row per day."""
    from dagster import AssetKey, DailyPartitionsDefinition
    from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
    from dagster._core.events import DagsterEvent, DagsterEventType

    days = DailyPartitionsDefinition("2022-01-01").empty_subset().with_partition_keys([day(i) for i in range(events)])
    planned = AssetCheckEvaluationPlanned(asset_key=AssetKey("stg_payment"), check_name="amount_not_negative",
                                          partitions_subset=days.to_serializable_subset())
    return DagsterEvent(event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value, job_name="__ASSET_JOB",
                        event_specific_data=planned)


def check_evaluation(i: int):
    """Like one of a staged check's per-day evaluations: counts, the query, its day (planned by the run)."""
    from dagster import AssetCheckEvaluation, AssetCheckSeverity, AssetKey, MetadataValue
    from dagster._core.events import DagsterEvent, DagsterEventType

    evaluation = AssetCheckEvaluation(
        asset_key=AssetKey("stg_payment"), check_name="amount_not_negative", passed=True,
        severity=AssetCheckSeverity.ERROR, blocking=True, partition=day(i),
        metadata={"offending_rows": 0, "query": MetadataValue.md("```sql\nSELECT * FROM stg_payment WHERE amount < 0\n```")})
    return DagsterEvent(event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value, job_name="__ASSET_JOB",
                        event_specific_data=evaluation)


def planned_materialization(i: int):
    """One of the per-partition materializations a range run plans before its first step."""
    from dagster import AssetKey
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent

    return DagsterEvent.build_asset_materialization_planned_event(
        "__ASSET_JOB", "stg_payment", AssetMaterializationPlannedData(AssetKey("stg_payment"), partition=day(i)))


def materialization(i: int):
    """Like one day's materialization of a staged asset: its row counts and quarantine path."""
    from dagster import AssetKey, AssetMaterialization
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData

    data = StepMaterializationData(AssetMaterialization(
        AssetKey("stg_payment"), partition=day(i), metadata={"rows_in": i, "rows_out": i, "rows_quarantined": 0,
                                           "quarantine_path": f"/lake/quarantine/stg_payment/dt={i}"}))
    return DagsterEvent(event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value, job_name="__ASSET_JOB",
                        event_specific_data=data)


def measure(kind: str, events: int, parent: str) -> dict[str, float]:
    """Milliseconds per stored event of each kind, in a fresh instance of ``kind``: check evaluations (on the
    rows their run planned) one by one, as Dagster sends them; planned materializations and materializations
    one by one, then in batches, as Dagster sends them with ``DAGSTER_EVENT_BATCH_SIZE`` set."""
    from dagster import DagsterInstance

    home = Path(tempfile.mkdtemp(prefix=f"dvd-events-{kind}-", dir=parent))
    if kind == "pooled":
        shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    out = {}
    try:
        with DagsterInstance.get() as instance:
            out["storage_class"] = type(instance.event_log_storage).__name__
            instance.handle_new_event(_entry(f"bench-{kind}", check_planned(events)))
            out["check_evaluation_ms"] = _timed(instance, f"bench-{kind}", check_evaluation, events, batch=None)
            for name, make in (("planned_materialization", planned_materialization), ("materialization", materialization)):
                out[f"{name}_ms"] = _timed(instance, f"bench-{kind}-single", make, events, batch=None)
                out[f"{name}_batched_ms"] = _timed(instance, f"bench-{kind}-batched", make, events, batch=BATCH_SIZE)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return out


def _timed(instance, run_id: str, make, events: int, batch: int | None) -> float:
    """Milliseconds per event to store ``events`` events of ``make`` (as one batch when ``batch`` is set)."""
    from dagster._core.events import DagsterEventBatchMetadata, generate_event_batch_id

    entries = [_entry(run_id, make(i)) for i in range(events)]
    before = os.environ.get("DAGSTER_EVENT_BATCH_SIZE")
    os.environ["DAGSTER_EVENT_BATCH_SIZE"] = str(batch or 0)
    batch_id = generate_event_batch_id()
    try:
        start = time.perf_counter()
        for i, entry in enumerate(entries):
            instance.handle_new_event(entry, batch_metadata=DagsterEventBatchMetadata(batch_id, i == events - 1))
        return round(1000 * (time.perf_counter() - start) / events, 3)
    finally:
        os.environ.pop("DAGSTER_EVENT_BATCH_SIZE", None)
        if before is not None:
            os.environ["DAGSTER_EVENT_BATCH_SIZE"] = before


KINDS = ("check_evaluation", "planned_materialization", "planned_materialization_batched", "materialization",
         "materialization_batched")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500, help="events of each kind per storage (default 500)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the throw-away DAGSTER_HOMEs go")
    parser.add_argument("--out", type=Path, default=results_file("event_storage"))
    args = parser.parse_args()
    started = datetime.now(timezone.utc)
    machine = host_info()
    results = {kind: measure(kind, args.events, args.dir) for kind in ("dagster", "pooled")}
    for name in KINDS:
        ratio = results["dagster"][f"{name}_ms"] / results["pooled"][f"{name}_ms"]
        results[f"{name}_ratio_dagster_over_pooled"] = round(ratio, 2)
        log(f"{name}: dagster {results['dagster'][f'{name}_ms']} ms, pooled {results['pooled'][f'{name}_ms']} ms "
            f"per event -> {ratio:.1f}x")
    for name in ("planned_materialization", "materialization"):
        ratio = results["dagster"][f"{name}_ms"] / results["pooled"][f"{name}_batched_ms"]
        results[f"{name}_ratio_dagster_single_over_pooled_batched"] = round(ratio, 2)
        log(f"{name}: dagster one by one / pooled in batches -> {ratio:.1f}x")
    machine["load_average_at_end"] = load_average()
    write_results(args.out, started, {"events_per_kind": args.events, "dagster_home_dir": args.dir, "machine": machine,
                                      **results})


if __name__ == "__main__":
    main()
