"""The first run on a fresh Spark Connect server, with and without the stack's warm-up.

Why: under ``make up`` the first run the landing sensor launches lands on a server that has
just started (the daemon test, now in ``test_up``: 112 s for the first of three equal days, 47-52 s for the
others). The stack now warms the server up in the background (``dev/stack/spark_warmup.py``).
This measures what that buys, both ways in the same invocation: for each mode a new stack
(PostgreSQL, moto, a Connect server), a few generated days seeded, then one
``dvd-platform materialize`` of those days in a fresh process, timed from its start to its
exit. ``cold`` stops the warm-up client as soon as the stack is up (the server has done no
work); ``warm`` waits for the warm-up to end before the run.

Usage: ``.venv/bin/python benchmarks/warmup_benchmark.py [--days 3] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from common import WARM_UP_DEADLINE_SECONDS, host_info, load_average, log, results_file, write_results

from dvd_platform.dev.stack import Stack
from dvd_platform.resources.spark import REMOTE_ENV

FIRST_DAY = date(2022, 2, 1)
QUIET_INSTANCE = "telemetry:\n  enabled: false\n"


def _cli(env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "dvd_platform.cli", *args], env=env, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"dvd-platform {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.monotonic() - started, done.stdout


def measure(mode: str, days: int) -> dict[str, object]:
    """One fresh stack; the warm-up stopped (cold) or waited for (warm); then the first run."""
    state = Path(tempfile.mkdtemp(prefix=f"dvd-warmup-{mode}-"))
    state.chmod(0o755)  # as root, the Postgres server runs as 'postgres' and must reach it
    environ = {k: v for k, v in os.environ.items() if k != REMOTE_ENV and not k.startswith("DVD_")}
    stack = Stack(state, spark_connect=True)
    started = time.monotonic()
    values = stack.up(environ=environ)
    try:
        up_seconds = time.monotonic() - started
        if mode == "cold":
            stack.stop_warm_up()
        stack.wait_for_warm_up(WARM_UP_DEADLINE_SECONDS)
        warmup_seconds = time.monotonic() - started - up_seconds
        env = {**environ, **values, "DVD_STATE_DIR": str(state), "DAGSTER_HOME": str(state / "bench_home")}
        Path(env["DAGSTER_HOME"]).mkdir()
        (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text(QUIET_INSTANCE)
        last = FIRST_DAY + timedelta(days=days - 1)
        _cli(env, "seed", "--source", "generated", "--scale", "0.05", "--from", str(FIRST_DAY), "--to", str(last))
        log(f"{mode}: stack up {up_seconds:.1f} s, warm-up {'stopped' if mode == 'cold' else 'ran'} "
            f"({warmup_seconds:.1f} s); materializing {FIRST_DAY}..{last}")
        run_seconds, _ = _cli(env, "materialize", "--from", str(FIRST_DAY), "--to", str(last))
        log(f"{mode}: first run {run_seconds:.1f} s")
        return {"stack_up_seconds": up_seconds, "warmup_seconds": warmup_seconds, "first_run_seconds": run_seconds}
    finally:
        stack.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3, help="generated days (scale 0.05) in the run")
    parser.add_argument("--out", type=Path, default=results_file("warmup"))
    args = parser.parse_args()
    when, machine = datetime.now(timezone.utc), host_info()
    results = {mode: measure(mode, args.days) for mode in ("cold", "warm")}
    machine["load_average_at_end"] = load_average()
    ratio = results["warm"]["first_run_seconds"] / results["cold"]["first_run_seconds"]
    print(f"first run on a fresh Connect server, {args.days} days: cold {results['cold']['first_run_seconds']:.1f} s, "
          f"warm {results['warm']['first_run_seconds']:.1f} s, warm / cold {ratio:.2f}")
    write_results(args.out, when, {"machine": machine, "days": args.days, **results, "warm_over_cold": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
