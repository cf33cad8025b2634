"""Sensors: new landing drops start runs; failed runs are written to the audit log.

The landing sensor lists only ``landing/_manifests/`` (one object per day, written last), so a
tick stays cheap however many data objects land. A run key is the manifest's key and ETag:
re-listing never re-runs a day, and a corrected re-drop of an old day (new ETag) does.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date, datetime, timedelta

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster_aws.s3.sensor import get_objects

from dvd_platform.jobs import daily_pipeline
from dvd_platform.resources.s3 import S3Buckets
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.tags import RANGE_END_TAG, RANGE_START_TAG
from dvd_platform.settings import MANIFEST_PREFIX
from dvd_platform.warehouse import audit

#: S3 LastModified has 1 s resolution and clocks drift: look back this far and dedupe by ETag.
LOOKBACK = timedelta(minutes=5)


def manifest_day(key: str) -> str | None:
    """``landing/_manifests/dt=2022-02-14/manifest.json`` -> ``2022-02-14`` (None for other keys)."""
    parts = key.split("/")
    if len(parts) == 4 and parts[2].startswith("dt=") and parts[3] == "manifest.json":
        return parts[2][3:]
    return None


def evaluate_landing(objects: list[dict], cursor: str | None) -> tuple[list[RunRequest], str]:
    """New or changed manifests since the cursor -> run requests (one per stretch of consecutive
    days), and the next cursor.

    Cursor: the newest LastModified seen, plus the ETags of manifests modified within
    LOOKBACK of it (so a manifest written in the same second as the high-water mark, or
    listed late, is neither missed nor repeated).
    """
    state = json.loads(cursor) if cursor else {"high_water": None, "recent": {}}
    high_water = datetime.fromisoformat(state["high_water"]) if state["high_water"] else None
    recent: dict[str, str] = state["recent"]
    requests = []
    for obj in objects:
        key, etag, modified = obj["Key"], obj["ETag"].strip('"'), obj["LastModified"]
        day = manifest_day(key)
        if day is None:
            continue
        is_new = high_water is None or modified > high_water or recent.get(key) != etag
        if modified < (high_water or modified) - LOOKBACK:
            is_new = False  # older than the look-back window: already handled
        if is_new:
            requests.append(RunRequest(run_key=f"{key}:{etag}", partition_key=day, tags={"dvd/manifest_etag": etag}))
        high_water = max(high_water or modified, modified)
        recent[key] = etag
    if high_water:
        modified_of = {o["Key"]: o["LastModified"] for o in objects}
        recent = {k: e for k, e in recent.items() if k in modified_of and modified_of[k] >= high_water - LOOKBACK}
    next_cursor = json.dumps({"high_water": high_water.isoformat() if high_water else None, "recent": recent})
    return batch_contiguous(requests), next_cursor


def batch_contiguous(requests: list[RunRequest]) -> list[RunRequest]:
    """One range run per stretch of consecutive days; its run key covers every manifest in it.

    Why from two days up: a run's fixed cost (run worker, definitions, each step's Spark and
    event work) is most of a small day's run, and Spark runs queue one at a time, so N days
    as one single-run backfill cost about one run, not N. A day whose blocking checks fail holds
    only itself: the warehouse follows each day whose checks passed (``automation.py``). A raw
    refusal (a corrupt object) fails the stretch's raw step, so its other days wait for a re-run.
    """
    by_day = sorted(requests, key=lambda r: r.partition_key)
    stretches: list[list[RunRequest]] = []
    for request in by_day:
        day = date.fromisoformat(request.partition_key)
        if stretches and date.fromisoformat(stretches[-1][-1].partition_key) == day - timedelta(days=1):
            stretches[-1].append(request)
        else:
            stretches.append([request])
    batched = []
    for stretch in stretches:
        if len(stretch) == 1:
            batched.append(stretch[0])
            continue
        digest = hashlib.sha256("|".join(r.run_key for r in stretch).encode()).hexdigest()[:16]
        first, last = stretch[0].partition_key, stretch[-1].partition_key
        batched.append(RunRequest(run_key=f"range:{first}:{last}:{digest}",
                                  tags={RANGE_START_TAG: first, RANGE_END_TAG: last}))
    return batched


@sensor(job=daily_pipeline, default_status=DefaultSensorStatus.RUNNING,
        # Structure, read when the code location loads (like the partitions' start day).
        minimum_interval_seconds=int(os.environ.get("DVD_SENSOR_INTERVAL_SECONDS", "30")),
        description="Requests a daily_pipeline run for each day whose manifest appears or changes in landing.")
def landing_sensor(context: SensorEvaluationContext, s3: S3Buckets):
    state = json.loads(context.cursor) if context.cursor else {"high_water": None}
    since = datetime.fromisoformat(state["high_water"]) - LOOKBACK if state["high_water"] else None
    objects = get_objects(s3.landing_bucket, prefix=f"{MANIFEST_PREFIX}/", since_last_modified=since,
                          client=s3.get_client())
    requests, cursor = evaluate_landing(objects, context.cursor)
    if not requests:
        return SensorResult(skip_reason=SkipReason(f"no new or changed manifest under s3://{s3.landing_bucket}/"
                                                   f"{MANIFEST_PREFIX}/"), cursor=cursor)
    return SensorResult(run_requests=requests, cursor=cursor)


@run_failure_sensor(monitored_jobs=None, default_status=DefaultSensorStatus.RUNNING,
                    description="Writes failed runs (per asset and partition range) to dw_audit.load_log.")
def audit_failed_runs(context: RunFailureSensorContext, warehouse: WarehouseResource):
    """Steps that failed before reaching the warehouse IO manager (Spark errors, blocking checks,
    missing files) still leave a failure row in the audit log; the IO manager logs its own."""
    run = context.dagster_run
    if run.status != DagsterRunStatus.FAILURE:
        return
    tags = run.tags
    start = tags.get(RANGE_START_TAG) or tags.get("dagster/partition")
    end = tags.get(RANGE_END_TAG) or start
    failed_steps = [e.step_key for e in context.get_step_failure_events()]
    error = context.failure_event.message or "run failed"
    warehouse.migrate()  # the row's columns are the migrations' (a run may fail before any load migrated)
    audit.record_failed_run(warehouse.connect, run.run_id, failed_steps or ["(run)"], start, end, error)
