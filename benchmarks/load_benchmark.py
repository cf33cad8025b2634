"""How fast does the platform put rows into PostgreSQL, next to the ceiling and Spark's JDBC writer?

The platform loads a fact by having Spark's executors stream CSV lines made in
the JVM with ``COPY`` into an UNLOGGED stage table (``warehouse/copy_in.py``),
then applying ``sql/load/<asset>.sql`` in one transaction
(``WarehouseResource.load``). The claim behind that design is that it runs close
to ``psql \\copy`` and well ahead of ``DataFrame.write.jdbc``. This script checks
the claim on this machine: it loads the same N payment rows (made by the seed
generator, staged by the platform's own staging transform, then cached in
Spark's memory, as psql's CSV file is ready-made) through every path in one process and one PostgreSQL
server, so the ratios compare like with like even when absolute rates drift
from run to run.

Paths (each into an empty table; the rows are verified by count and sum after
each timing, outside it):

* ``psql_copy`` (the ceiling): ``psql \\copy`` of one CSV file holding exactly the
  lines the platform streams, into an UNLOGGED table of the stage shape;
* ``platform_load``: ``WarehouseResource.load`` for ``fact_payment``, timed as a
  whole (executor COPY into the stage, window check, month partitions, one
  SERIALIZABLE transaction that builds each of the window's six whole months as
  a table with the lookups, builds its indexes and swaps it in for the month's
  partition of the logged ``dw.fact_payment``, and the audit row);
* ``platform_load_delete_insert``: the same call with the swap switched off, so
  the months are deleted and re-inserted row by row into the indexed table: the
  way a window with partial months (a daily load) replaces its days;
* ``platform_stage``: only the first half of that, ``copy_dataframe`` into an
  UNLOGGED table: the part that competes with the ceiling;
* ``psql_copy_fact`` (the ceiling of an append, and of the delete+insert path): ``psql \\copy`` of the very
  rows the platform path left in ``dw.fact_payment`` (exported once, untimed),
  back into ``dw.fact_payment`` itself: the same partitions, primary key,
  indexes and foreign-key checks, without the stage, the lookups, the
  delete of the window or the transaction: the ceiling of an append;
* ``psql_swap_fact`` (the ceiling of ``platform_load``): the same swap done by
  hand in one psql transaction: ``\\copy`` of those rows month by month into bare
  tables, then ``dw.swap_partitions`` (the same index builds, key validation and
  attach), without the stage, the lookups or Spark;
* ``jdbc_default`` and ``jdbc_tuned``: ``df.write.jdbc`` into an UNLOGGED table,
  with the driver's defaults, and with ``reWriteBatchedInserts=true`` and
  ``batchsize=10000``.

Usage (from the project root)::

    .venv/bin/python benchmarks/load_benchmark.py [--rows 2000000] [--repeat 3]

A throw-away stack (PostgreSQL with its default settings) is started in a temp
dir unless ``DVD_PG_DSN`` names a warehouse; then the platform path refuses to
run if ``dw.fact_payment`` already holds rows in the benchmark's window.
Results go to stdout and ``benchmarks/results/load.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from time import perf_counter

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import parse_dsn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dvd_platform.io_managers.postgres import LOAD_SPECS
from dvd_platform.resources.spark import SparkResource
from dvd_platform.resources.warehouse import WarehouseResource
from dvd_platform.dev.seed.generator import GeneratedSource
from dvd_platform.dev.stack import Stack
from dvd_platform.transforms.staging import SourceFile, stage_table
from dvd_platform.transforms.warehouse import payment_rows
from dvd_platform.warehouse.copy_in import PART_COLUMN, copy_dataframe, csv_lines
from dvd_platform.warehouse.window import Window

from common import host_info, load_average, log, results_file, write_results

JDBC_JAR = Path("/usr/share/java/postgresql.jar")
JDBC_PACKAGE = "libpostgresql-jdbc-java"
ASSET = "fact_payment"
SPEC = LOAD_SPECS[ASSET]
COLUMNS = [name for name, _ in SPEC.stage_columns]
# Whole UTC months: the platform path then fills exactly the partitions
# fact_payment_p2022_02 .. _p2022_07, so truncating them undoes it and nothing else.
WINDOW = Window(date(2022, 2, 1), date(2022, 7, 31))
MONTH_PARTITIONS = tuple(f"fact_payment_p2022_{m:02d}" for m in range(2, 8))
WINDOW_BOUNDS = (WINDOW.params["window_start"], WINDOW.params["window_end"])
WINDOW_ROWS = sql.SQL("SELECT count(*), sum(amount) FROM dw.fact_payment WHERE payment_ts >= %s AND payment_ts < %s")
# Generator scale giving a little over 2,000,000 payments in WINDOW (about 133 x scale rentals a day).
ROWS_PER_SCALE = 24_000
BENCH_SCHEMA = "dw_stage"  # owned by the loader and meant for UNLOGGED scratch tables
RESULTS_FILE = results_file("load")
CEILING = "psql_copy"
FACT_CEILING = "psql_copy_fact"
SWAP_CEILING = "psql_swap_fact"


@dataclass(frozen=True)
class LoadPath:
    """One load path: a key for the JSON, a label for the table, and the function timing one load."""

    key: str
    label: str
    run: Callable[[], float]
    ceiling: str = CEILING  # the path it is measured against: the same rows into the same kind of table


@dataclass
class Bench:
    """What every path needs: the rows, where they go, and what they must add up to."""

    df: DataFrame
    rows: int
    amount_sum: Decimal
    dsn: str
    admin_dsn: str | None
    scratch: Path
    warehouse: WarehouseResource = field(init=False)

    def __post_init__(self) -> None:
        self.warehouse = WarehouseResource(dsn=self.dsn)

    @property
    def fact_csv(self) -> Path:
        return self.scratch / "fact_payment.csv"

    def month_csv(self, partition: str) -> Path:
        return self.scratch / f"{partition}.csv"

    def execute(self, statement: sql.Composable | str, params: tuple | None = None) -> list[tuple]:
        return self.warehouse.query(statement, params)

    def fresh_table(self, name: str, with_part: bool = True) -> sql.Identifier:
        """An empty UNLOGGED table of the stage shape (recreated, so no repeat inherits bloat).

        ``with_part``: plus the stage's ``_part`` column, which the CSV lines of the platform
        (and so the ceiling's file) carry; the JDBC writer inserts the DataFrame's columns only.
        """
        table = sql.Identifier(BENCH_SCHEMA, name)
        columns = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in SPEC.stage_columns]
        if with_part:
            columns.append(sql.SQL("{} int NOT NULL").format(sql.Identifier(PART_COLUMN)))
        self.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        self.execute(sql.SQL("CREATE UNLOGGED TABLE {} ({})").format(table, sql.SQL(", ").join(columns)))
        return table

    def fresh_ledger(self, name: str) -> sql.Identifier:
        """The per-partition ledger ``copy_dataframe`` needs (as ``WarehouseResource.load`` creates it)."""
        ledger = sql.Identifier(BENCH_SCHEMA, name)
        self.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ledger))
        self.execute(sql.SQL("CREATE UNLOGGED TABLE {} (part int PRIMARY KEY, attempts int NOT NULL DEFAULT 1)")
                     .format(ledger))
        return ledger

    def verify_and_drop(self, table: sql.Identifier) -> None:
        self.verify(sql.SQL("SELECT count(*), sum(amount) FROM {}").format(table), ".".join(table.strings))
        self.execute(sql.SQL("DROP TABLE {}").format(table))

    def verify(self, query: sql.Composable, what: str, params: tuple | None = None) -> None:
        """A fast wrong load is worthless: every path must have loaded exactly the rows."""
        (count, total), = self.execute(query, params)
        if (count, total) != (self.rows, self.amount_sum):
            raise RuntimeError(f"{what}: loaded {count} rows summing to {total}, "
                               f"expected {self.rows} summing to {self.amount_sum}")

    def settle(self) -> None:
        """Flush the previous path's dirty buffers now, so no path pays for another's checkpoint."""
        if self.admin_dsn:
            conn = psycopg2.connect(self.admin_dsn)
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    cur.execute("CHECKPOINT")
            finally:
                conn.close()


def payments(spark: SparkSession, rows: int, scratch: Path) -> DataFrame:
    """At least ``rows`` payments in WINDOW from the seed generator, staged and shaped as the pipeline does.

    The generated drops are staged by ``stage_table`` and turned into fact rows by
    ``payment_rows`` once, written as Parquet and read back into Spark's memory cache:
    no path pays for generating, staging or decoding rows.
    """
    scale = rows / ROWS_PER_SCALE * 1.03
    days = [WINDOW.first_day + timedelta(i) for i in range((WINDOW.last_day - WINDOW.first_day).days + 1)]
    drops = scratch / "drops"
    log(f"generating {len(days)} days of drops at scale {scale:.1f}")
    GeneratedSource(scale=scale, start=WINDOW.first_day, days=len(days)).write_days(days, drops)
    files = [SourceFile(uri=f"file://{drops / 'payment' / f'dt={day}' / 'payment.csv'}", day=day,
                        source_object=f"payment/dt={day}/payment.csv") for day in days]
    staged = stage_table(spark, "payment", files)
    snapshot = scratch / "payments.parquet"
    payment_rows(staged.staged).write.parquet(str(snapshot))
    staged.annotated.unpersist()
    shutil.rmtree(drops)
    # Cached in memory before any timing: psql reads rows that are already made, so every
    # path starts from rows already made too, and times only how they travel.
    df = spark.read.parquet(str(snapshot)).cache()
    df.count()
    return df


def ensure_jdbc_jar() -> str | None:
    """Install Debian's PostgreSQL JDBC driver if missing; return why the JDBC paths are skipped, or None."""
    if JDBC_JAR.exists():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{JDBC_JAR} is missing and installing {JDBC_PACKAGE} needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", JDBC_PACKAGE]
    log(f"installing {JDBC_PACKAGE} for the JDBC baselines")
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            return f"`apt-get install {JDBC_PACKAGE}` failed: {result.stderr.strip()[-300:]}"
    return None if JDBC_JAR.exists() else f"{JDBC_PACKAGE} is installed but {JDBC_JAR} is not there"


def start_spark(jdbc: bool) -> SparkSession:
    """The platform's Spark conf plus the JDBC jar: the first session in a process fixes ``spark.jars``."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = SparkResource().spark_config()
    conf["spark.app.name"] = "dvd_platform_load_benchmark"
    if jdbc:
        conf["spark.jars"] = str(JDBC_JAR)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def jdbc_target(dsn: str) -> tuple[str, dict[str, str]]:
    """The JDBC URL and connection properties for the same server, database and role as ``dsn``."""
    parts = parse_dsn(dsn)
    url = f"jdbc:postgresql://{parts.get('host', '127.0.0.1')}:{parts.get('port', '5432')}/{parts['dbname']}"
    return url, {"user": parts["user"], "password": parts.get("password", ""), "driver": "org.postgresql.Driver"}


def psql_env(dsn: str) -> dict[str, str]:
    """libpq variables for psql, so the password stays out of the process list."""
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE"}
    return {**os.environ, **{names[k]: v for k, v in parse_dsn(dsn).items() if k in names}}


def write_single_csv(bench: Bench) -> Path:
    """The ceiling's input: the very lines the platform streams, in one file (once, untimed)."""
    parts_dir = bench.scratch / "ceiling_parts"
    lines = csv_lines(bench.df, COLUMNS)
    lines.select(F.expr("left(line, length(line) - 1)")).write.text(str(parts_dir))  # text() adds the newline
    target = bench.scratch / "payments.csv"
    with open(target, "wb") as out:
        for part in sorted(parts_dir.glob("part-*.txt")):
            with open(part, "rb") as stream:
                shutil.copyfileobj(stream, out, 1 << 20)
    shutil.rmtree(parts_dir)
    return target


def psql(bench: Bench, command: str, *options: str) -> None:
    """One psql meta-command (or, with options ``-1 -f file``, one script) against the benchmark's database."""
    result = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *options, *(["-c", command] if command else [])],
                            env=psql_env(bench.dsn), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"psql {command!r} failed: {result.stderr.strip()}")


def psql_copy(bench: Bench, csv_file: Path) -> float:
    table = bench.fresh_table("bench_psql_copy")
    started = perf_counter()
    psql(bench, f"\\copy {BENCH_SCHEMA}.bench_psql_copy FROM '{csv_file}' WITH (FORMAT csv)")
    seconds = perf_counter() - started
    bench.verify_and_drop(table)
    return seconds


def platform_load(bench: Bench, swap_whole_months: bool = SPEC.swap_whole_months) -> float:
    (already, _), = bench.execute(WINDOW_ROWS, WINDOW_BOUNDS)
    if already:
        raise RuntimeError(f"dw.fact_payment already holds {already} rows in {WINDOW}: the platform path would "
                           "replace them; point DVD_PG_DSN at a scratch warehouse (or unset it)")
    started = perf_counter()
    result = bench.warehouse.load(ASSET, replace(SPEC, swap_whole_months=swap_whole_months), bench.df, WINDOW,
                                  run_id=f"load-benchmark-{uuid.uuid4().hex[:8]}")
    seconds = perf_counter() - started
    if (result.rows_staged, result.rows_loaded) != (bench.rows, bench.rows):
        raise RuntimeError(f"platform load staged {result.rows_staged} and loaded {result.rows_loaded} rows, "
                           f"expected {bench.rows}")
    bench.verify(WINDOW_ROWS, "dw.fact_payment", WINDOW_BOUNDS)
    if not bench.fact_csv.exists():  # the whole-load ceilings' input: exactly these rows (untimed)
        psql(bench, f"\\copy (SELECT * FROM dw.fact_payment WHERE payment_ts >= '{WINDOW.params['window_start']}' "
                    f"AND payment_ts < '{WINDOW.params['window_end']}') TO '{bench.fact_csv}' WITH (FORMAT csv)")
        for partition in MONTH_PARTITIONS:
            psql(bench, f"\\copy dw.{partition} TO '{bench.month_csv(partition)}' WITH (FORMAT csv)")
    empty_window(bench)
    return seconds


def empty_window(bench: Bench) -> None:
    """The window is exactly these months and was empty before: emptying them undoes one load only."""
    bench.execute(sql.SQL("TRUNCATE {}").format(
        sql.SQL(", ").join(sql.Identifier("dw", name) for name in MONTH_PARTITIONS)))


def psql_copy_fact(bench: Bench) -> float:
    """``psql \\copy`` of the platform's own fact rows straight into ``dw.fact_payment`` (an append)."""
    if not bench.fact_csv.exists():
        raise RuntimeError("psql_copy_fact runs after platform_load, which exports its rows")
    started = perf_counter()
    psql(bench, f"\\copy dw.fact_payment FROM '{bench.fact_csv}' WITH (FORMAT csv)")
    seconds = perf_counter() - started
    bench.verify(WINDOW_ROWS, "dw.fact_payment", WINDOW_BOUNDS)
    empty_window(bench)
    return seconds


def psql_swap_fact(bench: Bench) -> float:
    """The platform's swap done by hand: in one psql transaction, ``\\copy`` each month's fact rows
    into a bare table and swap them in with ``dw.swap_partitions`` (the same index builds, key
    validation and attach). No stage, no lookups: the least work a swap of these rows can do."""
    if not all(bench.month_csv(p).exists() for p in MONTH_PARTITIONS):
        raise RuntimeError("psql_swap_fact runs after platform_load, which exports its rows")
    script = bench.scratch / "swap.sql"
    lines = ["LOCK TABLE dw.fact_payment IN SHARE ROW EXCLUSIVE MODE;"]
    for partition in MONTH_PARTITIONS:
        lines += [f"CREATE TABLE dw_stage.{partition} (LIKE dw.fact_payment INCLUDING DEFAULTS);",
                  f"\\copy dw_stage.{partition} FROM '{bench.month_csv(partition)}' WITH (FORMAT csv)"]
    lines.append("SELECT dw.swap_partitions('dw.fact_payment', ARRAY[{}]::regclass[]);".format(
        ", ".join(f"'dw_stage.{p}'" for p in MONTH_PARTITIONS)))
    script.write_text("\n".join(lines) + "\n")
    started = perf_counter()
    psql(bench, "", "-1", "-f", str(script))
    seconds = perf_counter() - started
    bench.verify(WINDOW_ROWS, "dw.fact_payment", WINDOW_BOUNDS)
    empty_window(bench)
    return seconds


def platform_stage(bench: Bench) -> float:
    table = bench.fresh_table("bench_platform_stage")
    ledger = bench.fresh_ledger("bench_platform_stage_parts")
    started = perf_counter()
    copied = copy_dataframe(bench.df, COLUMNS, bench.dsn, (BENCH_SCHEMA, "bench_platform_stage"),
                            (BENCH_SCHEMA, "bench_platform_stage_parts"))
    seconds = perf_counter() - started
    if copied != bench.rows:
        raise RuntimeError(f"copy_dataframe reported {copied} rows, expected {bench.rows}")
    bench.execute(sql.SQL("DROP TABLE {}").format(ledger))
    bench.verify_and_drop(table)
    return seconds


def jdbc_write(bench: Bench, name: str, url: str, properties: dict[str, str]) -> float:
    table = bench.fresh_table(name, with_part=False)
    started = perf_counter()
    bench.df.write.jdbc(url, f"{BENCH_SCHEMA}.{name}", mode="append", properties=properties)
    seconds = perf_counter() - started
    bench.verify_and_drop(table)
    return seconds


def jdbc_warm_up(bench: Bench, url: str, properties: dict[str, str]) -> None:
    """Load the driver's classes on 10,000 rows, untimed, so the first JDBC path does not pay for it alone."""
    table = bench.fresh_table("bench_jdbc_warmup", with_part=False)
    bench.df.limit(10_000).write.jdbc(url, f"{BENCH_SCHEMA}.bench_jdbc_warmup", mode="append", properties=properties)
    bench.execute(sql.SQL("DROP TABLE {}").format(table))


def machine(spark: SparkSession, bench: Bench) -> dict[str, object]:
    """What the figures depend on, recorded next to them."""
    settings = dict(bench.execute("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                                  (["shared_buffers", "max_wal_size", "synchronous_commit", "fsync", "wal_level"],)))
    (server_version,), = bench.execute("SHOW server_version")
    jdbc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", JDBC_PACKAGE], capture_output=True, text=True)
    info = host_info()
    start_load = info.pop("load_average_at_start")  # kept last, as before
    return {
        **info,
        "spark": spark.version,
        "java": spark.sparkContext._jvm.System.getProperty("java.version"),
        "postgres": server_version,
        "postgres_settings": settings,
        "psql": subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip(),
        "jdbc_driver": jdbc.stdout.strip() if jdbc.returncode == 0 and JDBC_JAR.exists() else None,
        "load_average_at_start": start_load,
    }


def table(results: list[dict], rows: int) -> str:
    header = ("path", "rows", "seconds", "rows/s", "vs ceiling", "ceiling")
    lines = ["{:<66} {:>10} {:>8} {:>9} {:>10}  {}".format(*header)]
    for r in results:
        lines.append(f"{r['label']:<66} {rows:>10,} {r['seconds']:>8.2f} {r['rows_per_s']:>9,.0f} {r['ratio']:>10.2f}  "
                     f"{r['ceiling']}")
    return "\n".join(lines)


def run(bench: Bench, repeat: int, jdbc_skipped: str | None) -> list[dict]:
    """Each path ``repeat`` times, interleaved, keeping the best; each ratio is against its ceiling's best."""
    log("writing the ceiling's single CSV file (also warms Spark's CSV writer)")
    csv_file = write_single_csv(bench)
    paths = [
        LoadPath(CEILING, "psql \\copy of one CSV file (ceiling)", lambda: psql_copy(bench, csv_file)),
        LoadPath("platform_load", "platform: WarehouseResource.load(fact_payment), whole call",
                 lambda: platform_load(bench), ceiling=SWAP_CEILING),
        LoadPath("platform_load_delete_insert", "platform, whole call, months deleted and re-inserted (no swap)",
                 lambda: platform_load(bench, swap_whole_months=False), ceiling=FACT_CEILING),
        LoadPath(FACT_CEILING, "psql \\copy of the same fact rows into dw.fact_payment (ceiling)",
                 lambda: psql_copy_fact(bench), ceiling=FACT_CEILING),
        LoadPath(SWAP_CEILING, "psql \\copy of the same rows by month + dw.swap_partitions (ceiling)",
                 lambda: psql_swap_fact(bench), ceiling=SWAP_CEILING),
        LoadPath("platform_stage", "platform stage only: executors COPY CSV lines made by Spark",
                 lambda: platform_stage(bench)),
    ]
    if jdbc_skipped is None:
        url, props = jdbc_target(bench.dsn)
        tuned = {**props, "batchsize": "10000"}
        log("warming up the JDBC writer")
        jdbc_warm_up(bench, url, props)
        paths += [
            LoadPath("jdbc_default", "Spark JDBC writer, defaults", lambda: jdbc_write(bench, "bench_jdbc_default", url, props)),
            LoadPath("jdbc_tuned", "Spark JDBC, reWriteBatchedInserts=true, batchsize=10000",
                  lambda: jdbc_write(bench, "bench_jdbc_tuned", url + "?reWriteBatchedInserts=true", tuned)),
        ]
    timings: dict[str, list[float]] = {p.key: [] for p in paths}
    for attempt in range(1, repeat + 1):
        for p in paths:
            bench.settle()
            seconds = p.run()
            timings[p.key].append(seconds)
            log(f"run {attempt}/{repeat}: {p.label}: {seconds:.2f} s ({bench.rows / seconds:,.0f} rows/s)")
    return [{"key": p.key, "label": p.label, "seconds": min(timings[p.key]), "all_seconds": timings[p.key],
             "rows_per_s": bench.rows / min(timings[p.key]), "ceiling": p.ceiling,
             "ratio": min(timings[p.ceiling]) / min(timings[p.key])} for p in paths]


NOTES = [
    "All paths load the same rows, verified by count and sum(amount) after each timing.",
    "psql_copy, platform_stage and the JDBC paths write into empty UNLOGGED tables without indexes "
    "(the stage shape).",
    "platform_load is the whole WarehouseResource.load(): executors COPY into an UNLOGGED stage, the "
    "window check, month partitions, then one SERIALIZABLE transaction that, for each whole month of the window, "
    "builds a new table from the stage with the fact_rental, dim_customer and dim_staff lookups, builds its primary "
    "key and 10 indexes, and swaps it in for the month's partition of dw.fact_payment (foreign keys validated with one "
    "query each before the detach), plus the audit row.",
    "platform_load_delete_insert is the same call without the swap: one DELETE of the window and one INSERT into "
    "dw.fact_payment (partitioned, logged, primary key + 10 indexes + foreign keys checked per row).",
    "No dimension rows are loaded: every payment binds to the unknown members (-1); the lookups still run.",
    "psql_copy_fact appends the rows platform_load left in dw.fact_payment back into it: the same indexes and "
    "foreign-key checks, none of the stage, lookups, window delete or transaction: the ceiling of an append.",
    "psql_swap_fact does platform_load's swap by hand in one psql transaction: \\copy of the same fact rows, month "
    "by month, into bare tables, then dw.swap_partitions (index builds, key validation, attach). No stage, no "
    "lookups: platform_load's ceiling.",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="at least this many rows per path (default 2,000,000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per path, the best is kept (default 3: the first platform run also starts "
                             "Spark's Python workers)")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help=f"JSON results (default {RESULTS_FILE})")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be positive")

    jdbc_skipped = ensure_jdbc_jar()
    if jdbc_skipped:
        print(f"skipping the Spark JDBC paths: {jdbc_skipped}")
    base = Path(tempfile.mkdtemp(prefix="dvd-load-bench-"))
    base.chmod(0o755)  # as root the Postgres server runs as 'postgres' and must reach its data dir
    stack: Stack | None = None
    try:
        if os.environ.get("DVD_PG_DSN"):
            dsn, admin_dsn = os.environ["DVD_PG_DSN"], os.environ.get("DVD_PG_ADMIN_DSN")
            log("using the warehouse named by DVD_PG_DSN")
        else:
            log("starting a throw-away stack")
            stack = Stack(base / "stack")
            values = stack.up(environ={})  # empty: never pick up real S3 or Postgres settings from the shell
            dsn, admin_dsn = values["DVD_PG_DSN"], values["DVD_PG_ADMIN_DSN"]
        scratch = base / "scratch"
        scratch.mkdir()
        log("starting Spark")
        spark = start_spark(jdbc=jdbc_skipped is None)
        try:
            df = payments(spark, args.rows, scratch)
            (count, amount_sum), = df.agg(F.count("*"), F.sum("amount")).collect()
            bench = Bench(df, count, amount_sum, dsn, admin_dsn, scratch)
            bench.warehouse.migrate()  # once, untimed: load() would otherwise pay for it on its first call
            info = machine(spark, bench)
            results = run(bench, args.repeat, jdbc_skipped)
            # Other work on the machine skews the figures: the load average brackets the run.
            info["load_average_at_end"] = load_average()
        finally:
            spark.stop()
    finally:
        if stack is not None:
            stack.down()
        shutil.rmtree(base, ignore_errors=True)

    by_key = {r["key"]: r for r in results}
    print(f"\nLoad paths into PostgreSQL, {bench.rows:,} rows, best of {args.repeat} "
          f"({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)\n")
    print(table(results, bench.rows))
    for key, ceiling, label in (
            ("platform_load", FACT_CEILING, "psql \\copy into dw.fact_payment (an append)"),
            ("platform_load", SWAP_CEILING, "psql \\copy by month + the same partition swap"),
            ("platform_stage", CEILING, "psql \\copy into an UNLOGGED table")):
        ratio = by_key[ceiling]["seconds"] / by_key[key]["seconds"]
        print(f"target: {key} >= 0.90 of {label}: {ratio:.2f} ({'met' if ratio >= 0.9 else 'not met'})")
    for note in NOTES:
        print(f"- {note}")
    if jdbc_skipped:
        print(f"- Spark JDBC paths skipped: {jdbc_skipped}")
    print("\nmachine: " + ", ".join(f"{k}={v}" for k, v in info.items()))

    write_results(args.out, datetime.now(timezone.utc), {
        "rows": bench.rows,
        "repeat": args.repeat,
        "machine": info,
        "results": results,
        "jdbc_skipped": jdbc_skipped,
        "notes": NOTES,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
