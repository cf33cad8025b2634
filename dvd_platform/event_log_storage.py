"""Dagster's SQLite event log, with its connections kept open: the local instance's event storage.

Why: a range run of the whole graph writes one event per partition and check (83 checks x 213
days of pagila: about 17,700 check evaluations, plus 9,000 per-partition materializations). Dagster's
``SqliteEventLogStorage`` creates a new SQLAlchemy engine for every statement (``NullPool``), so
each event pays an engine, a connection, an uncached statement compile and an fsync'd commit in
each of the two or three databases it touches: about 30 ms per check evaluation and 22 ms per
materialization on this machine kind, 8 to 9 minutes of a whole-pagila run.

This subclass changes how connections are made, and when check evaluations are written:

* one engine per database file (the index shard and the recent run shards, at most
  ``MAX_ENGINES``), so connections and compiled statements are reused; ``has_table``, asked once
  per check evaluation, uses it too and remembers a table once found;
* ``PRAGMA synchronous=NORMAL`` on each connection. The databases are in WAL mode (Dagster sets
  it), where NORMAL still survives a crash or SIGKILL of any process; only an OS crash or power
  loss can lose the last commits, which a local, single-machine instance can afford.

Measured (``benchmarks/event_storage_benchmark.py``, before evaluations were held back): about
1.2 ms per check evaluation, 2-2.4 ms per other event one by one and 0.44 ms batched, against 11
to 24 ms (BENCHMARKS.md section 5).

* ``store_event`` of a run's check evaluation (17,474 in a whole-pagila range run: one per check
  and day; Dagster never batches them) holds it back, and the held-back evaluations are written
  together before the next use of the database (the next event, which follows at once, or any
  read): the index's copies and check-execution rows in one transaction, the run's rows in one
  statement. The event is serialized once, statements are built once with bound parameters, and
  the rows are Dagster's, value for value (``test_event_log_storage.py``). The cost: a process
  killed (SIGKILL, out of memory) between an evaluation and the next use of the database loses
  the evaluations it held (at most ``MAX_PENDING``); an ordinary exit writes them.
* ``store_event_batch``: the events Dagster batches when ``DAGSTER_EVENT_BATCH_SIZE`` is set (a
  run's planned materializations and check evaluations, and a range step's per-partition
  materializations; ``stack up`` sets it) go into each database in one transaction, each event
  serialized once, and the asset index row of each asset is written once per batch with its last
  event, as dagster-postgres does. Dagster's SQLite storage stores a batch one event at a time: a
  whole-pagila range run plans 7,889 materializations before its first step.

What is stored, and where, is unchanged: the files are Dagster's own, so the webserver, the daemon
and an instance configured without this class read the same history.

It overrides private methods of Dagster's storage (``_connect``), so a Dagster upgrade can break
it: the suite's every run goes through it, and ``test_event_log_storage.py`` checks that it is the
class in use and that Dagster's own storage reads what it wrote.

Local only: ``dagster.yaml`` (copied into the stack's DAGSTER_HOME) names it. Production uses
dagster-postgres (``deploy/dagster.production.yaml``).
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster import Field, StringSource
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, BATCH_WRITABLE_EVENTS, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine

#: Engines kept open: the index shard plus the run shards written most recently.
MAX_ENGINES = 16
#: A run's check evaluations held back to be written together: at most this many, or this old.
MAX_PENDING, MAX_PENDING_SECONDS = 1000, 2.0

_EXECUTIONS = AssetCheckExecutionsTable.c
#: The check-execution row a run's planned check created, found as Dagster finds it (asset, check, run,
#: partition; ``IS`` matches a NULL partition too), and the evaluation's values written into it.
_UPDATE_EXECUTION = AssetCheckExecutionsTable.update().where(
    _EXECUTIONS.asset_key == db.bindparam("k_asset_key"), _EXECUTIONS.check_name == db.bindparam("k_check_name"),
    _EXECUTIONS.run_id == db.bindparam("k_run_id"), _EXECUTIONS.partition.is_(db.bindparam("k_partition")))
_INSERT_INDEX_EVENT = SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id)
#: INSERT ... RETURNING needs SQLite 3.35 (2021); below it, Dagster's own code stores every event.
_HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
#: The events whose copy goes into the index database too.
_MIRRORED = ASSET_EVENTS | ASSET_CHECK_EVENTS


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with one pooled engine per database file instead of one engine per
    statement. ``base_dir`` as Dagster's own; by default where Dagster puts it, under DAGSTER_HOME."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._tables: set[str] = set()
        self._engines_lock = threading.Lock()  # the cache's own: _db_lock may be held when an engine is asked for
        self._pending: list[EventLogEntry] = []  # check evaluations not written yet (see store_event)
        self._pending_pid = os.getpid()  # the process that holds them (a forked child must not write them too)
        # Before _write_at_exit is registered: atexit runs the last registered first, so a throw-away folder is
        # removed after the held-back evaluations are written, never under a write that would open a new file.
        base_dir = base_dir or _default_base_dir()
        atexit.register(_write_at_exit, weakref.ref(self))  # a process that ends without dispose
        super().__init__(base_dir=base_dir, inst_data=inst_data)

    @classmethod
    def config_type(cls) -> Mapping[str, Any]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
                          ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """A transaction on the shard; held-back check evaluations are written first, so every read sees
        them and every later event is stored after them (both happen under ``_db_lock``)."""
        with self._db_lock:
            self._write_pending()
            with self._transaction(shard) as conn:
                yield conn

    @contextmanager
    def _transaction(self, shard: str) -> Iterator[Connection]:
        engine = self._engine(shard)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        with engine.connect() as conn, conn.begin():
            yield conn

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, created on first use; the least recently used beyond ``MAX_ENGINES`` is closed."""
        with self._engines_lock:
            return self._cached_engine(shard)

    def _cached_engine(self, shard: str) -> Engine:
        if self._engines_pid != os.getpid():  # a forked child must not share its parent's connections
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
        engine = self._engines.get(shard)
        if engine is None:
            engine = db.create_engine(self.conn_string_for_shard(shard),
                                      connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            db.event.listen(engine, "connect", _synchronous_normal)
            self._engines[shard] = engine
            if len(self._engines) > MAX_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
        self._engines.move_to_end(shard)
        return engine

    def has_table(self, table_name: str) -> bool:
        """Asked once per check evaluation: answered from the index shard's pooled engine, and a table once
        found is remembered (Dagster's migrations add tables, never drop them)."""
        if table_name in self._tables:
            return True
        # Not under _db_lock: Dagster asks this while it holds an index connection (wipe).
        engine = self._engine(INDEX_SHARD_NAME)
        with engine.connect() as conn:
            found = bool(engine.dialect.has_table(conn, table_name))
        if found:
            self._tables.add(table_name)
        return found

    def store_event(self, event: EventLogEntry) -> None:
        """A run's check evaluation is held back and written with the next ones (see ``_write_pending``);
        any other event by Dagster's own code, after the held-back evaluations.

        Why: Dagster never batches check evaluations, and a range run yields one per check and day (17,474
        for pagila), each two commits and two connection checkouts when written alone. Held back, they are
        written before the next use of the database: the next event (the check's own output follows at
        once), any read, ``MAX_PENDING`` of them, an evaluation coming more than ``MAX_PENDING_SECONDS``
        after the oldest held (not a timer), ``dispose`` or the process's exit."""
        if event.dagster_event_type != DagsterEventType.ASSET_CHECK_EVALUATION or not event.run_id or not _HAS_RETURNING:
            super().store_event(event)
            return
        with self._db_lock:
            self._own_pending()
            self._pending.append(event)
            if len(self._pending) >= MAX_PENDING or event.timestamp - self._pending[0].timestamp > MAX_PENDING_SECONDS:
                self._write_pending()

    def _write_pending(self) -> None:
        """Write the held-back evaluations (caller holds ``_db_lock``): the index's copies and check-execution
        rows in one transaction, then each run's rows in one statement, as ``store_event_batch`` does.

        A failed batch statement committed nothing, so its events are written again one by one, as Dagster
        does with a failed batch; every event is tried, and the first failure is raised after them (with
        how many failed), in whichever call wrote them: nothing is written twice or dropped unsaid."""
        self._own_pending()
        events, self._pending = self._pending, []
        if not events:
            return
        errors: list[Exception] = []
        rows = _attempt(errors, [lambda e=e: (e, self._event_to_row(e)) for e in events])
        try:
            with self._transaction(INDEX_SHARD_NAME) as conn:
                for event, row in rows:
                    self._index_check_evaluation(conn, event, row)
        except Exception:  # noqa: BLE001 - one by one below; the errors that remain are raised
            _attempt(errors, [lambda e=e, r=r: self._index_one(e, r) for e, r in rows])
        for run_id in dict.fromkeys(e.run_id for e, _ in rows):
            mine = [(e, r) for e, r in rows if e.run_id == run_id]
            try:
                with self._transaction(run_id) as conn:
                    conn.execute(SqlEventLogStorageTable.insert(), [r for _, r in mine])
            except Exception:  # noqa: BLE001 - as above
                _attempt(errors, [lambda e=e, r=r: self._run_one(e, r) for e, r in mine])
        if errors:
            raise DagsterInvariantViolationError(
                f"{len(errors)} of {len(events)} held-back check evaluations could not be stored") from errors[0]

    def _index_one(self, event: EventLogEntry, row: dict[str, Any]) -> None:
        with self._transaction(INDEX_SHARD_NAME) as conn:
            self._index_check_evaluation(conn, event, row)

    def _run_one(self, event: EventLogEntry, row: dict[str, Any]) -> None:
        with self._transaction(event.run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), row)

    def _own_pending(self) -> None:
        """In a forked child, forget the evaluations the parent holds: the parent writes them (after the
        child's own events, if the child writes first: storage ids then follow the writes, not the clock)."""
        if self._pending_pid != os.getpid():
            self._pending, self._pending_pid = [], os.getpid()

    @staticmethod
    def _index_check_evaluation(conn: Connection, event: EventLogEntry, row: dict[str, Any]) -> None:
        """The evaluation's copy in the index and its check-execution row, as Dagster's ``store_event`` writes them."""
        event_id = conn.execute(_INSERT_INDEX_EVENT, row).scalar_one()
        execution = _execution_values(event, row, event_id)
        key = {f"k_{name}": execution[name] for name in ("asset_key", "check_name", "run_id", "partition")}
        updated = conn.execute(_UPDATE_EXECUTION, {**key, **execution}).rowcount
        if updated == 0:  # no planned row (Dagster inserts one then, too)
            conn.execute(AssetCheckExecutionsTable.insert(), execution)
        elif updated > 1:
            raise DagsterInvariantViolationError(
                f"Updated {updated} rows for asset check evaluation {execution['asset_key']} {execution['check_name']} "
                "as a result of duplicate AssetCheckPlanned events.")

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store a batch of one run's batchable events, each serialized once: first everything the index
        database gets (the events' copies, their tags, each asset's index row once with its last event of
        each kind, the planned check executions) in one transaction, then the run's database in one
        statement. Why in that order: Dagster stores a batch again one by one when this raises, so nothing
        may be committed before a failure; the index (shared by every run, the daemon and the webserver)
        is where a write may time out, and it is written whole or not at all."""
        if (not _HAS_RETURNING or len({e.run_id for e in events}) != 1
                or any(e.dagster_event_type not in BATCH_WRITABLE_EVENTS for e in events)):
            super().store_event_batch(events)  # one by one, as Dagster's own storage does
            return
        rows = [self._event_to_row(e) for e in events]
        mirrored = [(e, r) for e, r in zip(events, rows) if e.dagster_event_type in _MIRRORED]
        if mirrored:
            with self.index_connection() as conn:
                ids = [conn.execute(_INSERT_INDEX_EVENT, row).scalar_one() for _, row in mirrored]
                assets = [(e, i) for (e, _), i in zip(mirrored, ids) if e.dagster_event_type in ASSET_EVENTS]
                self._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
                for event, event_id in _last_of_each_asset_and_kind(assets):
                    self._store_asset_event(conn, event, event_id)
                planned = [r for (e, row), i in zip(mirrored, ids) if e.dagster_event_type in ASSET_CHECK_EVENTS
                           for r in _planned_rows(e, row, i)]
                if planned:
                    conn.execute(AssetCheckExecutionsTable.insert(), planned)
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)

    def _dispose_engines(self) -> None:
        with self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        """Close the connections first: the run shards' files are deleted (and with them what was held back)."""
        with self._db_lock:
            self._pending = []
        self._dispose_engines()
        super().wipe()

    def dispose(self) -> None:
        try:
            self.write_held_back()
        finally:
            self._dispose_engines()
            super().dispose()

    def write_held_back(self) -> None:
        """Write the held-back check evaluations now (``dispose`` does, and the process's exit)."""
        with self._db_lock:
            self._write_pending()


def _attempt(errors: list[Exception], calls: list[Callable[[], Any]]) -> list:
    """Each call's result, in order; a call that raises is left out and its error kept in ``errors``."""
    results = []
    for call in calls:
        try:
            results.append(call())
        except Exception as exc:  # noqa: BLE001 - kept, raised by the caller after every event was tried
            errors.append(exc)
    return results


def _write_at_exit(storage: weakref.ref) -> None:
    live = storage()
    if live is not None and live._pending:
        live.write_held_back()


def _execution_values(event: EventLogEntry, row: dict[str, Any], event_id: int) -> dict[str, Any]:
    """The check-execution row of a run's evaluation, as ``SqlEventLogStorage._update_asset_check_evaluation``
    writes it (``row``: the event's event-log row, whose ``event`` is the serialized event)."""
    evaluation = event.get_dagster_event().asset_check_evaluation_data
    passed = AssetCheckExecutionRecordStatus.SUCCEEDED if evaluation.passed else AssetCheckExecutionRecordStatus.FAILED
    target = evaluation.target_materialization_data
    return {"asset_key": evaluation.asset_key.to_string(), "check_name": evaluation.check_name,
            "run_id": event.run_id, "partition": evaluation.partition, "execution_status": passed.value,
            "evaluation_event": row["event"], "evaluation_event_timestamp": row["timestamp"],
            "evaluation_event_storage_id": event_id,
            "materialization_event_storage_id": target.storage_id if target else None}


def _planned_rows(event: EventLogEntry, row: dict[str, Any], event_id: int) -> list[dict[str, Any]]:
    """The check-execution rows of a planned check, one per partition, as
    ``SqlEventLogStorage._store_asset_check_evaluation_planned`` writes them (``row``: the event's
    event-log row, with the serialized event and its timestamp)."""
    planned = event.get_dagster_event().event_specific_data
    partitions = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
    return [{"asset_key": planned.asset_key.to_string(), "check_name": planned.check_name, "partition": partition,
             "run_id": event.run_id, "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
             "evaluation_event": row["event"], "evaluation_event_timestamp": row["timestamp"],
             "evaluation_event_storage_id": event_id} for partition in partitions]


def _last_of_each_asset_and_kind(events: list[tuple[EventLogEntry, int]]) -> list[tuple[EventLogEntry, int]]:
    """The last event of each asset and event type, in batch order: each overwrites the same columns of the
    asset's index row as the ones before it of its kind, so storing these leaves the row as storing all."""
    last = {(e.dagster_event.asset_key, e.dagster_event_type): n for n, (e, _) in enumerate(events)}
    return [events[n] for n in sorted(last.values())]


def _default_base_dir() -> str:
    """Where Dagster's own storage keeps the event log: ``$DAGSTER_HOME/history/runs``. Without
    DAGSTER_HOME (a command run in the project folder, which Dagster gives a throw-away instance
    configured by the folder's dagster.yaml) a throw-away folder too, removed when the process exits,
    as Dagster removes its own."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = tempfile.mkdtemp(prefix="dvd-dagster-events-")
        atexit.register(shutil.rmtree, home, ignore_errors=True)
    return os.path.join(home, "history", "runs")


def _synchronous_normal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
