"""Where does a run's time go? A profile of whole-graph runs, step by step.

Issue 19 asks to profile before making anything faster. For one run of the whole
graph over a range of days, launched exactly like ``dvd-platform materialize``
(a fresh process, the in-process executor, a SQLite ``DAGSTER_HOME``), this
script reports

* per step: its wall time (the run's STEP_START .. STEP_SUCCESS events), the Spark
  jobs and tasks submitted while it ran and how long they took (from Spark's own
  event log, written by its ``EventLoggingListener``: the classic driver gets
  ``spark.eventLog.*`` through ``PYSPARK_SUBMIT_ARGS``), and the SQL statements
  the warehouse received (the throw-away PostgreSQL cluster logs every statement,
  ``log_statement = all``, with an epoch timestamp);
* the events the run wrote to Dagster's event log, by type;
* the time outside any step: process start to the run's start (imports, the
  definitions), run start to the first step, the gaps between steps, and the
  last step's end to the process's exit.

Jobs and statements are given to the step that was running when they started
(steps run one at a time in process); the rest count as outside steps.

Sections (all but ``range`` skippable with ``--skip``):

``range``
    The whole selected range as one run, from a cold process (in classic mode its JVM start included). In
    connect mode it starts once the stack's warm-up of its new server (``dev/stack/spark_warmup.py``) has
    ended, as a user's runs start on the server ``make up`` leaves; ``--cold-server`` stops that warm-up at
    once instead, so the range is the server's first work. The JSON's ``server`` says which, and what the
    warm-up took.
``reference``
    Right after ``range``, on the same stack and days: the same job in plain SQL (``sql_reference.py``:
    one ``psql`` process ``\\copy``-ing the drops into stage tables, then the platform's own
    ``sql/load`` statements; no Spark, no Dagster) in a fresh database of the same cluster, timed as a
    whole and per phase. Its warehouse is then compared with the platform's by natural keys (table row
    counts, fact totals, facts bound to the unknown member, the marts, dimensions, facts per day):
    ``same_result``, with any differences, printed loudly (and the script exits 1). The JSON's
    ``ratio_platform_over_reference`` is the range's wall seconds over the reference's (issue 19: at
    most 5). The reference handles one snapshot of the reference tables (the pagila folder): with the
    generator's changing reference rows it refuses, and says so, rather than compute something else.
    Skipped with ``--select`` (it does the whole graph's job).
``repeat``
    The same range again on the same stack (a re-run or backfill over loaded days).
``one_day``
    Then the last day of the range again, in a fresh process, on the same stack:
    what a daily run costs once history is loaded.
``warm``
    On a fresh stack with a Spark Connect server, as ``make up`` leaves it: `dg dev` (webserver,
    daemon, code server) catches up with the seeded drops by itself, then one day at a time is
    launched over GraphQL as the UI launches it, timed from the launch to the run's success
    (``warm_launch.py``): the last day, a middle day (a re-run before the latest), the last day
    again, and twice the busiest day (the most rentals and payments both: pagila's last and
    middle days each load one fact only). Not profiled step by step: the runs' events are Dagster's own. Always
    Spark Connect (what ``make up`` uses) and the whole ``daily_pipeline`` job: ``--spark`` and
    ``--select`` do not apply to it. It adds a stack, a seed and the daemon's catch-up (for pagila,
    one range run) to the benchmark; ``--skip warm`` leaves it out.

The data are pagila (``../shared/datasets/pagila``) when that folder exists, else
(or with ``--source generated``) the built-in generator; ``--days N`` keeps the
first N days. Each section runs on a fresh stack (its own PostgreSQL and moto in a
temp dir, stopped at the end).

Usage (from the project root)::

    .venv/bin/python benchmarks/pipeline_benchmark.py [--source FOLDER|generated] [--days N]
        [--scale 1] [--spark classic,connect] [--select SELECTION] [--skip reference,repeat,one_day]
        [--spark-codegen] [--out benchmarks/results/pipeline.json]

Logging every statement and every Spark event costs a little; the figures are a
profile, not the fastest possible run. Results go to stdout and
``benchmarks/results/pipeline.json``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from common import WARM_UP_DEADLINE_SECONDS, host_info, load_average, log, open_instance, write_results
from warm_launch import BUSIEST, warm_launches
from scale_benchmark import BenchStack, run_measured, tail, versions
from sql_reference import (ReferenceAssumptionError, compare_warehouses, drop_database, reference_dsn,
                           run_reference)

from dvd_platform.dev.seed.sources import DEFAULT_SAMPLE
from dvd_platform.resources.spark import CODEGEN_ENV

SECTIONS = ("range", "reference", "repeat", "one_day", "warm")
RUN_SECTIONS = ("range", "repeat", "one_day")  # the profiled ``materialize`` runs
MODES = ("classic", "connect")
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "pipeline.json"
OUTSIDE = "(outside steps)"
#: One line per statement in the server log: "<epoch.ms> [<application_name>] LOG:  statement: <sql>".
STATEMENT_LINE = re.compile(r"^(\d+\.\d+) \[([^\]]*)\] LOG:  statement: (\S+)")
STEP_END_EVENTS = ("STEP_SUCCESS", "STEP_FAILURE")
#: What is counted per step besides its seconds (spark_job_seconds: the jobs' own durations, summed).
COUNTS = ("spark_actions", "spark_jobs", "spark_tasks", "spark_job_seconds", "sql_statements")


# --------------------------------------------------------------------------- the data


def make_source(kind: str, scale: float, days: int | None):
    """A folder of pagila-shaped CSVs, or the generator (``days`` days from its fixed start)."""
    if kind != "generated":
        from dvd_platform.dev.seed.sources import FolderSource

        return FolderSource(Path(kind))
    from dvd_platform.dev.seed.generator import DEFAULT_DAYS, GeneratedSource

    return GeneratedSource(scale=scale, seed=42, days=days or DEFAULT_DAYS)


def seed_bench(bench: BenchStack, source, days: int | None) -> tuple[list[date], dict[str, int]]:
    """Upload the first ``days`` days of ``source`` into the bench's landing bucket (timed apart, not profiled)."""
    from dvd_platform.dev.seed.upload import seed, select_days
    from dvd_platform.resources.s3 import s3_client

    selected = select_days(source, days=days)
    values = bench.values
    client = s3_client(values["DVD_S3_ENDPOINT_URL"], values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"])
    started = time.perf_counter()
    result = seed(source, client, values["DVD_LANDING_BUCKET"], selected, log=log)
    log(f"seeded {len(selected)} days {selected[0]}..{selected[-1]} ({result.objects} objects) "
        f"in {time.perf_counter() - started:.1f} s")
    return selected, result.rows


def log_every_statement(bench: BenchStack) -> Path:
    """Make the bench's cluster log each statement with an epoch timestamp; returns its server log."""
    import psycopg2

    conn = psycopg2.connect(bench.values["DVD_PG_ADMIN_DSN"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET log_statement = 'all'")
        cur.execute("ALTER SYSTEM SET log_line_prefix = '%n [%a] '")
        cur.execute("SELECT pg_reload_conf()")
    conn.close()
    return bench.root / "pg" / "server.log"


# --------------------------------------------------------------------------- what the run left behind


@dataclass
class RunEvents:
    """The runs one ``materialize`` launched (the days' run, the months' run, follow-ups for the good days
    of a blocked range): their steps' intervals and their events by type, together."""

    run_ids: list[str]
    run_start: float  # the first run's start
    run_end: float  # the last run's end
    steps: dict[str, tuple[float, float]]  # step key -> (STEP_START, STEP_SUCCESS) epoch seconds
    events: Counter


def run_events(home: Path, since: float) -> RunEvents:
    """Read the runs created since ``since`` (oldest first); a failed run or step is an error.

    A step key that comes again in a later run is named ``<key> (run N)``."""
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    starts, ends, events, run_ids, bounds = {}, {}, Counter(), [], []
    with open_instance(home) as instance:
        runs = instance.get_runs(RunsFilter(created_after=datetime.fromtimestamp(since, timezone.utc)))
        for index, run in enumerate(reversed(runs), start=1):
            if run.status != DagsterRunStatus.SUCCESS:
                raise RuntimeError(f"run {run.run_id} ended {run.status.value}")
            records = [r for r in instance.all_logs(run.run_id) if r.dagster_event is not None]
            run_ids.append(run.run_id)
            events.update(r.dagster_event.event_type_value for r in records)
            named = {}  # this run's step key -> the key it is reported under
            for r in records:
                kind = r.dagster_event.event_type_value
                if kind == "STEP_START":
                    named[r.step_key] = r.step_key if r.step_key not in starts else f"{r.step_key} (run {index})"
                    starts[named[r.step_key]] = r.timestamp
                elif kind in STEP_END_EVENTS:
                    ends[named[r.step_key]] = (r.timestamp, kind)
            by_type = {r.dagster_event.event_type_value: r.timestamp for r in records}
            bounds.append((by_type[DagsterEventType.RUN_START.value], by_type[DagsterEventType.RUN_SUCCESS.value]))
    if not run_ids:
        raise RuntimeError(f"{home}: no run was created")
    failed = [key for key, (_, kind) in ends.items() if kind != "STEP_SUCCESS"]
    if failed or set(starts) != set(ends):
        raise RuntimeError(f"runs {run_ids}: steps failed {failed}, unfinished {sorted(set(starts) - set(ends))}")
    return RunEvents(run_ids, min(b[0] for b in bounds), max(b[1] for b in bounds),
                     {key: (starts[key], ends[key][0]) for key in starts}, events)


class StepClock:
    """Which step was running at a moment (steps run one after the other in process)."""

    def __init__(self, steps: dict[str, tuple[float, float]]):
        self.ordered = sorted((start, end, key) for key, (start, end) in steps.items())
        self.starts = [start for start, _, _ in self.ordered]

    def step_at(self, moment: float) -> str:
        index = bisect.bisect_right(self.starts, moment) - 1
        if index >= 0 and moment <= self.ordered[index][1]:
            return self.ordered[index][2]
        return OUTSIDE


def spark_events(event_dir: Path, window: tuple[float, float]) -> tuple[list[dict], list[float]]:
    """From Spark's event logs under ``event_dir``, what started within ``window``.

    Returns the jobs (start, seconds, tasks) and the start of each SQL execution (one
    per action, such as a ``count`` or a write; adaptive execution may split one into
    several jobs).
    """
    started: dict[int, dict] = {}
    ended: dict[int, float] = {}
    executions = []
    for path in sorted(event_dir.rglob("events_*")):  # Spark 4 rolls its log: eventlog_v2_<app>/events_<n>_<app>
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                head = line[:80]
                if '"SparkListenerJobStart"' in head:
                    event = json.loads(line)
                    tasks = sum(stage["Number of Tasks"] for stage in event.get("Stage Infos", []))
                    started[event["Job ID"]] = {"start": event["Submission Time"] / 1000, "tasks": tasks}
                elif '"SparkListenerJobEnd"' in head:
                    event = json.loads(line)
                    ended[event["Job ID"]] = event["Completion Time"] / 1000
                elif 'SparkListenerSQLExecutionStart"' in head:
                    executions.append(json.loads(line)["time"] / 1000)
    jobs = [{**job, "seconds": ended.get(job_id, job["start"]) - job["start"]} for job_id, job in started.items()]
    return ([job for job in jobs if window[0] <= job["start"] <= window[1]],
            [moment for moment in executions if window[0] <= moment <= window[1]])


def statements(server_log: Path, window: tuple[float, float]) -> list[tuple[float, str, str]]:
    """(epoch, application, first keyword) of each statement logged within ``window``."""
    found = []
    with open(server_log, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            match = STATEMENT_LINE.match(line)
            if match and window[0] <= float(match[1]) <= window[1]:
                found.append((float(match[1]), match[2], match[3].upper().rstrip(";")))
    return found


def outside_steps(run: RunEvents, window: tuple[float, float]) -> dict[str, float]:
    """The process's time that no step accounts for, split where it goes."""
    ordered = sorted(run.steps.values())
    gaps = sum(max(0.0, nxt[0] - prev[1]) for prev, nxt in zip(ordered, ordered[1:]))
    return {
        "process_start_to_run_start": run.run_start - window[0],
        "run_start_to_first_step": ordered[0][0] - run.run_start,
        "between_steps": gaps,
        "last_step_to_run_end": run.run_end - ordered[-1][1],
        "run_end_to_process_exit": window[1] - run.run_end,
    }


# --------------------------------------------------------------------------- one profiled run


def event_log_conf(event_dir: Path) -> dict[str, str]:
    """Spark's event log into ``event_dir``, uncompressed (read back as JSON lines without a codec)."""
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": f"file://{event_dir}",
            "spark.eventLog.compress": "false"}


def codegen_env() -> dict[str, str]:
    """``--spark-codegen`` for a run: the bench stacks' environments leave out this shell's DVD_ variables."""
    return {CODEGEN_ENV: os.environ[CODEGEN_ENV]}


@dataclass
class Profiled:
    """One bench stack being profiled: where its logs are and how its runs reach Spark."""

    bench: BenchStack
    work: Path
    server_log: Path
    mode: str  # "classic": each run starts a driver; "connect": runs attach to the stack's server
    connect_events: Path  # the Connect server's event log (unused in classic mode)
    select: str | None  # an asset selection (default: the whole graph)

    def spark_env(self, label: str) -> tuple[dict[str, str], Path]:
        """The run's environment and where its Spark event log goes."""
        if self.mode == "connect":
            return {**self.bench.env(), **codegen_env()}, self.connect_events
        event_dir = self.work / f"spark-events-{label}"
        event_dir.mkdir(parents=True)
        conf = " ".join(f"--conf {key}={value}" for key, value in event_log_conf(event_dir).items())
        return {**self.bench.env(), **codegen_env(), "PYSPARK_SUBMIT_ARGS": f"{conf} pyspark-shell"}, event_dir


def per_step(run: RunEvents, jobs: list[dict], actions: list[float], logged: list[tuple]) -> dict[str, dict]:
    """Each step's seconds and what started while it ran; what started outside any step, apart."""
    clock = StepClock(run.steps)
    steps = {key: {"seconds": end - start, **dict.fromkeys(COUNTS, 0)} for key, (start, end) in run.steps.items()}
    steps[OUTSIDE] = {"seconds": 0.0, **dict.fromkeys(COUNTS, 0)}
    for moment in actions:
        steps[clock.step_at(moment)]["spark_actions"] += 1
    for job in jobs:
        step = steps[clock.step_at(job["start"])]
        step["spark_jobs"] += 1
        step["spark_tasks"] += job["tasks"]
        step["spark_job_seconds"] += job["seconds"]
    for moment, _, _ in logged:
        steps[clock.step_at(moment)]["sql_statements"] += 1
    return steps


def fact_counts(bench: BenchStack) -> dict[str, int]:
    """Rows in the facts (none when the selection loads no warehouse table)."""
    counts = {}
    for table in ("fact_rental", "fact_payment"):
        (exists,), = bench.query(f"SELECT to_regclass('dw.{table}') IS NOT NULL")
        if exists:
            (counts[table],), = bench.query(f"SELECT count(*) FROM dw.{table}")
    return counts


def profile_run(profiled: Profiled, first: date, last: date, label: str) -> dict:
    """Launch ``dvd-platform materialize`` over ``first..last`` in a fresh process and profile it."""
    env, event_dir = profiled.spark_env(label)
    argv = [sys.executable, "-m", "dvd_platform.cli", "materialize", "--from", first.isoformat(), "--to", last.isoformat()]
    if profiled.select:
        argv += ["--select", profiled.select]
    log(f"{label}: materializing {first}..{last} as one run")
    began = time.time()
    measured = run_measured(argv, env, profiled.work / f"run-{label}.log")
    window = (began, time.time())
    if measured.returncode != 0:
        raise RuntimeError(f"{label}: materialize failed (exit {measured.returncode}):\n"
                           f"{tail(profiled.work / f'run-{label}.log')}")
    run = run_events(profiled.bench.dagster_home, began)
    jobs, actions = spark_events(event_dir, window)
    logged = statements(profiled.server_log, window)
    steps = per_step(run, jobs, actions, logged)
    outside = outside_steps(run, window)
    steps[OUTSIDE]["seconds"] = sum(outside.values())
    warehouse = fact_counts(profiled.bench)
    log(f"{label}: {measured.seconds:.1f} s, {len(jobs)} Spark jobs, {len(logged)} SQL statements, "
        f"{sum(run.events.values())} events")
    return {
        "label": label, "first_day": first.isoformat(), "last_day": last.isoformat(), "run_ids": run.run_ids,
        "wall_seconds": measured.seconds, "peak_rss_mib": measured.peak_rss / 1024**2,
        "step_seconds_total": sum(end - start for start, end in run.steps.values()),
        "outside_steps": outside, "steps": steps,
        "spark_actions": len(actions), "spark_jobs": len(jobs), "sql_statements": len(logged),
        "sql_by_keyword": dict(Counter(keyword for _, _, keyword in logged).most_common()),
        "sql_by_application": dict(Counter(app or "(none)" for _, app, _ in logged).most_common()),
        "events": sum(run.events.values()), "events_by_type": dict(run.events.most_common()),
        "warehouse": warehouse,
    }


def profile_stack(base: Path, source, days: int | None, sections: list[str], mode: str, select: str | None,
                  cold_server: bool = False) -> dict:
    """A fresh stack (with a Spark Connect server in ``connect`` mode): seed, then each section's run, profiled.

    In ``connect`` mode the range starts once the stack's warm-up (``dev/stack/spark_warmup.py``) has ended, as
    a user's runs start on the server ``make up`` left; with ``cold_server`` the warm-up is stopped as soon as
    the stack is up, so the range is the server's first work."""
    work = base / mode
    connect_events = work / "spark-events-server"
    connect_events.mkdir(parents=True)
    options = {"spark_connect": True, "spark_connect_conf": event_log_conf(connect_events)} if mode == "connect" else {}
    with BenchStack(base / f"stack-{mode}", stack_options=options) as bench:
        profiled = Profiled(bench, work, log_every_statement(bench), mode, connect_events, select)
        if mode == "connect" and cold_server:
            bench.stack.stop_warm_up()
        selected, rows = seed_bench(bench, source, days)
        out: dict[str, object] = {"days": len(selected), "first_day": selected[0].isoformat(),
                                  "last_day": selected[-1].isoformat(), "seeded_rows": rows}
        if mode == "connect":
            out["server"] = _server_state(bench, cold_server)
        out["range"] = profile_run(profiled, selected[0], selected[-1], f"{mode}-range")
        if "reference" in sections:
            out["reference"] = reference_section(profiled, source, selected, out["range"]["wall_seconds"])
        if "repeat" in sections:
            out["repeat"] = profile_run(profiled, selected[0], selected[-1], f"{mode}-repeat")
        if "one_day" in sections:
            out["one_day"] = profile_run(profiled, selected[-1], selected[-1], f"{mode}-one-day")
    return out


def _server_state(bench: BenchStack, cold_server: bool) -> dict:
    """Wait for the stack's warm-up to end (after seeding, as under ``make up``); what it took, from its log.
    A warm-up that did not end, or ended without its closing line, stops the benchmark: the range would not
    be on the server it claims."""
    started = time.monotonic()
    warm_log = bench.stack.wait_for_warm_up(WARM_UP_DEADLINE_SECONDS)
    waited = time.monotonic() - started
    took = re.findall(r"^spark connect warm-up: ([0-9.]+) s", warm_log, re.M)
    if not cold_server and not took:
        raise RuntimeError(f"the stack's warm-up did not finish:\n{warm_log[-3000:]}")
    state = {"warm_up": "stopped at once" if cold_server else "ended",
             "warm_up_seconds": float(took[-1]) if took else None, "waited_after_seeding_seconds": waited}
    log(f"server: warm-up {state['warm_up']}" + (f" in {took[-1]} s" if took else "")
        + f", {waited:.1f} s waited after seeding")
    return state


def warm_stack(base: Path, source, days: int | None) -> dict:
    """The ``warm`` section on its own fresh stack with a Spark Connect server (what ``make up`` starts)."""
    work = base / "warm"
    work.mkdir(parents=True)
    with BenchStack(base / "stack-warm", stack_options={"spark_connect": True}) as bench:
        selected, rows = seed_bench(bench, source, days)
        last, middle = selected[-1].isoformat(), selected[len(selected) // 2].isoformat()
        result = warm_launches({**bench.env(), **codegen_env()}, work, [last, middle, last, BUSIEST, BUSIEST],
                               seeded=[d.isoformat() for d in selected])
    return {"days": len(selected), "first_day": selected[0].isoformat(), "last_day": selected[-1].isoformat(),
            "seeded_rows": rows, **result}


# --------------------------------------------------------------------------- the plain-SQL reference


def reference_section(profiled: Profiled, source, selected: list[date], range_seconds: float) -> dict:
    """The plain-SQL reference (``sql_reference.py``) on the range's stack and days, right after the range,
    then its warehouse compared with the one the range left; the range's seconds over the reference's.

    Why on the same stack and right after: the ratio is only meaningful between runs on the same cluster
    and the same machine state. A refusal (drops that are not one snapshot) is recorded, not raised: the
    other sections' figures still count."""
    if profiled.select:
        log(f"reference: skipped, --select {profiled.select} runs part of the graph and the reference does all of it")
        return {"skipped": f"--select {profiled.select}: the reference does the whole graph's job"}
    values = profiled.bench.values
    log(f"reference: plain SQL over {selected[0]}..{selected[-1]} in a fresh database")
    try:
        result = run_reference(values["DVD_PG_ADMIN_DSN"], values["DVD_PG_DSN"], source, selected[0], selected[-1])
        check = compare_warehouses(values["DVD_PG_DSN"], reference_dsn(values["DVD_PG_DSN"]))
    except ReferenceAssumptionError as exc:
        log(f"reference: REFUSED: {exc}")
        return {"refused": str(exc), "same_result": None}
    except Exception as exc:  # noqa: BLE001 - the sections already measured must still be written
        log(f"reference: FAILED: {exc!r}")
        return {"refused": f"failed: {exc!r}", "same_result": None}
    finally:
        drop_database(values["DVD_PG_ADMIN_DSN"])
    ratio = range_seconds / result["wall_seconds"]
    log(f"reference: {result['wall_seconds']:.2f} s; platform range {range_seconds:.1f} s, "
        f"platform / reference {ratio:.1f}x; same_result {check['same_result']}")
    if not check["same_result"]:
        log("reference: THE PLATFORM'S WAREHOUSE AND THE REFERENCE'S DIFFER:\n"
            + json.dumps(check["differences"], indent=2, default=str))
    return {**result, **check, "platform_range_wall_seconds": range_seconds,
            "ratio_platform_over_reference": ratio}


def reference_summary(mode: str, reference: dict) -> str:
    """The reference's figures, or why there are none; its differences from the platform, loudly."""
    if "wall_seconds" not in reference:
        return f"reference ({mode} stack): {reference.get('skipped') or 'REFUSED: ' + reference['refused']}"
    phases = reference["phases"]
    stages = sum(v for k, v in phases.items() if k.startswith("stage:"))
    loads = {k.split(":", 1)[1]: v for k, v in phases.items() if k.startswith("load:")}
    lines = [f"reference ({mode} stack, plain SQL): {reference['wall_seconds']:.2f} s (copy {phases['copy']:.2f}, "
             f"typed {phases['typed']:.2f}, verify {phases['verify']:.2f}, stages {stages:.2f}, "
             f"loads {sum(loads.values()):.2f}); platform range {reference['platform_range_wall_seconds']:.1f} s; "
             f"platform / reference {reference['ratio_platform_over_reference']:.1f}x; "
             f"same_result {str(reference['same_result']).lower()}",
             "  loads: " + ", ".join(f"{k} {v:.2f} s" for k, v in loads.items())]
    if not reference["same_result"]:
        lines.append("  !!! THE PLATFORM'S WAREHOUSE AND THE REFERENCE'S DIFFER !!!")
        lines.append(json.dumps(reference["differences"], indent=2, default=str))
    return "\n".join(lines)


# --------------------------------------------------------------------------- report


def run_table(profile: dict) -> str:
    """Steps by wall time, then the time outside steps and the events."""
    lines = [f"{profile['label']}: {profile['first_day']}..{profile['last_day']}, wall {profile['wall_seconds']:.1f} s, "
             f"steps {profile['step_seconds_total']:.1f} s, peak RSS {profile['peak_rss_mib']:,.0f} MiB",
             f"  {'step':<44} {'seconds':>8} {'actions':>8} {'jobs':>6} {'tasks':>6} {'job s':>7} {'SQL':>6}"]
    for key, step in sorted(profile["steps"].items(), key=lambda kv: -kv[1]["seconds"]):
        lines.append(f"  {key:<44} {step['seconds']:>8.1f} {step['spark_actions']:>8} {step['spark_jobs']:>6} "
                     f"{step['spark_tasks']:>6} "
                     f"{step['spark_job_seconds']:>7.1f} {step['sql_statements']:>6}")
    lines.append("  outside steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in profile["outside_steps"].items()))
    lines.append(f"  events written: {profile['events']:,} (" + ", ".join(
        f"{k} {v:,}" for k, v in list(profile["events_by_type"].items())[:6]) + ", ...)")
    lines.append(f"  SQL statements: {profile['sql_statements']:,} (" + ", ".join(
        f"{k} {v:,}" for k, v in list(profile["sql_by_keyword"].items())[:8]) + ")")
    return "\n".join(lines)


def print_stacks(report: dict, modes: list[str]) -> None:
    """Each stack's profiled runs, then its plain-SQL reference."""
    for mode in modes:
        for section in RUN_SECTIONS:
            if section in report[mode]:
                print(run_table(report[mode][section]) + "\n")
        if "reference" in report[mode]:
            print(reference_summary(mode, report[mode]["reference"]) + "\n")


def _arguments(argv: list[str] | None) -> tuple[argparse.Namespace, list[str], list[str]]:
    """The command line, checked: the arguments, the sections to run and the Spark modes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(DEFAULT_SAMPLE) if DEFAULT_SAMPLE.is_dir() else "generated",
                        help=f"a folder of pagila-shaped CSVs, or 'generated' (default: {DEFAULT_SAMPLE} "
                        "when it exists, else generated)")
    parser.add_argument("--days", type=int, help="only the first N days of the source (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="generator scale (default 1)")
    parser.add_argument("--spark", default=",".join(MODES),
                        help="comma-separated: classic (each run starts its driver), connect (runs attach to the "
                        "stack's Spark Connect server); each on a fresh stack (default both)")
    parser.add_argument("--select", help="Dagster asset selection for every run, e.g. 'key:raw_*' "
                        "(default: the whole graph)")
    parser.add_argument("--skip", default="", help=f"comma-separated sections to skip: {', '.join(SECTIONS[1:])}")
    parser.add_argument("--cold-server", action="store_true",
                        help="connect: stop the stack's warm-up at once, so the range is the new server's first work "
                        "(default: the range starts after the warm-up, as on the server `make up` leaves)")
    parser.add_argument("--spark-codegen", action="store_true",
                        help="runs, and the stack's warm-up, with DVD_SPARK_CODEGEN=1: Spark generates code for each "
                        "query (default: the platform's default, interpreted)")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help=f"JSON results (default {RESULTS_FILE})")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(SECTIONS[1:]):
        parser.error(f"--skip: not a section that can be skipped: {', '.join(sorted(skip - set(SECTIONS[1:])))}")
    if args.days is not None and args.days < 1:
        parser.error("--days must be positive")
    sections = [s for s in SECTIONS if s not in skip]
    modes = [m for m in args.spark.split(",") if m]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--spark: one or more of {', '.join(MODES)}")
    if args.cold_server and modes != ["connect"]:
        parser.error("--cold-server applies to --spark connect only (a classic run starts its own JVM)")
    return args, sections, modes


def main(argv: list[str] | None = None) -> int:
    args, sections, modes = _arguments(argv)
    # Read by the runs (codegen_env) and, from this process's environment, by the stacks' warm-ups.
    os.environ[CODEGEN_ENV] = "1" if args.spark_codegen else "0"
    info = {**host_info(), **versions()}
    started = datetime.now(timezone.utc)
    base = Path(tempfile.mkdtemp(prefix="dvd-pipeline-bench-"))
    base.chmod(0o755)  # as root the Postgres server runs as 'postgres' and must reach its data dir
    source = make_source(args.source, args.scale, args.days)
    try:
        report = {mode: profile_stack(base, source, args.days, sections, mode, args.select, args.cold_server)
                  for mode in modes}
        if "warm" in sections:
            report["warm"] = warm_stack(base, source, args.days)
    except BaseException:
        log(f"failed; logs kept in {base}")
        raise
    info["load_average_at_end"] = load_average()
    shutil.rmtree(base, ignore_errors=True)

    print(f"\nPipeline benchmark ({started:%Y-%m-%d %H:%M} UTC, {source.description}, "
          f"{datetime.now(timezone.utc) - started} wall)\n")
    print_stacks(report, modes)
    if "warm" in report:
        print(f"warm ({report['warm']['days']} days seeded): dg dev serving after {report['warm']['ready_seconds']:.1f} s, "
              f"daemon's catch-up {report['warm']['catch_up_seconds']:.1f} s; launches: " + ", ".join(
                  f"{x['day']} {x['wall_seconds']:.1f} s (queued {x['queued_seconds']:.1f})"
                  for x in report["warm"]["launches"]) + "\n")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    if {"classic", "connect"} <= set(report):
        ratios = {section: report["classic"][section]["wall_seconds"] / report["connect"][section]["wall_seconds"]
                  for section in sections if section in RUN_SECTIONS}
        report["classic_over_connect"] = ratios
        print("classic / connect wall time: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    write_results(args.out, started, {"source": source.description, "sections_run": sections, "machine": info,
                                      "cold_server": args.cold_server, "spark_codegen": args.spark_codegen,
                                      **report})
    differing = [mode for mode in modes if report[mode].get("reference", {}).get("same_result") is False]
    if differing:
        print(f"\nTHE PLAIN-SQL REFERENCE AND THE PLATFORM DIFFER ({', '.join(differing)})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
