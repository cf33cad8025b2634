"""Does a daily run cost more once the platform is old? One day's run after 30 and after 365 loaded days.

Issue 19: "one daily run after 30 vs after 365 loaded days (generator, scale 1): <= 1.2x". The
dimensions and the foreign-key checks read a reference table's state as of a day from a weekly
state snapshot plus the days after it (``dvd_platform/resources/lake_state.py``), so a day's run
should cost the same whatever the history's length.

On one fresh stack with a Spark Connect server (what ``make up`` starts), seeded with the
generator's first 367 days:

1. days 1..30 as one run (a single-run backfill), then day 31 and day 32, each as its own run
   in a fresh process (``dvd-platform materialize``), the whole graph;
2. days 33..365 as one run, then day 366 and day 367 the same way.

The first daily run after a backfill builds the state snapshots the backfill did not need (its
cost grows with history, once); the second is the steady daily run, and the ratio compares
those. Both steady days fall mid-week, so neither builds a new weekly snapshot. Each run is
profiled like ``pipeline_benchmark.py`` (steps, Spark jobs, SQL statements, events).

Usage (from the project root)::

    .venv/bin/python benchmarks/history_benchmark.py [--out benchmarks/results/history.json]
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from common import host_info, load_average, scratch_dir, write_results
from pipeline_benchmark import Profiled, event_log_conf, log_every_statement, profile_run, run_table, seed_bench
from scale_benchmark import BenchStack, versions

from dvd_platform.dev.seed.generator import GeneratedSource

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "history.json"
SHORT, LONG = 30, 365


def measure(base: Path) -> dict:
    """Seed LONG + 2 days; load SHORT, two daily runs; load up to LONG, two daily runs."""
    source = GeneratedSource(scale=1.0, seed=42, days=LONG + 2)
    work = base / "work"
    events = work / "spark-events-server"
    events.mkdir(parents=True)
    options = {"spark_connect": True, "spark_connect_conf": event_log_conf(events)}
    with BenchStack(base / "stack", stack_options=options) as bench:
        profiled = Profiled(bench, work, log_every_statement(bench), "connect", events, None)
        days, rows = seed_bench(bench, source, LONG + 2)
        out: dict[str, object] = {"seeded_days": len(days), "seeded_rows": rows}
        loaded = 0
        for history in (SHORT, LONG):
            out[f"backfill_to_{history}"] = profile_run(profiled, days[loaded], days[history - 1], f"backfill-{history}")
            out[f"first_day_after_{history}"] = profile_run(profiled, days[history], days[history], f"first-{history}")
            out[f"steady_day_after_{history}"] = profile_run(profiled, days[history + 1], days[history + 1],
                                                             f"steady-{history}")
            loaded = history + 2
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help=f"JSON results (default {RESULTS_FILE})")
    args = parser.parse_args(argv)
    info = {**host_info(), **versions()}
    started = datetime.now(timezone.utc)
    with scratch_dir("dvd-history-bench-") as base:
        report = measure(base)
    info["load_average_at_end"] = load_average()
    print(f"\nHistory benchmark ({started:%Y-%m-%d %H:%M} UTC, {datetime.now(timezone.utc) - started} wall)\n")
    for key, profile in report.items():
        if isinstance(profile, dict) and "steps" in profile:
            print(run_table(profile) + "\n")
    ratios = {kind: report[f"{kind}_after_{LONG}"]["wall_seconds"] / report[f"{kind}_after_{SHORT}"]["wall_seconds"]
              for kind in ("steady_day", "first_day")}
    report["after_365_over_after_30"] = ratios
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(f"one day after {LONG} / after {SHORT} loaded days: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    write_results(args.out, started, {"machine": info, **report})
    return 0


if __name__ == "__main__":
    sys.exit(main())
