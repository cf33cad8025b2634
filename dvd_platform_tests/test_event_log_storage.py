"""The local instance's event log (``dvd_platform/event_log_storage.py``): it is the one in use, it keeps
its connections, and what it writes is Dagster's own history, readable without it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DailyPartitionsDefinition,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.events import (
    AssetMaterializationPlannedData,
    DagsterEvent,
    DagsterEventBatchMetadata,
    DagsterEventType,
    StepMaterializationData,
    generate_event_batch_id,
)
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events.log import EventLogEntry

from dvd_platform import event_log_storage
from dvd_platform.event_log_storage import PooledSqliteEventLogStorage
from dvd_platform.settings import PROJECT_ROOT

ASSET = AssetKey("stg_payment")
RUN_ID = "run-under-test"


def _entry(dagster_event: DagsterEvent) -> EventLogEntry:
    return EventLogEntry(user_message="", level=10, job_name="__ASSET_JOB", run_id=RUN_ID, error_info=None,
                         timestamp=time.time(), dagster_event=dagster_event)


def _materialization(day: str) -> EventLogEntry:
    data = StepMaterializationData(AssetMaterialization(ASSET, partition=day, metadata={"rows_in": 3}))
    return _entry(DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, "__ASSET_JOB", event_specific_data=data))


def _evaluation(day: str, passed: bool) -> EventLogEntry:
    evaluation = AssetCheckEvaluation(asset_key=ASSET, check_name="primary_key", passed=passed,
                                      severity=AssetCheckSeverity.ERROR, partition=day, metadata={"offending_rows": 0})
    return _entry(DagsterEvent(DagsterEventType.ASSET_CHECK_EVALUATION.value, "__ASSET_JOB",
                               event_specific_data=evaluation))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A DAGSTER_HOME with the project's local dagster.yaml, as ``stack up`` lays it out."""
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return tmp_path


def test_the_local_instance_uses_the_pooled_event_log(home):
    with DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        assert Path(instance.event_log_storage._base_dir) == home / "history" / "runs"  # Dagster's default place


def test_events_reuse_connections(home):
    """Dagster's SQLite event log opens a connection per statement (three or more per event); this one
    keeps one per database file."""
    days = [f"2022-02-{d:02d}" for d in range(1, 26)]
    with DagsterInstance.get() as instance:
        instance.handle_new_event(_materialization("2022-01-31"))  # both databases created and connected
        with mock.patch("sqlite3.dbapi2.connect", side_effect=sqlite3.dbapi2.connect) as connect:
            for day in days:
                instance.handle_new_event(_materialization(day))
                instance.handle_new_event(_evaluation(day, passed=True))
        assert connect.call_count <= 2, f"{connect.call_count} connections for {2 * len(days)} events"


def test_dagster_reads_what_it_wrote_without_it(home):
    """The history is Dagster's own files: an instance on Dagster's default storage, in the same home,
    sees each partition's materialization and check result."""
    with DagsterInstance.get() as instance:
        for day, passed in (("2022-02-01", True), ("2022-02-02", False)):
            instance.handle_new_event(_materialization(day))
            instance.handle_new_event(_evaluation(day, passed))
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # Dagster's default storage
    with DagsterInstance.get() as plain:
        assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
        records = plain.fetch_materializations(ASSET, limit=10).records
        assert sorted(r.partition_key for r in records) == ["2022-02-01", "2022-02-02"]
        executions = plain.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(ASSET, "primary_key"), limit=10)
        assert {e.partition: e.status.value for e in executions} == {"2022-02-01": "SUCCEEDED",
                                                                     "2022-02-02": "FAILED"}


def test_wipe_closes_connections_before_removing_the_files(home):
    with DagsterInstance.get() as instance:
        instance.handle_new_event(_materialization("2022-02-01"))
        instance.wipe()
        assert not list((home / "history" / "runs").glob(f"{RUN_ID}.db"))
        instance.handle_new_event(_materialization("2022-02-03"))  # a new file, not the deleted one
        assert [r.partition_key for r in instance.fetch_materializations(ASSET, limit=10).records] == ["2022-02-03"]


def _planned(asset: AssetKey, day: str) -> EventLogEntry:
    data = AssetMaterializationPlannedData(asset, partition=day)
    return _entry(DagsterEvent.build_asset_materialization_planned_event("__ASSET_JOB", "step", data))


def _check_planned(days: list[str] | None, asset: AssetKey = ASSET, check: str = "primary_key") -> EventLogEntry:
    subset = (DailyPartitionsDefinition("2022-01-01").empty_subset().with_partition_keys(days).to_serializable_subset()
              if days else None)
    data = AssetCheckEvaluationPlanned(asset_key=asset, check_name=check, partitions_subset=subset)
    return _entry(DagsterEvent(DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value, "__ASSET_JOB",
                               event_specific_data=data))


def _tagged_materialization(asset: AssetKey, day: str) -> EventLogEntry:
    materialization = AssetMaterialization(asset, partition=day, metadata={"rows_in": 3},
                                           tags={"dagster/data_version": f"v-{day}"})
    return _entry(DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, "__ASSET_JOB",
                               event_specific_data=StepMaterializationData(materialization)))


def _store_batches(instance: DagsterInstance, batches: list[list[EventLogEntry]]) -> None:
    for batch in batches:
        batch_id = generate_event_batch_id()
        for n, event in enumerate(batch):
            instance.handle_new_event(event, batch_metadata=DagsterEventBatchMetadata(batch_id, n == len(batch) - 1))


def _written_by_both(tmp_path: Path, monkeypatch, store: Callable[[DagsterInstance, str], None]) -> dict:
    """What ``store(instance, kind)`` leaves in both databases, with the platform's storage and Dagster's own."""
    written = {}
    for kind, config in (("pooled", (PROJECT_ROOT / "dagster.yaml").read_text()), ("dagster", "")):
        home = tmp_path / kind
        home.mkdir()
        (home / "dagster.yaml").write_text(config + "\ntelemetry:\n  enabled: false\n")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        with DagsterInstance.get() as instance:
            store(instance, kind)
        runs = home / "history" / "runs"
        written[kind] = {"index": _tables(runs / "index.db"), "run": _tables(runs / f"{RUN_ID}.db")}
    assert written["pooled"]["run"]["event_logs"], "nothing was stored"
    for db in ("index", "run"):
        for table, rows in written["dagster"][db].items():
            assert written["pooled"][db][table] == rows, f"{db}.{table} differs"
    return written["pooled"]


def _tables(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table but the schema's own bookkeeping, without the columns the database fills
    with its clock (``create_timestamp``, ``update_timestamp``)."""
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                 if r[0] not in ("alembic_version", "secondary_indexes", "kvs", "sqlite_sequence")]
        tables = {}
        for name in names:
            columns = [f'"{r[1]}"' for r in conn.execute(f"PRAGMA table_info({name})")
                       if r[1] not in ("create_timestamp", "update_timestamp")]
            tables[name] = conn.execute(f"SELECT {', '.join(columns)} FROM {name} ORDER BY 1").fetchall()
        return tables


def test_a_batch_is_stored_as_dagster_stores_its_events_one_by_one(tmp_path, monkeypatch):
    """What the batch path writes (a range run's planned events, then a range step's materializations) is
    row for row what Dagster's own storage writes storing the same events one at a time."""
    days = [f"2022-02-{d:02d}" for d in range(1, 8)]
    other = AssetKey("stg_rental")
    batches = [[_planned(a, d) for a in (ASSET, other) for d in days] + [_check_planned(days)],
               [_tagged_materialization(ASSET, d) for d in days],
               [_tagged_materialization(other, d) for d in days[:3]]]
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")

    def store(instance: DagsterInstance, kind: str) -> None:
        calls = mock.patch.object(PooledSqliteEventLogStorage, "store_event", autospec=True,
                                  side_effect=PooledSqliteEventLogStorage.store_event)
        with calls as one_by_one:
            _store_batches(instance, batches)
        if kind == "pooled":
            assert one_by_one.call_count == 0, "the pooled storage stored a batch one event at a time"

    _written_by_both(tmp_path, monkeypatch, store)


def test_a_batch_that_fails_midway_leaves_nothing_twice(tmp_path, monkeypatch):
    """Dagster stores a batch again one event at a time when the batch write raises: a failure inside it
    must leave nothing written, or those rows would be stored twice."""
    days = [f"2022-02-{d:02d}" for d in range(1, 4)]
    batches = [[_planned(ASSET, d) for d in days] + [_check_planned(days)],
               [_tagged_materialization(ASSET, d) for d in days]]
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    real = PooledSqliteEventLogStorage._store_asset_event
    calls = []

    def fail_in_each_batch(storage, conn, event, event_id):
        calls.append(event.dagster_event_type)
        if len(calls) in (1, 2 + len(days)):  # the first asset index write of each batch write
            raise RuntimeError("disk full")
        return real(storage, conn, event, event_id)

    def store(instance: DagsterInstance, kind: str) -> None:
        with mock.patch.object(PooledSqliteEventLogStorage, "_store_asset_event", autospec=True,
                               side_effect=fail_in_each_batch):
            _store_batches(instance, batches)

    _written_by_both(tmp_path, monkeypatch, store)
    assert len(calls) > 2, "the failure was never injected: the test proves nothing"


def _run_evaluation(asset: AssetKey, check: str, day: str | None, passed: bool, target: int | None) -> EventLogEntry:
    evaluation = AssetCheckEvaluation(
        asset_key=asset, check_name=check, passed=passed, severity=AssetCheckSeverity.ERROR, partition=day,
        metadata={"offending_rows": 0 if passed else 2},
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=target, run_id=RUN_ID, timestamp=1.0) if target else None)
    return _entry(DagsterEvent(DagsterEventType.ASSET_CHECK_EVALUATION.value, "__ASSET_JOB",
                               event_specific_data=evaluation))


def test_check_evaluations_are_stored_as_dagster_stores_them(tmp_path, monkeypatch):
    """A run's check evaluations, on a planned row (per day) or without one (no planned event: Dagster inserts
    the row then), passed or failed, with a partition or without: row for row what Dagster's own storage writes."""
    days = [f"2022-02-{d:02d}" for d in range(1, 5)]
    other = AssetKey("stg_rental")
    events = [_check_planned(days), _check_planned(None, other, "row_count"),
              *[_run_evaluation(ASSET, "primary_key", d, n % 2 == 0, n + 1) for n, d in enumerate(days)],
              _run_evaluation(other, "row_count", None, True, 5),  # the unpartitioned planned row, updated
              _run_evaluation(other, "table_not_empty", None, False, None),
              _run_evaluation(other, "table_not_empty", "2022-02-01", True, 7)]

    def store(instance: DagsterInstance, _kind: str) -> None:
        for event in events:
            instance.handle_new_event(event)

    written = _written_by_both(tmp_path, monkeypatch, store)
    assert len(written["index"]["asset_check_executions"]) == len(days) + 3


def test_check_evaluations_are_written_together_and_before_anything_else(home):
    """A range step's evaluations (one per day) are not written one by one: they wait for the next use of
    the database, and the event stored next is stored after all of them."""
    days = [f"2022-03-{d:02d}" for d in range(1, 26)]
    with DagsterInstance.get() as instance:
        instance.handle_new_event(_materialization("2022-02-28"))
        with mock.patch.object(PooledSqliteEventLogStorage, "_transaction", autospec=True,
                               side_effect=PooledSqliteEventLogStorage._transaction) as transactions:
            for day in days:
                instance.handle_new_event(_evaluation(day, passed=True))
            assert transactions.call_count == 0, f"{transactions.call_count} transactions for held-back evaluations"
        instance.handle_new_event(_materialization("2022-03-26"))
        records = instance.event_log_storage.get_records_for_run(RUN_ID, limit=100).records
        order = [r.event_log_entry.dagster_event_type for r in records]
        assert order == [DagsterEventType.ASSET_MATERIALIZATION, *[DagsterEventType.ASSET_CHECK_EVALUATION] * len(days),
                         DagsterEventType.ASSET_MATERIALIZATION]


def test_a_read_sees_held_back_evaluations(home):
    days = [f"2022-03-{d:02d}" for d in range(1, 6)]
    with DagsterInstance.get() as instance:
        instance.handle_new_event(_materialization("2022-02-28"))
        for day in days:
            instance.handle_new_event(_evaluation(day, passed=day != days[-1]))
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(ASSET, "primary_key"), limit=100)
        assert {e.partition: e.status.value for e in history} == {
            d: "SUCCEEDED" if d != days[-1] else "FAILED" for d in days}


def _stored_evaluations(home: Path) -> int:
    with sqlite3.connect(home / "history" / "runs" / f"{RUN_ID}.db") as conn:
        return conn.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION'"
                            ).fetchone()[0]


def test_held_back_evaluations_are_written_when_many_or_old(home, monkeypatch):
    """No other event needed: the MAX_PENDING-th evaluation writes them, and so does one that comes more than
    MAX_PENDING_SECONDS after the oldest held."""
    monkeypatch.setattr(event_log_storage, "MAX_PENDING", 3)
    with DagsterInstance.get() as instance:
        instance.handle_new_event(_materialization("2022-02-01"))
        for day in ("2022-02-01", "2022-02-02"):
            instance.handle_new_event(_evaluation(day, passed=True))
        assert _stored_evaluations(home) == 0
        instance.handle_new_event(_evaluation("2022-02-03", passed=True))
        assert _stored_evaluations(home) == 3
        instance.handle_new_event(_evaluation("2022-02-04", passed=True))
        later = _evaluation("2022-02-05", passed=True)
        instance.handle_new_event(later._replace(timestamp=later.timestamp + 1 + event_log_storage.MAX_PENDING_SECONDS))
        assert _stored_evaluations(home) == 5


def test_a_failed_write_stores_every_other_evaluation_and_says_how_many_failed(home):
    """One evaluation the index refuses: the batch is written again one by one, the others are all stored
    (once), the run's own log has all five, and the error says one failed."""
    real = PooledSqliteEventLogStorage._index_check_evaluation

    def refuse_feb_3(conn, event, row):
        if event.get_dagster_event().asset_check_evaluation_data.partition == "2022-02-03":
            raise RuntimeError("disk full")
        return real(conn, event, row)

    days = [f"2022-02-{d:02d}" for d in range(1, 6)]
    with DagsterInstance.get() as instance:
        instance.handle_new_event(_materialization("2022-02-01"))
        for day in days:
            instance.handle_new_event(_evaluation(day, passed=True))
        with mock.patch.object(PooledSqliteEventLogStorage, "_index_check_evaluation", side_effect=refuse_feb_3):
            with pytest.raises(DagsterInvariantViolationError, match="1 of 5 held-back"):
                instance.event_log_storage.write_held_back()
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(ASSET, "primary_key"), limit=100)
        assert sorted(e.partition for e in history) == [d for d in days if d != "2022-02-03"]
    assert _stored_evaluations(home) == len(days)


def test_held_back_evaluations_are_written_on_dispose(home):
    """An evaluation with no event after it (the process ends) is not lost: disposing the instance writes it."""
    with DagsterInstance.get() as instance:
        instance.handle_new_event(_materialization("2022-02-01"))
        instance.handle_new_event(_evaluation("2022-02-01", passed=True))
        assert instance.event_log_storage._pending, "the evaluation was not held back: the test proves nothing"
    assert _stored_evaluations(home) == 1


def test_a_forked_child_does_not_write_its_parents_held_back_evaluations(home):
    """A child forked while an evaluation is held back stores its own events only: the parent writes the
    evaluation, once."""
    with DagsterInstance.get() as instance:
        instance.handle_new_event(_materialization("2022-02-01"))
        instance.handle_new_event(_evaluation("2022-02-01", passed=True))
        assert instance.event_log_storage._pending, "the evaluation was not held back: the test proves nothing"
        child = os.fork()
        if child == 0:  # pragma: no cover - in the child: its exit code says whether its own event was stored
            code = 1
            try:
                instance.handle_new_event(_materialization("2022-02-02"))
                code = 0
            finally:
                os._exit(code)
        assert os.waitpid(child, 0)[1] == 0
    with sqlite3.connect(home / "history" / "runs" / f"{RUN_ID}.db") as conn:
        counts = dict(conn.execute("SELECT dagster_event_type, count(*) FROM event_logs GROUP BY 1").fetchall())
    assert counts == {"ASSET_MATERIALIZATION": 2, "ASSET_CHECK_EVALUATION": 1}


#: Without DAGSTER_HOME: the storage's throw-away folder, with an evaluation still held back when the process ends.
THROWAWAY = """
import json
from dvd_platform.event_log_storage import PooledSqliteEventLogStorage
from dvd_platform_tests.test_event_log_storage import _evaluation, _materialization

storage = PooledSqliteEventLogStorage()
storage.store_event(_materialization("2022-02-01"))
storage.store_event(_evaluation("2022-02-01", passed=True))
assert storage._pending
print(json.dumps({"base_dir": storage._base_dir}), flush=True)
"""


def test_without_dagster_home_the_throwaway_event_log_is_removed_when_the_process_ends(tmp_path):
    """A command run without DAGSTER_HOME (``dg check defs`` in the project folder) gets a throw-away event log
    folder: gone when the process ends, as Dagster's own throw-away instance is (else a folder was left in /tmp
    per command), with no error from writing the evaluation it still held back."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    done = subprocess.run([sys.executable, "-c", THROWAWAY], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    # Exit handlers' errors are printed, not raised.
    assert done.returncode == 0 and "Error in atexit" not in done.stderr, done.stdout + done.stderr[-3000:]
    base_dir = Path(json.loads(done.stdout.strip().splitlines()[-1])["base_dir"])
    assert base_dir.name == "runs" and base_dir.parent.parent.name.startswith("dvd-dagster-events-")
    assert not base_dir.parent.parent.exists(), f"{base_dir.parent.parent} was left behind"
