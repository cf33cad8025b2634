"""How long does ``make test`` take on a fresh clone? The suite's wall time, and where it goes.

Issue 19's last target is ``make test`` on a fresh clone of this machine kind. This script
does what a new user (or CI) does: it clones the current commit into a fresh temporary folder,
which has no ``shared`` folder beside the clone (so the suite runs on the generated sample), and
runs the README's test command there exactly as ``.ci/run`` does (``CI=true``, so a skip fails
the run), with pytest's ``--durations=0`` and without this shell's ``DVD_*``, ``DAGSTER_*`` and
``PYTEST_*`` variables. It records

* the wall time of the whole command (install included) and pytest's own session time;
* passed / failed / skipped counts (``0 skipped`` is part of the target) and which sample
  the suite used (pytest's header line);
* the summed durations of every test phase, per test file, per xdist group (the session
  sample's, ``@session-sample``, on one worker) and the slowest phases. Compared between
  runs with different worker counts, the summed time shows whether the tests wait (it stays
  the same) or compete for the CPU (it grows with the workers);
* the CPU seconds of the processes started while it ran, summed by kind (the Spark Connect servers' JVMs,
  the pytest workers, PostgreSQL, ...: ``ProcessCpu``), sampled from ``/proc`` every second;
* the machine and its load average before and after.

Usage, from the project root (no other work on the machine while it runs, ~20 minutes):

    .venv/bin/python benchmarks/suite_benchmark.py [--out benchmarks/results/suite.json] [--keep]

Only committed files are measured: the clone is of ``HEAD``. ``--keep`` keeps the clone and
its full log (else removed when the suite passed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

from common import host_info, load_average, log, results_file, write_results

PROJECT = Path(__file__).resolve().parents[1]
DURATION = re.compile(r"^(?P<seconds>[0-9.]+)s (?P<phase>call|setup|teardown)\s+(?P<test>\S+)$")
SUMMARY = re.compile(r"^=+ (?P<counts>.*\d+ (?:passed|failed).*) in (?P<seconds>[0-9.]+)s")
SAMPLE_GROUP = "@session-sample"
SAMPLE_HEADER = re.compile(r"^dvd_platform sample: (?P<kind>\w+)", re.MULTILINE)


def parse_log(text: str) -> dict[str, object]:
    """pytest's summary line and ``--durations=0`` table, as figures."""
    counts: dict[str, int] = {}
    pytest_seconds = None
    phases = []
    for line in text.splitlines():
        if match := DURATION.match(line):
            phases.append((float(match["seconds"]), match["phase"], match["test"]))
        elif match := SUMMARY.match(line):
            pytest_seconds = float(match["seconds"])
            counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (\w+)", match["counts"])}
    per_file: dict[str, float] = defaultdict(float)
    per_group: dict[str, float] = defaultdict(float)
    for seconds, _, test in phases:
        per_file[test.split("::", 1)[0]] += seconds
        if "@" in test:  # xdist's "@group" suffix (none in a run without workers)
            per_group[test.rsplit("@", 1)[1]] += seconds
    slowest = sorted(phases, reverse=True)[:12]
    sample = SAMPLE_HEADER.search(text)
    return {
        "sample": sample["kind"] if sample else None,
        "pytest_seconds": pytest_seconds,
        "counts": {"passed": counts.get("passed", 0), "failed": counts.get("failed", 0),
                   "skipped": counts.get("skipped", 0), "errors": counts.get("error", 0) + counts.get("errors", 0)},
        "phases_summed_seconds": round(sum(s for s, _, _ in phases), 1),
        "session_sample_group_seconds": round(sum(s for s, _, t in phases if t.endswith(SAMPLE_GROUP)), 1),
        "per_file_seconds": {f: round(s, 1) for f, s in sorted(per_file.items(), key=lambda kv: -kv[1])},
        "per_group_seconds": {g: round(s, 1) for g, s in sorted(per_group.items(), key=lambda kv: -kv[1])},
        "slowest": [{"seconds": s, "phase": p, "test": t.rsplit("@", 1)[0]} for s, p, t in slowest],
    }


#: What kind of process a command line is, first match wins; the CPU the suite used is summed per kind.
PROCESS_KINDS = (
    ("Spark Connect servers (JVM)", re.compile(r"bin/java .*SparkConnectServer")),
    ("other JVMs (standalone cluster, classic drivers)", re.compile(r"bin/java ")),
    ("Spark Python workers", re.compile(r"pyspark\.daemon|pyspark\.worker")),
    ("PostgreSQL", re.compile(r"^postgres|/postgres |initdb|pg_ctl|psql")),
    ("moto (S3)", re.compile(r"moto")),
    ("browser", re.compile(r"chrom|playwright|headless")),
    ("pip (the install)", re.compile(r"/pip |-m pip ")),
    ("pytest (workers: the in-process runs)", re.compile(r"bin/pytest |-m pytest |exec\(eval\(sys\.stdin")),
    ("Dagster processes (dg dev, webserver, daemon, code servers, run workers)",
     re.compile(r"dagster|/dg |multiprocessing\.spawn")),
    ("dvd-platform commands (materialize, up, warm-up)", re.compile(r"dvd_platform|dvd-platform")),
)


class ProcessCpu:
    """Every second, each process's CPU time and command line from /proc, kept per process; ``by_kind`` sums
    the CPU of every process that started after it did (the suite's, and anything else run meanwhile: run it
    on an idle machine), by ``PROCESS_KINDS``. Why: the suite is CPU-bound (BENCHMARKS.md section 17), so where
    its CPU goes says what to make cheaper. A process that lives under a second may be missed, and one that
    ends loses up to its last second. A sampling error is recorded (``errors``), not fatal to the run."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], list] = {}  # (pid, start tick) -> [cpu seconds, command line]
        self.errors: list[str] = []
        self.before = set(self._stats())
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    @staticmethod
    def _stats() -> dict[tuple[int, int], float]:
        ticks, found = os.sysconf("SC_CLK_TCK"), {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            try:
                found[(int(pid), int(fields[19]))] = (int(fields[11]) + int(fields[12])) / ticks
            except (IndexError, ValueError):  # a line of an unexpected shape: skip that process this time
                continue
        return found

    def _sample(self) -> None:
        try:
            while not self.stop.wait(1.0):
                self._record()
            self._record()  # a last sample when stopped
        except Exception as exc:  # noqa: BLE001 - recorded in the JSON; the suite's figures still stand
            self.errors.append(repr(exc))

    def _record(self) -> None:
        for key, cpu in self._stats().items():
            if key in self.before:
                continue
            try:
                command = Path(f"/proc/{key[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                command = ""
            entry = self.seen.setdefault(key, [0.0, ""])
            entry[0] = cpu
            entry[1] = command or entry[1]  # an exec'd launcher script becomes its JVM: keep the latest

    def by_kind(self) -> dict[str, float]:
        self.stop.set()
        self.thread.join()
        totals: dict[str, float] = defaultdict(float)
        for cpu, command in self.seen.values():
            kind = next((name for name, pattern in PROCESS_KINDS if pattern.search(command)), "other")
            totals[kind] += cpu
        return {kind: round(cpu, 1) for kind, cpu in sorted(totals.items(), key=lambda kv: -kv[1])}


def run_suite(workdir: Path) -> tuple[str, int, float, str]:
    """Clone HEAD into ``workdir/dvd`` (no ``../shared`` next to it) and run ``.ci/run`` there; returns
    the commit cloned (the JSON's ``commit`` is the project's HEAD when the run ends), the exit code,
    the wall seconds and the log."""
    clone = workdir / "dvd"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True)
    cloned = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVD_", "DAGSTER_", "PYTEST_"))}
    env.update({"CI": "true", "PYTEST_ADDOPTS": "--durations=0"})
    started = time.monotonic()
    with open(workdir / "suite.log", "w") as out:
        code = subprocess.run(["bash", ".ci/run"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    return cloned, code, time.monotonic() - started, (workdir / "suite.log").read_text(errors="replace")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=results_file("suite"))
    parser.add_argument("--keep", action="store_true", help="keep the clone and its log")
    args = parser.parse_args()
    started_at = datetime.now(timezone.utc)
    machine = host_info()
    workdir = Path(tempfile.mkdtemp(prefix="dvd-suite-"))  # new, so no shared/ beside the clone
    log(f"cloning {PROJECT} (HEAD) into {workdir}/dvd and running .ci/run (about 20 minutes)")
    cpu = ProcessCpu()
    cloned, code, wall, text = run_suite(workdir)
    cpu_by_kind = cpu.by_kind()
    machine["load_average_at_end"] = load_average()
    figures = parse_log(text)
    log(f"exit {code} in {wall:.0f} s: {figures['counts']}, pytest {figures['pytest_seconds']} s")
    write_results(args.out, started_at, {"cloned_commit": cloned, "machine": machine, "exit_code": code,
                                         "wall_seconds": round(wall, 1), **figures,
                                         "cpu_seconds_by_process_kind": cpu_by_kind,
                                         "cpu_seconds_total": round(sum(cpu_by_kind.values()), 1),
                                         "cpu_sampling_errors": cpu.errors})
    if code == 0 and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log(f"clone and log kept in {workdir}")
    return code


if __name__ == "__main__":
    sys.exit(main())
