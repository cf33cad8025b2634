"""Unit tests of the pure parts of the executor COPY path (the path itself runs in every load test), and the
client path for small loads against it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dvd_platform.warehouse.copy_in import ArrowLines


def _batch(values: list[str], kind: pa.DataType) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(values, type=kind)], names=["line"])


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_reader_returns_each_batch_as_one_block_and_counts_rows(kind):
    batches = [_batch(["1,a\n", '2,"b,c"\n'], kind), _batch([], kind), _batch(["3,é\n"], kind)]
    reader = ArrowLines(batches)
    assert reader.read(1 << 20) == b'1,a\n2,"b,c"\n'
    assert reader.read(1 << 20) == "3,é\n".encode()
    assert reader.read(1 << 20) == b""
    assert reader.rows == 3


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_reader_honours_sliced_batches(kind):
    """A batch may be a slice of a larger array: only its own rows' bytes are sent."""
    whole = _batch(["skip\n", "keep1\n", "keep2\n", "skip too\n"], kind)
    reader = ArrowLines([whole.slice(1, 2)])
    assert reader.read() == b"keep1\nkeep2\n"
    assert reader.rows == 2


def test_a_retried_task_replaces_its_partition_instead_of_duplicating_it(settings_env, pg, monkeypatch):
    """Spark may run a partition's task again after its COPY committed (retry, speculation)."""
    import pyspark
    from psycopg2 import sql

    from dvd_platform.resources.warehouse import WarehouseResource
    from dvd_platform.warehouse.copy_in import copy_task

    WarehouseResource(dsn=settings_env["DVD_PG_DSN"]).migrate()  # creates the dw_stage schema

    class Task:
        def __init__(self, part: int) -> None:
            self.part = part

        def partitionId(self) -> int:  # noqa: N802 - pyspark's name
            return self.part

    table, ledger = ("dw_stage", "copy_retry_test"), ("dw_stage", "copy_retry_test_parts")
    with pg.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(sql.Identifier(*table), sql.Identifier(*ledger)))
        cur.execute(sql.SQL("CREATE TABLE {} (id int, name text, _part int NOT NULL)").format(sql.Identifier(*table)))
        cur.execute(sql.SQL("CREATE TABLE {} (part int PRIMARY KEY, attempts int NOT NULL DEFAULT 1)")
                    .format(sql.Identifier(*ledger)))
    run = copy_task(settings_env["DVD_PG_DSN"], table, ledger, ["id", "name"])
    try:
        for part, lines in [(0, ["1,a,0\n", "2,,0\n"]), (1, ['3,"x,y",1\n']), (0, ["1,a,0\n", "2,,0\n"])]:
            monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda part=part: Task(part)))
            (result,) = list(run(iter([_batch(lines, pa.string())])))
            assert result.to_pydict() == {"part": [part], "rows": [len(lines)]}
        with pg.cursor() as cur:
            cur.execute(sql.SQL("SELECT id, name, _part FROM {} ORDER BY id").format(sql.Identifier(*table)))
            assert cur.fetchall() == [(1, "a", 0), (2, None, 0), (3, "x,y", 1)]
            cur.execute(sql.SQL("SELECT part, attempts FROM {} ORDER BY part").format(sql.Identifier(*ledger)))
            assert cur.fetchall() == [(0, 2), (1, 1)]
    finally:
        with pg.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(sql.Identifier(*table), sql.Identifier(*ledger)))


def test_a_small_load_copied_through_the_client_stages_what_the_executors_stage(settings_env, pg, spark):
    """The two COPY paths, fed the same frame (NULLs, empty strings, quotes, commas, newlines, arrays,
    timestamps, decimals), leave the same rows: only where the lines travel differs."""
    from datetime import datetime, timezone
    from decimal import Decimal

    import psycopg2
    from psycopg2 import sql

    from dvd_platform.resources.warehouse import WarehouseResource
    from dvd_platform.warehouse.copy_in import copy_dataframe, copy_from_client

    WarehouseResource(dsn=settings_env["DVD_PG_DSN"]).migrate()  # creates the dw_stage schema
    rows = [(1, "plain", ["a", "b"], datetime(2022, 2, 14, 10, 0, 1, 123456, tzinfo=timezone.utc), Decimal("2.99")),
            (2, None, None, None, None),
            (3, "", [], datetime(2022, 2, 14, tzinfo=timezone.utc), Decimal("0.00")),
            (4, 'say "hi", then\nleave', ['x "y"', "c,d", "back\\slash"], None, Decimal("-1.50"))]
    df = spark.createDataFrame(rows, "id int, name string, tags array<string>, at timestamp, amount decimal(7,2)")
    columns = ["id", "name", "tags", "at", "amount"]
    names = {"executors": ("dw_stage", "copy_paths_executors"), "client": ("dw_stage", "copy_paths_client")}
    ledger = ("dw_stage", "copy_paths_ledger")
    tables = [sql.Identifier(*t) for t in (*names.values(), ledger)]
    with pg.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}, {}").format(*tables))
        for table in names.values():
            cur.execute(sql.SQL("CREATE TABLE {} (id int, name text, tags text[], at timestamptz, amount numeric(7,2), "
                                "_part int NOT NULL)").format(sql.Identifier(*table)))
        cur.execute(sql.SQL("CREATE TABLE {} (part int PRIMARY KEY, attempts int NOT NULL DEFAULT 1)")
                    .format(sql.Identifier(*ledger)))
    try:
        assert copy_dataframe(df, columns, settings_env["DVD_PG_DSN"], names["executors"], ledger) == 4
        conn = psycopg2.connect(settings_env["DVD_PG_DSN"], options="-c timezone=UTC")
        try:
            assert copy_from_client(df, columns, conn, names["client"]) == 4
            conn.commit()
        finally:
            conn.close()
        staged = {}
        with pg.cursor() as cur:
            for path, table in names.items():
                cur.execute(sql.SQL("SELECT id, name, tags, at, amount FROM {} ORDER BY id").format(sql.Identifier(*table)))
                staged[path] = cur.fetchall()
        assert staged["client"] == staged["executors"]
        assert [r[1] for r in staged["client"]] == ["plain", None, "", 'say "hi", then\nleave']
        assert staged["client"][3][2] == ['x "y"', "c,d", "back\\slash"]
    finally:
        with pg.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}, {}").format(*tables))
