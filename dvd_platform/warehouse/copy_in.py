"""Rows from a Spark DataFrame into a PostgreSQL table by ``COPY``, streamed by the executors.

Why this shape:

* **No data through the driver.** Each Spark task opens its own connection and
  streams its partition with ``COPY ... FROM STDIN``; on a cluster the rows go
  from the executors straight to PostgreSQL (the driver only collects one count
  per partition). Locally the executors are the driver's Python workers, so the
  same code path is measured and tested.
* **No Python row objects.** Spark formats each row as one CSV line in the JVM
  (``to_csv``, in COPY's dialect); ``mapInArrow`` hands the Python worker Arrow
  batches of those lines, and the COPY stream reads each batch's string buffer as
  one block of bytes. Python touches one object per ~10,000 rows.
* **COPY overlaps the computation.** A task streams while Spark still computes
  the rest of its partition; there is no CSV file written first and read back.
* **Task retries do not duplicate.** Every line carries its Spark partition id
  (column ``_part``), and each task records its partition in a ledger table in
  the same transaction as its COPY. A retried or speculative attempt upserts the
  same ledger row (which waits for a concurrent attempt to finish), sees it is
  not the first, and deletes its partition's rows before copying again. The
  caller checks the table's count against the counts Spark returned for the
  attempts that succeeded.

A small load (``copy_from_client``, below ``CLIENT_COPY_MAX_ROWS`` staged rows, which the caller
knows from the snapshots' footers) skips the executors: its CSV lines, made in the JVM all the
same, come to this process as Arrow and stream in one COPY. Starting the executors' Python
workers and a connection per task cost about 2 s for one day's payments (of a one-day run's
26 Spark jobs the other 25 took 0.02-0.37 s each); a day's few hundred lines are a few kB.

Needs ``pyarrow`` and ``psycopg2`` on the executors (they are dependencies of
the package, so a cluster's Python environment built from it has both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from psycopg2 import sql

PART_COLUMN = "_part"
#: Loads of at most this many staged rows are copied through this process (``copy_from_client``).
CLIENT_COPY_MAX_ROWS = 10_000

# COPY's CSV dialect: "" quoting, unquoted empty = NULL, quoted empty = '', ISO
# timestamps with offset, values kept verbatim (Spark's writer trims by default).
CSV_OPTIONS = {
    "sep": ",",
    "quote": '"',
    "escape": '"',
    "nullValue": "",
    "emptyValue": '""',
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
    "dateFormat": "yyyy-MM-dd",
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
}


def csv_lines(df, columns: list[str]):
    """One column ``line``: each row as a CSV line ending in a newline, then its partition id.

    Arrays become PostgreSQL array literals (``{"a","b"}``), which CSV cannot express.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    selected = []
    for name in columns:
        col = F.col(name)
        if isinstance(df.schema[name].dataType, T.ArrayType):
            quoted = F.transform(col, lambda x: F.concat(F.lit('"'), F.regexp_replace(F.regexp_replace(
                x, r"\\", r"\\\\"), '"', r'\\"'), F.lit('"')))
            col = F.when(col.isNotNull(), F.concat(F.lit("{"), F.concat_ws(",", quoted), F.lit("}")))
        selected.append(col.alias(name))
    selected.append(F.spark_partition_id().alias(PART_COLUMN))
    return df.select(F.concat(F.to_csv(F.struct(*selected), CSV_OPTIONS), F.lit("\n")).alias("line"))


class ArrowLines:
    """A file-like ``read()`` over Arrow batches of CSV lines: each call returns one batch's bytes."""

    def __init__(self, batches) -> None:
        self._batches = iter(batches)
        self.rows = 0

    def read(self, size: int = -1) -> bytes:  # psycopg2's copy_expert sends whatever one read() returns
        for batch in self._batches:
            if batch.num_rows == 0:
                continue
            self.rows += batch.num_rows
            return _string_bytes(batch.column(0))
        return b""


def _string_bytes(lines) -> bytes:
    """The concatenated values of a (large) string array without nulls: one slice of its data buffer."""
    import pyarrow as pa

    _, offsets_buffer, data = lines.buffers()
    width = pa.int64() if pa.types.is_large_string(lines.type) else pa.int32()
    offsets = pa.Array.from_buffers(width, len(lines) + 1, [None, offsets_buffer], offset=lines.offset)
    start, end = offsets[0].as_py(), offsets[len(lines)].as_py()
    return data.slice(start, end - start).to_pybytes()


def _copy_statement(table: tuple[str, str], columns: list[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        sql.Identifier(*table), sql.SQL(", ").join(sql.Identifier(c) for c in [*columns, PART_COLUMN]))


def copy_task(dsn: str, table: tuple[str, str], ledger: tuple[str, str], columns: list[str]
              ) -> Callable[[Iterator], Iterator]:
    """The ``mapInArrow`` function: COPY one partition, idempotently; yields (part, rows)."""
    target = sql.Identifier(*table)
    copy = _copy_statement(table, columns)
    claim = sql.SQL("INSERT INTO {} AS l (part) VALUES (%s) ON CONFLICT (part) DO UPDATE SET attempts = l.attempts + 1 "
                    "RETURNING attempts").format(sql.Identifier(*ledger))
    undo = sql.SQL("DELETE FROM {} WHERE {} = %s").format(target, sql.Identifier(PART_COLUMN))

    def run(batches: Iterator) -> Iterator:
        import psycopg2
        import pyarrow as pa
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        reader = ArrowLines(batches)
        conn = psycopg2.connect(dsn, options="-c timezone=UTC", application_name="dvd_platform copy",
                                connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute(claim, (part,))
                if cur.fetchone()[0] > 1:
                    cur.execute(undo, (part,))  # an earlier attempt of this partition committed
                cur.copy_expert(copy.as_string(cur), reader, size=1 << 20)
            conn.commit()
        finally:
            conn.close()
        yield pa.RecordBatch.from_pydict({"part": [part], "rows": [reader.rows]},
                                         schema=pa.schema([("part", pa.int32()), ("rows", pa.int64())]))

    return run


def copy_dataframe(df, columns: list[str], dsn: str, table: tuple[str, str], ledger: tuple[str, str]) -> int:
    """COPY ``df``'s ``columns`` into ``table`` (which has them plus ``_part int``); returns the rows copied.

    ``ledger`` must exist as ``(part int PRIMARY KEY, attempts int NOT NULL DEFAULT 1)``.
    """
    counts = (csv_lines(df, columns)
              .mapInArrow(copy_task(dsn, table, ledger, columns), "part int, rows long")
              .collect())
    return sum(row["rows"] for row in counts)


def copy_from_client(df, columns: list[str], conn, table: tuple[str, str]) -> int:
    """COPY a small ``df``'s ``columns`` into ``table`` through this process, on ``conn`` (the caller commits);
    returns the rows copied. The lines are ``csv_lines``' (the JVM formats them); one Arrow transfer, one COPY."""
    reader = ArrowLines(csv_lines(df, columns).toArrow().to_batches())
    with conn.cursor() as cur:
        cur.copy_expert(_copy_statement(table, columns).as_string(cur), reader, size=1 << 20)
    return reader.rows
