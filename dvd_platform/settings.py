"""Resolved platform settings: one place that reads the environment.

Everything that differs between a laptop, CI and production (DSNs, the S3
endpoint, buckets, Spark master, paths) is an environment variable. Locally the
stack writes them to ``.dvd/stack.env``; :func:`load_stack_env` puts that file's
values into ``os.environ`` without overriding variables already set, so a real
environment always wins over the local file.

Nothing here is read at import time by the Dagster definitions: resources take
``EnvVar`` values, resolved when a run starts.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR_ENV = "DVD_STATE_DIR"

DEFAULT_LANDING_BUCKET = "dvd-landing"
DEFAULT_LAKE_BUCKET = "dvd-lake"
LANDING_PREFIX = "landing"
MANIFEST_PREFIX = f"{LANDING_PREFIX}/_manifests"

#: Every environment variable the platform reads, with what it means. The README's table
#: must equal it and it must equal what the code reads (test_docs.py); docker-compose's
#: services may set only these and the standard ones (test_production.py).
ENV_VARS: dict[str, str] = {
    "DVD_PG_DSN": "libpq DSN of the warehouse database, as the loader role (owns schemas dw, dw_audit).",
    "DVD_PG_ANALYST_DSN": "DSN of the warehouse as the read-only analyst role, for people and BI tools: the "
                          "platform itself (loads, checks, reports) connects only as the loader. `stack up` writes "
                          "it, or passes on the one set with `DVD_PG_DSN`.",
    "DVD_PG_ADMIN_DSN": "Superuser DSN of the local cluster (stack and tests only; unset in production).",
    "DVD_DAGSTER_PG_URL": "Written by the stack: URL of a `dagster` database in the local cluster, for a "
                          "PostgreSQL-backed Dagster instance (`deploy/dagster.production.yaml` reads it). The "
                          "local `dagster.yaml` uses SQLite and does not read it.",
    "DVD_OLTP_DSN": "DSN of the OLTP (pagila-shaped) source database as a read-only role, for oltp_export.",
    "DVD_OLTP_EXPORT": "1 turns on the schedule that exports each finished UTC day from the OLTP database into landing "
                       "(default off; read when the code location loads).",
    "DVD_S3_ENDPOINT_URL": "S3 endpoint URL (moto locally, MinIO in docker-compose; unset for AWS S3).",
    "DVD_LANDING_BUCKET": "Bucket where daily drops land (default dvd-landing).",
    "DVD_LAKE_BUCKET": "Bucket of the lake's immutable raw zone (default dvd-lake).",
    "AWS_ACCESS_KEY_ID": "S3 credentials (standard AWS variable).",
    "AWS_SECRET_ACCESS_KEY": "S3 credentials (standard AWS variable).",
    "AWS_DEFAULT_REGION": "S3 region (default us-east-1).",
    "DVD_LAKE_ROOT": "Root of the Parquet lake (staged snapshots, quarantine): a local or shared (e.g. NFS) path; not s3a://, whose rename is not atomic.",
    "DVD_STAGING_DIR": "Local scratch directory where raw objects are downloaded for Spark.",
    "DVD_SPARK_MASTER": "spark.master (default local[2]; spark://host:7077, yarn, k8s://... on a cluster).",
    "DVD_SPARK_REMOTE": "Spark Connect URL (sc://host:port). Set: runs attach to that server (the local stack starts one); "
                        "unset or empty: each run starts a classic driver on DVD_SPARK_MASTER.",
    "DVD_SPARK_DRIVER_MEMORY": "spark.driver.memory (default 2g).",
    "DVD_SPARK_SHUFFLE_PARTITIONS": "spark.sql.shuffle.partitions (default 4: sized for a day of data on 2 cores).",
    "DVD_SPARK_CODEGEN": "1: Spark generates and compiles code for each query, as Spark does by default; it may pay "
                         "back over millions of rows (a big backfill on a cluster; not measured). Unset or 0 (default): "
                         "queries run interpreted, faster for a day's few thousand rows (README, Spark settings).",
    "DVD_QUARANTINE_ERROR_RATIO": "Quarantined/read rows above which the quarantine check is an ERROR (default 0.05).",
    "DVD_FRESHNESS_LAG_DAYS": "Days the newest loaded payment day may lag today before the freshness check warns (default 2).",
    "DVD_SENSOR_INTERVAL_SECONDS": "Minimum seconds between landing-sensor ticks (default 30; read when the code location loads).",
    "DVD_AUTOMATION_INTERVAL_SECONDS": "Minimum seconds between the automation sensor's ticks (default 30, Dagster's; "
                                       "read when the code location loads).",
    "DVD_PARTITIONS_START": "First day of the daily partitions (default 2022-01-01).",
    "DVD_STATE_DIR": "Where the local stack keeps its state (default .dvd in the project).",
    "DAGSTER_HOME": "Dagster instance directory (local default .dvd/dagster_home).",
    "DAGSTER_EVENT_BATCH_SIZE": "Read by Dagster: above 0, it stores a run's planned events and a range step's "
                                "per-partition materializations in batches of up to this many (`stack up` writes "
                                "1000, the production image sets it; unset: one at a time).",
    "DVD_DEBUG": "1 makes `dvd-platform` print an error's traceback, not only its one line.",
}


def state_dir() -> Path:
    """The local stack's state directory (``.dvd`` unless DVD_STATE_DIR says otherwise), absolute: the
    paths under it go into ``stack.env`` for processes that run elsewhere (``dagster dev`` in DAGSTER_HOME)."""
    return Path(os.environ.get(STATE_DIR_ENV, PROJECT_ROOT / ".dvd")).absolute()


def stack_env_path() -> Path:
    return state_dir() / "stack.env"


def parse_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines (blank lines and # comments ignored)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        values[key.strip()] = value.strip()
    return values


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write KEY=VALUE lines readable by this module, make and ``set -a; . file``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in sorted(values.items())))
    tmp.chmod(0o600)  # it holds credentials
    tmp.replace(path)


def load_stack_env(path: Path | None = None) -> dict[str, str]:
    """Export the stack file's values into os.environ, never overriding a set variable.

    Returns the values that were applied. A missing file is not an error: in
    production the environment carries everything.
    """
    path = path or stack_env_path()
    if not path.exists():
        return {}
    applied = {}
    for key, value in parse_env_file(path).items():
        if key not in os.environ:
            os.environ[key] = value
            applied[key] = value
    return applied
