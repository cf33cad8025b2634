"""How fast does the OLTP exporter extract daily drops, next to ``psql \\copy``?

The exporter (``dvd_platform.oltp.export.OltpDropSource``) streams every table of a
day with ``COPY (SELECT ...) TO STDOUT`` into the day's files, in one REPEATABLE READ
transaction per day. The ceiling is ``psql``'s ``\\copy (SELECT ...) to 'file'`` of the
very same SELECTs (the same rows, bytes checked equal), all in one psql session. The
end-to-end path adds what the asset does after the files: md5 and row count per file,
the manifest, and the uploads to S3 (moto here), manifest last.

Data: the generator at ``--scale`` (default 10) over ``--days`` days, loaded into the
OLTP database by ``load_sample`` (its first day is the full reference snapshot).

Usage (from the project root; starts and stops its own throw-away stack)::

    .venv/bin/python benchmarks/oltp_export_benchmark.py [--scale 10] [--days 30] [--repeat 1]

Results go to stdout and ``benchmarks/results/oltp_export.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from time import perf_counter

import psycopg2

from dvd_platform.oltp.export import OltpDropSource, utc_midnight, export_query
from dvd_platform.dev.oltp_sample import load_sample
from dvd_platform.dev.seed.upload import seed, select_days
from dvd_platform.dev.seed.generator import GeneratedSource
from dvd_platform.contract.drops import drop_path
from dvd_platform.contract.tables import TABLES
from dvd_platform.dev.stack import Stack
from dvd_platform.resources.s3 import s3_client

from common import host_info, load_average, results_file, write_results

RESULTS_FILE = results_file("oltp_export")


def psql_script(source: OltpDropSource, days: list, out_dir: Path) -> Path:
    """One ``\\copy`` per day and table, with the exporter's own SELECTs (the first day is the full snapshot)."""
    conn = source.connect()
    lines = []
    try:
        with conn.cursor() as cur:
            first, _ = source.event_days(cur)
            for day in days:
                bounds = {"lo": utc_midnight(day), "hi": utc_midnight(day + timedelta(1))}
                for spec in TABLES.values():
                    query = cur.mogrify(export_query(spec, full=day == first), bounds).decode()
                    path = drop_path(out_dir, spec.name, day)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    lines.append(f"\\copy ({query}) to '{path}' with (format csv, header)")
    finally:
        conn.close()
    script = out_dir / "export.sql"
    # One snapshot per day, like the exporter (psql runs \copy inside the open transaction).
    per_day = len(TABLES)
    chunks = [lines[i:i + per_day] for i in range(0, len(lines), per_day)]
    script.write_text("".join("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n" + "\n".join(chunk)
                              + "\nCOMMIT;\n" for chunk in chunks))
    return script


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*.csv"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=1, help="best of K timings per path")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)

    started_at, machine = datetime.now(timezone.utc), host_info()
    root = Path(tempfile.mkdtemp(prefix="dvd-oltp-bench-"))
    root.chmod(0o755)  # as root, the postgres user must reach the cluster's directory
    stack = Stack(root / "stack")
    try:
        env = stack.up(environ={})
        source = GeneratedSource(scale=args.scale, seed=42)
        days = select_days(source, days=args.days)
        started = perf_counter()
        loaded = load_sample(env["DVD_PG_ADMIN_DSN"], env["DVD_OLTP_DSN"], source, days)
        load_seconds = perf_counter() - started
        exporter = OltpDropSource(env["DVD_OLTP_DSN"])
        client = s3_client(env["DVD_S3_ENDPOINT_URL"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])

        timings: dict[str, float] = {}
        sizes: dict[str, int] = {}
        rows = 0
        for attempt in range(args.repeat):
            psql_dir = root / f"psql-{attempt}"
            script = psql_script(exporter, days, psql_dir)
            started = perf_counter()
            subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script), env["DVD_OLTP_DSN"]],
                           check=True, env={**os.environ, "PGTZ": "UTC"})
            timings["psql_copy"] = min(timings.get("psql_copy", 1e9), perf_counter() - started)
            sizes["psql_copy"] = tree_bytes(psql_dir)

            files_dir = root / f"files-{attempt}"
            started = perf_counter()
            exporter.write_days(days, files_dir)
            timings["export_files"] = min(timings.get("export_files", 1e9), perf_counter() - started)
            sizes["export_files"] = tree_bytes(files_dir)

            started = perf_counter()
            result = seed(exporter, client, env["DVD_LANDING_BUCKET"], days)
            timings["export_to_s3"] = min(timings.get("export_to_s3", 1e9), perf_counter() - started)
            sizes["export_to_s3"] = result.bytes
            rows = sum(result.rows.values())
        if len(set(sizes.values())) != 1:
            raise SystemExit(f"the paths wrote different bytes: {sizes}")

        with psycopg2.connect(env["DVD_PG_ADMIN_DSN"]) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            server = cur.fetchone()[0]
        labels = {
            "psql_copy": "`psql \\copy (SELECT ...) to` file, one session (the ceiling)",
            "export_files": "exporter: COPY TO STDOUT into the day files (`OltpDropSource.write_days`)",
            "export_to_s3": "exporter end to end: files + md5/manifest + upload to S3, manifest last",
        }
        results = [{"key": key, "path": labels[key], "rows": rows, "bytes": sizes[key], "seconds": round(seconds, 3),
                    "rows_per_s": round(rows / seconds), "vs_psql": round(timings["psql_copy"] / seconds, 2)}
                   for key, seconds in timings.items()]
        print(f"\n{rows:,} rows ({sizes['psql_copy']:,} bytes) over {len(days)} days, generator scale {args.scale:g}, "
              f"{result.objects} objects uploaded (files and manifests); OLTP load took {load_seconds:.1f}s")
        print("| path | rows | seconds | rows/s | vs `psql \\copy` |\n|---|---:|---:|---:|---:|")
        for r in results:
            print(f"| {r['path']} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows_per_s']:,} | {r['vs_psql']:.2f} |")
        write_results(args.out, started_at, {
            "machine": {**machine, "postgres": server, "load_average_at_end": load_average()},
            "data": {"scale": args.scale, "days": len(days), "first_day": days[0].isoformat(),
                     "rows_loaded": loaded, "objects_uploaded": result.objects, "repeat": args.repeat},
            "results": results,
        })
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
