"""The README's run command: `dvd-platform up` serves the UI with the code location's assets,
and SIGTERM stops Dagster and the stack it started, leaving no process or port behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from dvd_platform.settings import ENV_VARS, PROJECT_ROOT
from dvd_platform.dev.stack import Stack
from dvd_platform.dev.stack.procs import free_port, port_open

# Everything that would point `up` at an existing stack (or instance) is removed from its environment.
STACK_VARS = set(ENV_VARS)
EXPECTED_ASSETS = {"landing_drops", "raw_rental", "stg_rental", "dim_customer", "fact_payment", "mart_daily_revenue"}


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


def test_up_serves_the_assets_and_sigterm_stops_everything(state_dir: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARS}
    env["DVD_STATE_DIR"] = str(state_dir)
    log = state_dir / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvd_platform.cli", "up", "--no-seed", "--port", str(port)],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        # 1. The UI answers, and lists the code location's assets.
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

        # The stack `up` started lives in our state dir: its env file, DAGSTER_HOME with dagster.yaml.
        stack = Stack(state_dir)
        assert stack.env_file.exists() and stack.is_running()
        server_pids = stack.pids()
        assert len(server_pids) == 3  # postgres, moto and the Spark Connect server (`up` starts all three)
        assert (state_dir / "dagster_home" / "dagster.yaml").read_bytes() == (PROJECT_ROOT / "dagster.yaml").read_bytes()
        before = _live(_processes())
        started = {**_descendants(proc.pid, before), **{pid: before[pid][2] for pid in server_pids if pid in before}}
        assert any("dagster" in args for args in started.values()), started

        # 2. SIGTERM to `up` alone (as a service manager would send it) stops everything.
        os.kill(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"`up` did not exit within 60 s of SIGTERM:\n{_tail(log)}") from None
        assert code == 0, f"exit code {code}:\n{_tail(log)}"
        assert "stopped: dagster, stack" in log.read_text()
    finally:
        if proc.poll() is None:  # only on failure: end what this test started (`up` and its descendants)
            _kill_tree(proc, state_dir)

    assert not (state_dir / "stack.env").exists()
    assert not Stack(state_dir).is_running()
    after = _live(_processes())
    left = {pid: args for pid, args in started.items() if pid in after and after[pid][2] == args}
    assert left == {}, f"still running after `up` exited: {left}"
    mentioning = {pid: p[2] for pid, p in after.items() if str(state_dir) in p[2] and "ps -eo" not in p[2]}
    assert mentioning == {}, mentioning
    assert not port_open(port), f"something still listens on {port}"


def test_definitions_validate():
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "dvd_platform" in result.stdout + result.stderr


def start_up(state_dir: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """`dvd-platform up ARGS` as a user starts it, on a free port, with the stack in ``state_dir`` and
    the landing and automation sensors ticking every 5 s; its output goes to ``state_dir/up.log``."""
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARS}
    env.update({"DVD_STATE_DIR": str(state_dir),
                "DVD_SENSOR_INTERVAL_SECONDS": "5", "DVD_AUTOMATION_INTERVAL_SECONDS": "5"})
    log = state_dir / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dvd_platform.cli", "up", *args, "--port", str(free_port())],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc, log


def stop_up(proc: subprocess.Popen, state_dir: Path) -> None:
    """SIGTERM, as Ctrl-C in a terminal would; the whole tree is killed if `up` is not gone in 90 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            _kill_tree(proc, state_dir)


def test_up_with_drip_fills_the_warehouse_without_a_click(state_dir: Path):
    """`up --drip`: the day lands after the UI is up, the daemon's landing sensor launches its run and
    the warehouse fills, with nobody clicking anything.

    One day: each run the daemon launches is its own process with a cold JVM, and two at once on
    CI's 2 cores took three minutes. Days landing apart, and consecutive days batched into one
    range run, are the landing sensor's unit tests (test_automation)."""
    import psycopg2

    from dvd_platform.settings import parse_env_file

    proc, log = start_up(state_dir, "--source", "generated", "--scale", "0.05", "--days", "1", "--drip", "5")
    loaded: list = []
    try:
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and not loaded:
            assert proc.poll() is None, f"`up` exited early ({proc.returncode}):\n{_tail(log)}"
            time.sleep(5)
            env_file = state_dir / "stack.env"
            if not env_file.exists():
                continue
            try:
                conn = psycopg2.connect(parse_env_file(env_file)["DVD_PG_DSN"], connect_timeout=5)
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT DISTINCT partition_start FROM dw_audit.load_log "
                                "WHERE asset = 'fact_payment' AND status = 'success' ORDER BY 1")
                    loaded = [row[0] for row in cur.fetchall()]
                conn.close()
            except psycopg2.Error:
                pass  # migrations not applied yet
        assert len(loaded) == 1, f"days loaded: {loaded}\n{_tail(log)}"
    finally:
        stop_up(proc, state_dir)
    assert not Stack(state_dir).is_running()
