"""What one Dagster event costs to store: Dagster's SQLite event log against the platform's pooled one.

A whole-pagila range run writes about 17,700 asset-check evaluations and 9,000 per-partition
materializations (``pipeline_benchmark.py`` counts them). This script stores the same kinds of
event, with the platform's metadata shapes, into a fresh instance of each kind, in the same run:

``dagster``
    Dagster's default local storage (``SqliteEventLogStorage``: an engine per statement).
``pooled``
    The local ``dagster.yaml`` of this project (``dvd_platform/event_log_storage.py``).

It prints milliseconds per event and the ratio default / pooled. DAGSTER_HOME is a temp dir on
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
from datetime import datetime, timezone
from pathlib import Path

from common import host_info, load_average, log, results_file, write_results

ROOT = Path(__file__).resolve().parent.parent


def _entry(run_id: str, dagster_event):
    from dagster._core.events.log import EventLogEntry

    return EventLogEntry(user_message="", level=10, job_name="__ASSET_JOB", run_id=run_id, error_info=None,
                         timestamp=time.time(), dagster_event=dagster_event)


def check_evaluation(i: int):
    """Like one of a staged check's per-day evaluations: counts, the query, a partition."""
    from dagster import AssetCheckEvaluation, AssetCheckSeverity, AssetKey, MetadataValue
    from dagster._core.events import DagsterEvent, DagsterEventType

    evaluation = AssetCheckEvaluation(
        asset_key=AssetKey("stg_payment"), check_name=f"check_{i % 10}", passed=True, severity=AssetCheckSeverity.ERROR,
        metadata={"offending_rows": 0, "query": MetadataValue.md("```sql\nSELECT * FROM stg_payment WHERE amount < 0\n```")},
        blocking=True, partition=None)
    return DagsterEvent(event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value, job_name="__ASSET_JOB",
                        event_specific_data=evaluation)


def materialization(i: int):
    """Like one day's materialization of a staged asset: its row counts and quarantine path."""
    from dagster import AssetKey, AssetMaterialization
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData

    data = StepMaterializationData(AssetMaterialization(
        AssetKey("stg_payment"), metadata={"rows_in": i, "rows_out": i, "rows_quarantined": 0,
                                           "quarantine_path": f"/lake/quarantine/stg_payment/dt={i}"}))
    return DagsterEvent(event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value, job_name="__ASSET_JOB",
                        event_specific_data=data)


def measure(kind: str, events: int, parent: str) -> dict[str, float]:
    """Milliseconds per stored event of each kind, in a fresh instance of ``kind``."""
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
            for name, make in (("check_evaluation", check_evaluation), ("materialization", materialization)):
                start = time.perf_counter()
                for i in range(events):
                    instance.handle_new_event(_entry(f"bench-{kind}", make(i)))
                out[f"{name}_ms"] = round(1000 * (time.perf_counter() - start) / events, 3)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500, help="events of each kind per storage (default 500)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the throw-away DAGSTER_HOMEs go")
    parser.add_argument("--out", type=Path, default=results_file("event_storage"))
    args = parser.parse_args()
    started = datetime.now(timezone.utc)
    machine = host_info()
    results = {kind: measure(kind, args.events, args.dir) for kind in ("dagster", "pooled")}
    for name in ("check_evaluation", "materialization"):
        ratio = results["dagster"][f"{name}_ms"] / results["pooled"][f"{name}_ms"]
        results[f"{name}_ratio_dagster_over_pooled"] = round(ratio, 2)
        log(f"{name}: dagster {results['dagster'][f'{name}_ms']} ms, pooled {results['pooled'][f'{name}_ms']} ms "
            f"per event -> {ratio:.1f}x")
    machine["load_average_at_end"] = load_average()
    write_results(args.out, started, {"events_per_kind": args.events, "dagster_home_dir": args.dir, "machine": machine,
                                      **results})


if __name__ == "__main__":
    main()
