"""What every benchmark script records about the machine, how it logs progress, and how it writes its JSON.

Shared by the scripts in ``benchmarks/`` (run as scripts from the project root, so
this file is importable as ``common``): the figures of one script are only
comparable with another's when both describe the machine the same way, and a
figure in BENCHMARKS.md can only be checked against the JSON of the run that
produced it, at the commit that run measured.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: The stack's Spark Connect warm-up takes 17-20 s on an idle machine; a benchmark that waits for it stops
#: rather than wait on a hung one.
WARM_UP_DEADLINE_SECONDS = 300


def results_file(name: str) -> Path:
    """Where a benchmark's JSON goes by default: ``benchmarks/results/<name>.json`` (committed with BENCHMARKS.md)."""
    return RESULTS_DIR / f"{name}.json"


def git_state() -> dict[str, object]:
    """The commit the run measured, and whether tracked files differed from it (then the figures are not its)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", "-C", str(RESULTS_DIR.parent), *args], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "uncommitted_changes": None if status is None else bool(status)}


def host_info() -> dict[str, object]:
    """Cores, CPU model, RAM, OS, Python and the load average now (other work skews every figure)."""
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(int(meminfo["MemTotal"].split()[0]) / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def log(message: str) -> None:
    """Progress on stderr, timestamped, so stdout carries only the results."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def write_results(out: Path, date: datetime, results: dict[str, object]) -> None:
    """The script's JSON: when it ran, at which commit, the command line, then ``results``; says where it went."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": date.isoformat(timespec="seconds"), **git_state(),
                               "command": shlex.join(sys.orig_argv), **results}, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")


@contextmanager
def open_instance(home: Path) -> Iterator:
    """The Dagster instance of ``home``, opened with DAGSTER_HOME set to it: the local dagster.yaml
    finds its event log through that variable, as the run's own process did."""
    from dagster import DagsterInstance

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.from_config(str(home)) as instance:
            yield instance
    finally:
        if previous is None:
            del os.environ["DAGSTER_HOME"]
        else:
            os.environ["DAGSTER_HOME"] = previous


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temp directory for a benchmark's stacks: removed when the body succeeds, kept (and named in the
    log) when it fails, so its server and run logs can be read. World-readable: as root the PostgreSQL
    server runs as 'postgres' and must reach its data directory."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    try:
        yield base
    except BaseException:
        log(f"failed; logs kept in {base}")
        raise
    shutil.rmtree(base, ignore_errors=True)
