"""The README's run command, end to end, as a user meets it: `dvd-platform up` seeds three generated days and
serves the UI with the code location's assets; its Spark Connect server runs this project's Python in its
workers and has warmed up; without a click, the real daemon's landing sensor loads the days and automation
fills both marts with exactly the seeded revenue; a corrected re-drop of day 2 changes day 2's marts and
nothing else; SIGTERM stops Dagster and the stack it started (the server's Python workers included),
leaving no process or port behind.

One `up` for all of it: each start costs a stack, a Spark Connect server and its warm-up, and `dg dev`.
The four tests this one replaced started four stacks and took 348-450 s of the suite's test time
(BENCHMARKS.md sections 19 and 20); this one took 205-215 s there.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg2

import dvd_platform.warehouse.copy_in as copy_in
from dvd_platform.settings import ENV_VARS, PROJECT_ROOT, parse_env_file
from dvd_platform.dev.stack import Stack
from dvd_platform.dev.stack.procs import free_port, port_open
from dvd_platform.resources.s3 import s3_client
from dvd_platform_tests.crafted import redrop_table
from dvd_platform_tests.two_runs import client_env

# Everything that would point `up` at an existing stack (or instance) is removed from its environment.
STACK_VARS = set(ENV_VARS)
EXPECTED_ASSETS = {"landing_drops", "raw_rental", "stg_rental", "dim_customer", "fact_payment", "mart_daily_revenue"}
MANIFESTS = "landing/_manifests/"
SEEDED_DAYS = 3

#: Attach to the stack's Spark Connect server, then report from one of its Python workers which interpreter it
#: runs and where it imports the COPY path from (the executor side of the warehouse load, ``mapInArrow``).
PROBE = """
import json, sys
from pyspark.sql import SparkSession

def where(batches):
    import sys
    import pyarrow as pa
    import dvd_platform.warehouse.copy_in as copy_in
    for _ in batches:
        yield pa.RecordBatch.from_pydict({"python": [sys.executable], "module": [copy_in.__file__]})

spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
row = spark.range(1).mapInArrow(where, "python string, module string").collect()[0]
print(json.dumps([row["python"], row["module"]]))
"""


def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, stat, args) of every process."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        pid, ppid, stat, *args = line.split(None, 3)
        table[int(pid)] = (int(ppid), stat, args[0] if args else "")
    return table


def _live(procs: dict[int, tuple[int, str, str]]) -> dict[int, tuple[int, str, str]]:
    return {pid: p for pid, p in procs.items() if not p[1].startswith("Z")}


def _descendants(root: int, procs: dict[int, tuple[int, str, str]]) -> dict[int, str]:
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, args) in procs.items():
            if ppid == parent and pid not in found:
                found[pid] = args
                frontier.append(pid)
    return found


def _http(url: str, body: dict | None = None, timeout: float = 5) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def _asset_names(port: int) -> set[str]:
    _, body = _http(f"http://127.0.0.1:{port}/graphql", {"query": "{ assetNodes { assetKey { path } } }"}, timeout=20)
    nodes = (json.loads(body).get("data") or {}).get("assetNodes") or []
    return {"/".join(node["assetKey"]["path"]) for node in nodes}


def _kill_tree(proc: subprocess.Popen, state_dir: Path) -> None:
    """SIGKILL `up` and every process under it, then stop the stack it started."""
    for pid in [proc.pid, *_descendants(proc.pid, _processes())]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    Stack(state_dir).down()


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def test_definitions_validate():
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "dvd_platform" in result.stdout + result.stderr


def _start_up(state_dir: Path, *args: str) -> tuple[subprocess.Popen, Path, int]:
    """`dvd-platform up ARGS` as a user starts it, on a free port, with the stack in ``state_dir`` and
    the landing and automation sensors ticking every 5 s; its output goes to ``state_dir/up.log``.
    Returns the process, the log and the UI's port."""
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARS}
    env.update({"DVD_STATE_DIR": str(state_dir),
                "DVD_SENSOR_INTERVAL_SECONDS": "5", "DVD_AUTOMATION_INTERVAL_SECONDS": "5"})
    log, port = state_dir / "up.log", free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvd_platform.cli", "up", *args, "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc, log, port


def _ui_lists_the_assets(proc: subprocess.Popen, log: Path, port: int) -> None:
    """The UI answers, and lists the code location's assets."""
    deadline = time.monotonic() + 120
    assets: set[str] = set()
    while time.monotonic() < deadline and not EXPECTED_ASSETS <= assets:
        assert proc.poll() is None, f"`up` exited early ({proc.returncode}):\n{_tail(log)}"
        try:
            status, _ = _http(f"http://127.0.0.1:{port}/server_info", timeout=2)
            if status == 200:
                assets = _asset_names(port)
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            pass
        if not EXPECTED_ASSETS <= assets:
            time.sleep(1)
    assert EXPECTED_ASSETS <= assets, f"assets seen: {sorted(assets)}\n{_tail(log)}"
    assert len([a for a in assets if a.startswith("stg_")]) == 13
    assert len([a for a in assets if a.startswith("raw_")]) == 15


def _the_stack_in(state_dir: Path) -> Stack:
    """The stack `up` started lives in our state dir: its env file, DAGSTER_HOME with dagster.yaml, and its
    three servers."""
    stack = Stack(state_dir)
    assert stack.env_file.exists() and stack.is_running()
    assert len(stack.pids()) == 3  # postgres, moto and the Spark Connect server (`up` starts all three)
    assert (state_dir / "dagster_home" / "dagster.yaml").read_bytes() == (PROJECT_ROOT / "dagster.yaml").read_bytes()
    return stack


def _its_connect_server_runs_our_python_and_warmed_up(stack: Stack) -> None:
    """The server's Python workers run this interpreter and import the COPY path from this project; the
    stack's background warm-up client ended and logged its time."""
    url = parse_env_file(stack.env_file)["DVD_SPARK_REMOTE"]
    assert url.startswith("sc://127.0.0.1:")
    probe = subprocess.run([sys.executable, "-c", PROBE, url], env=client_env(), capture_output=True, text=True,
                           timeout=600)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == [sys.executable, copy_in.__file__]
    warm_log = stack.wait_for_warm_up(240)
    assert re.search(r"^spark connect warm-up: [0-9.]+ s$", warm_log, re.M), warm_log[-3000:]


def _seeded_payments(s3, bucket: str, days: int) -> dict[str, dict[str, Decimal]]:
    """day -> payment_id -> amount, read from the drops themselves (their manifests name the objects)."""
    out: dict[str, dict[str, Decimal]] = {}
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=MANIFESTS).get("Contents", []):
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        entry = next(o for o in manifest["objects"] if o["table"] == "payment")
        body = s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read().decode()
        out[manifest["day"]] = {row["payment_id"]: Decimal(row["amount"]) for row in csv.DictReader(io.StringIO(body))}
    assert len(out) == days, f"days landed: {sorted(out)}"
    return out


def _marts(dsn: str) -> tuple[dict, dict]:
    """(day -> revenue of mart_daily_revenue, month -> revenue of mart_category_monthly)."""
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT date::text, sum(revenue) FROM dw.mart_daily_revenue GROUP BY 1")
            daily = dict(cur.fetchall())
            cur.execute("SELECT to_char(month, 'YYYY-MM'), round(sum(revenue), 2) FROM dw.mart_category_monthly GROUP BY 1")
            monthly = dict(cur.fetchall())
        return daily, monthly
    finally:
        conn.close()


def _expected(payments: dict[str, dict[str, Decimal]]) -> tuple[dict, dict]:
    daily = {day: sum(rows.values(), Decimal(0)) for day, rows in payments.items()}
    monthly: dict[str, Decimal] = defaultdict(Decimal)
    for day, revenue in daily.items():
        monthly[day[:7]] += revenue
    return daily, dict(monthly)


def _wait_for(expected: tuple[dict, dict], dsn: str, proc: subprocess.Popen, log: Path,
              seconds: float) -> tuple[dict, dict]:
    deadline, seen = time.monotonic() + seconds, ({}, {})
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"`up` exited early ({proc.returncode}):\n{_tail(log)}"
        try:
            seen = _marts(dsn)
        except psycopg2.Error:
            pass  # not migrated yet
        if seen == expected:
            return seen
        time.sleep(1)  # a query of two small tables: polled often, the test ends soon after the marts do
    raise AssertionError(f"marts {seen} never became {expected}\n{_tail(log)}")


def _marts_follow_the_drops_and_a_redrop(stack: Stack, proc: subprocess.Popen, log: Path) -> None:
    """Both marts come to hold exactly the seeded revenue, with no click; a corrected re-drop of day 2 (every
    amount one dollar more), landing while the UI runs, changes day 2's marts and nothing else."""
    stack_env = parse_env_file(stack.env_file)
    s3 = s3_client(stack_env["DVD_S3_ENDPOINT_URL"], stack_env.get("AWS_ACCESS_KEY_ID", "test"),
                   stack_env.get("AWS_SECRET_ACCESS_KEY", "test"))
    bucket, dsn = stack_env["DVD_LANDING_BUCKET"], stack_env["DVD_PG_DSN"]
    payments = _seeded_payments(s3, bucket, SEEDED_DAYS)
    first = _wait_for(_expected(payments), dsn, proc, log, 600)

    day2 = sorted(payments)[1]
    redrop_table(s3, bucket, date.fromisoformat(day2), "payment",
                 lambda rows: [[*r[:4], str(Decimal(r[4]) + 1), *r[5:]] for r in rows])
    payments[day2] = {pid: amount + 1 for pid, amount in payments[day2].items()}
    second = _wait_for(_expected(payments), dsn, proc, log, 420)
    changed = {day for day in first[0] if first[0][day] != second[0][day]}
    assert changed == {day2}  # the other days' marts kept their figures


def _sigterm_stops_up(proc: subprocess.Popen, log: Path) -> None:
    """SIGTERM to `up` alone (as a service manager would send it) ends it cleanly. Automation may still be
    ending a run, as under a user's Ctrl-C: `up` then waits for `dg dev` and its process group (up to about a
    minute, ``dvd_platform.dev.up._shut_down``) before the stack goes down."""
    os.kill(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`up` did not exit within 90 s of SIGTERM:\n{_tail(log)}") from None
    assert code == 0, f"exit code {code}:\n{_tail(log)}"
    assert "stopped: dagster, stack" in log.read_text()


def test_up_serves_the_ui_fills_the_marts_without_a_click_follows_a_redrop_and_sigterm_stops_everything(
        state_dir: Path):
    """As `make up` runs it (seeding first, then `dg dev`), on three small generated days."""
    proc, log, port = _start_up(state_dir, "--source", "generated", "--scale", "0.05", "--days", str(SEEDED_DAYS))
    started: dict[int, str] = {}
    try:
        _ui_lists_the_assets(proc, log, port)
        stack = _the_stack_in(state_dir)
        _its_connect_server_runs_our_python_and_warmed_up(stack)
        _marts_follow_the_drops_and_a_redrop(stack, proc, log)
        # What `up` started, now that runs have used the Connect server's Python workers: all must end.
        before = _live(_processes())
        servers = stack.pids()
        workers = {pid: args for server in servers for pid, args in _descendants(server, before).items()
                   if "pyspark.daemon" in args}
        assert workers, "no Python worker of the Spark Connect server was found: the leak check would miss them"
        started = {**_descendants(proc.pid, before), **{pid: before[pid][2] for pid in servers if pid in before},
                   **workers}
        assert any("dagster" in args for args in started.values()), started
        _sigterm_stops_up(proc, log)
    finally:
        if proc.poll() is None:  # only on failure: end what this test started (`up` and its descendants)
            _kill_tree(proc, state_dir)

    left_running = Stack(state_dir).is_running()
    if left_running:  # the assert below fails: stop the stack first, so that it does not outlive the test
        Stack(state_dir).down()
    assert not left_running, "`up` exited and left its stack running"
    assert not (state_dir / "stack.env").exists()
    after = _live(_processes())
    left = {pid: args for pid, args in started.items() if pid in after and after[pid][2] == args}
    assert left == {}, f"still running after `up` exited: {left}"
    mentioning = {pid: p[2] for pid, p in after.items() if str(state_dir) in p[2] and "ps -eo" not in p[2]}
    assert mentioning == {}, mentioning
    assert not port_open(port), f"something still listens on {port}"
