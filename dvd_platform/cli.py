"""``dvd-platform``: the command line of the platform.

    dvd-platform stack up|down|status    the local PostgreSQL + S3 + Spark Connect server (writes .dvd/stack.env)
    dvd-platform seed [...]              upload sample daily drops to the landing area
    dvd-platform up [...]                stack up + seed + `dg dev` on 127.0.0.1:3000
    dvd-platform oltp load-sample [...]  a pagila-shaped OLTP database for the oltp_export connector
    dvd-platform materialize --from --to [--select]   a day range (`dg launch`; runs planned by dvd_platform.runner)
"""

# Thin argparse commands. The development commands (stack, seed, up, oltp load-sample) import
# dvd_platform.dev inside the command, never at module level, so `materialize` and the code
# location never load it (dvd_platform_tests/test_import_rules.py).

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import date

from dvd_platform import settings


def _source(args: argparse.Namespace):
    from dvd_platform.dev.seed.sources import sample_source

    return sample_source(args.source, scale=args.scale, seed=args.seed)


def _landing_client():
    from dvd_platform.resources.s3 import s3_client

    return s3_client(os.environ.get("DVD_S3_ENDPOINT_URL") or None)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where sample rows come from: shared by ``seed``/``up`` and ``oltp load-sample``."""
    parser.add_argument("--source", help="a folder of pagila-shaped CSVs, or 'generated' "
                        "(default: ../shared/datasets/pagila beside the project when it exists, else generated)")
    parser.add_argument("--scale", type=float, default=1.0, help="generator scale (1 = about pagila's size)")
    parser.add_argument("--seed", type=int, default=42, help="generator seed")


def add_seed_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument("--days", type=int, help="seed only the first N days of the selection")
    parser.add_argument("--from", dest="start", type=date.fromisoformat, help="first day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="end", type=date.fromisoformat, help="last day (YYYY-MM-DD)")
    parser.add_argument("--drip", type=float, default=0.0, metavar="SECONDS",
                        help="upload one day at a time, SECONDS apart (watch the sensor work)")


def add_spark_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classic-spark", action="store_true",
                        help="start no Spark Connect server: each run starts its own Spark driver (a JVM, ~7 s)")


def cmd_seed(args: argparse.Namespace) -> int:
    from dvd_platform.dev.seed.upload import seed, select_days

    settings.load_stack_env()
    source = _source(args)
    days = select_days(source, days=args.days, start=args.start, end=args.end)
    first, _ = source.day_range()
    if days and days[0] > first:
        print(f"note: the reference snapshot is in the drop of {first}, which this selection leaves out")
    bucket = os.environ.get("DVD_LANDING_BUCKET", settings.DEFAULT_LANDING_BUCKET)
    print(f"seeding {len(days)} days {days[0]}..{days[-1]} from {source.description} into s3://{bucket}/")
    result = seed(source, _landing_client(), bucket, days, drip=args.drip)
    print(f"uploaded {result.objects} objects, {result.bytes:,} bytes; rows: "
          + ", ".join(f"{t}={n:,}" for t, n in result.rows.items()))
    return 0


def cmd_oltp(args: argparse.Namespace) -> int:
    """Create the OLTP database (DVD_OLTP_DSN's) as the superuser and replay the sample's days into it."""
    from dvd_platform.dev.oltp_sample import load_sample
    from dvd_platform.dev.seed.upload import select_days

    settings.load_stack_env()
    missing = [key for key in ("DVD_OLTP_DSN", "DVD_PG_ADMIN_DSN") if not os.environ.get(key)]
    if missing:
        raise ValueError(f"{', '.join(missing)} not set: run `dvd-platform stack up` first")
    source = _source(args)
    days = select_days(source, days=args.days, end=args.end)
    load_sample(os.environ["DVD_PG_ADMIN_DSN"], os.environ["DVD_OLTP_DSN"], source, days)
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    from dvd_platform.dev.stack import Stack

    stack = Stack(spark_connect=not args.classic_spark)
    if args.action == "up":
        values = stack.up()
        print(f"stack up; settings in {stack.env_file}")
        print(f"  postgres: {_redact(values.get('DVD_PG_DSN', ''))}")
        print(f"  s3:       {values.get('DVD_S3_ENDPOINT_URL') or 'AWS'}")
        print(f"  spark:    {values.get('DVD_SPARK_REMOTE') or 'classic (each run starts its own driver)'}")
    elif args.action == "down":
        stack.down()
        print("stack down")
    else:
        print("running" if stack.is_running() else "not running")
        return 0 if stack.is_running() else 1
    return 0


def _redact(dsn: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", dsn)


def cmd_up(args: argparse.Namespace) -> int:
    """Stack up, seed, then `dg dev` in the foreground; Ctrl-C or SIGTERM stops everything (``dvd_platform.dev.up``)."""
    from dvd_platform.dev.up import run_up

    return run_up(args)


def cmd_materialize(args: argparse.Namespace) -> int:
    """`dg launch` of the selection over the day range (in this process), and a per-asset summary."""
    settings.load_stack_env()
    from dvd_platform.runner import launch_range

    # The instance as configured: its dagster.yaml is the operator's (or `stack up`'s copy), never rewritten here.
    print(f"materializing {args.select or 'all assets'} for {args.start}..{args.end}: one `dg launch` for the "
          "days (and one for the months, when monthly assets are selected):", flush=True)
    summary = launch_range(args.start, args.end, args.select)
    print(f"run {summary.run_id}: {'success' if summary.ok else 'FAILED'}")
    print("\n".join(summary.lines()))
    return 0 if summary.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dvd-platform", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="start/stop the local PostgreSQL + S3")
    stack.add_argument("action", choices=["up", "down", "status"])
    add_spark_argument(stack)
    stack.set_defaults(func=cmd_stack)

    seed = sub.add_parser("seed", help="upload sample daily drops to the landing area")
    add_seed_arguments(seed)
    seed.set_defaults(func=cmd_seed)

    up = sub.add_parser("up", help="stack up, seed, and run the Dagster UI + daemon (dg dev)")
    add_seed_arguments(up)
    up.add_argument("--no-seed", action="store_true", help="do not seed sample drops")
    up.add_argument("--port", type=int, default=3000)
    add_spark_argument(up)
    up.set_defaults(func=cmd_up)
    oltp = sub.add_parser("oltp", help="the OLTP source database")
    oltp_sub = oltp.add_subparsers(dest="oltp_command", required=True)
    load = oltp_sub.add_parser("load-sample", help="(re)create the OLTP database from the sample, from its first day")
    add_source_arguments(load)
    load.add_argument("--days", type=int, help="load only the first N days")
    load.add_argument("--to", dest="end", type=date.fromisoformat, help="last day (YYYY-MM-DD)")
    load.set_defaults(func=cmd_oltp)

    mat = sub.add_parser("materialize", help="materialize assets for a day range in one run (dg launch)")
    mat.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
    mat.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
    mat.add_argument("--select", help="Dagster asset selection, e.g. 'group:staging' or 'key:stg_rental+' "
                     "(default: the whole graph from landing on; the OLTP export only when selected)")
    mat.set_defaults(func=cmd_materialize)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # one clear line for operators; tracebacks with DVD_DEBUG=1
        if os.environ.get("DVD_DEBUG"):
            raise
        print(f"dvd-platform {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
