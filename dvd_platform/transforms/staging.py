"""Parse raw CSV drops into typed, de-duplicated rows, and quarantine what cannot be parsed.

Every input line ends up in exactly one place: the staged rows, the quarantine
(with its source object, line number and reason), or it is the header. Nothing
is dropped silently: ``StageResult.counts`` lets the caller prove it.

Records are lines: a quoted field may hold commas and doubled quotes, but not a
line break (its record's fragments are quarantined as unbalanced quotes). Lines
that are not valid UTF-8 are quarantined, never staged.

Line numbers come from the scan order: each day's file is one split (the
Spark resource sets ``spark.sql.files.maxPartitionBytes`` high), so within a
file ``monotonically_increasing_id`` increases by one per line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from dvd_platform.contract.tables import TABLES
from dvd_platform.transforms.schemas import spark_type

#: In :func:`day_profile`: a day's staged rows beyond the first of each key (rows minus distinct keys; 0 when unique).
DUPLICATE_KEYS = "duplicate_keys"
TIMESTAMP_FORMATS = ("yyyy-MM-dd HH:mm:ss[.SSSSSS]X", "yyyy-MM-dd HH:mm:ss[.SSSSSS]XXX")
TRUE_VALUES = ("t", "true", "1", "y", "yes")
FALSE_VALUES = ("f", "false", "0", "n", "no")
NOT_UTF8 = "not valid UTF-8 (raw_line shows the bad bytes as U+FFFD; the source object has them)"
#: A quoted field, from a field's start to its end ("" inside is a quote); group 1 keeps its leading comma.
QUOTED_FIELD = r'(^|,)"[^"]*(?:""[^"]*)*"(?=,|$)'
UNBALANCED_QUOTES = ("unbalanced quotes: a quoted field does not end on this line "
                     "(a line break inside a field is not supported: one record per line)")


@dataclass(frozen=True)
class SourceFile:
    uri: str  # what Spark reads (file:///... or s3a://...)
    day: date
    source_object: str  # the immutable lake object it came from, for quarantine rows


@dataclass
class StageResult:
    staged: DataFrame  # typed columns + dt
    quarantine: DataFrame  # source_object, line, reason, raw_line, dt
    annotated: DataFrame  # persisted; unpersist after both are written


def _typed(value, kind: str):
    if kind == "string":
        return value
    if kind == "timestamp":
        return F.coalesce(*[F.try_to_timestamp(value, F.lit(fmt)) for fmt in TIMESTAMP_FORMATS])
    if kind == "date":
        return F.try_to_date(value, "yyyy-MM-dd")
    if kind == "bool":
        lowered = F.lower(value)
        return F.when(lowered.isin(*TRUE_VALUES), F.lit(True)).when(lowered.isin(*FALSE_VALUES), F.lit(False))
    if kind == "text[]":
        inner = F.regexp_extract(value, r"^\{(.*)\}$", 1)
        items = F.transform(F.split(inner, ","), lambda x: F.regexp_replace(F.trim(x), r'^"|"$', ""))
        return (
            F.when(value == "{}", F.array().cast("array<string>"))
            .when(value.rlike(r"^\{.*\}$"), items)
        )
    return value.try_cast(spark_type(kind))


def stage_table(spark: SparkSession, table: str, files: list[SourceFile]) -> StageResult:
    """Typed rows of ``table`` from its daily files, plus the quarantine of the rest."""
    columns = list(TABLES[table].types)
    csv_schema = ", ".join(f"_c{i} STRING" for i in range(len(columns) + 1))  # one more: see _typed_with_reasons
    parsed = _numbered_lines(spark, files).withColumn(
        "_p", F.from_csv(F.col("value"), csv_schema, {"mode": "PERMISSIVE", "escape": "\"", "quote": "\""})
    )
    annotated = _deduplicated(table, _typed_with_reasons(table, parsed)).persist()
    staged = annotated.where(F.col("_reason") == "").select(*columns, "dt")
    quarantine = annotated.where(F.col("_reason") != "").select(
        "source_object", "line", F.col("_reason").alias("reason"), "raw_line", "dt"
    )
    return StageResult(staged=staged, quarantine=quarantine, annotated=annotated)


def _numbered_lines(spark: SparkSession, files: list[SourceFile]) -> DataFrame:
    """Every data line of the files (at least one: a window without any needs no Spark, see the staged
    assets) with its file's day, source object and 1-based line number.

    The day and source object come from literal maps keyed by the last two parts of the file's path
    (``dt=D/<name>``: one file per day, in characters no URI escapes). Spark names a file it read by its
    URI with some characters escaped (a space as ``%20``), so the whole path cannot be the key (joining
    on it dropped every line of a staging dir with a space); and a join, not a map, cost a Spark job."""
    parts = [_day_part(f.uri) for f in files]
    if len(set(parts)) < len(parts):
        raise ValueError(f"two files of one window end in the same day folder and name: {sorted(parts)}")
    day_of = F.create_map(*[c for part, f in zip(parts, files) for c in (F.lit(part), F.lit(f.day))])
    source_of = F.create_map(*[c for part, f in zip(parts, files) for c in (F.lit(part), F.lit(f.source_object))])
    text = (
        spark.read.text([f.uri for f in files])
        .withColumn("file", F.input_file_name())
        .withColumn("_id", F.monotonically_increasing_id())
    )
    first_ids = text.groupBy("file").agg(F.min("_id").alias("_first"))
    day_part = F.regexp_extract("file", r"[^/]+/[^/]+$", 0)
    return (
        text.join(F.broadcast(first_ids), "file")
        .withColumn("line", F.col("_id") - F.col("_first") + 1)
        .withColumn("dt", day_of[day_part])
        .withColumn("source_object", source_of[day_part])
        .where(F.col("line") > 1)  # the header (checked against the contract by the raw asset)
    )


def _day_part(uri: str) -> str:
    """``dt=D/<file name>``: the end of a day file's path, the same in its URI as in Spark's name for it."""
    return "/".join(uri.rsplit("/", 2)[-2:])


def _typed_with_reasons(table: str, parsed: DataFrame) -> DataFrame:
    """Typed columns, and ``_reason``: why the line cannot be staged ("" when it can)."""
    types = TABLES[table].types
    count = len(types)
    quotes = F.length("value") - F.length(F.regexp_replace("value", '"', ""))
    # Fields are counted from the line, not from the parse: Spark's CSV parser reads an empty unquoted
    # field as null, so a row ending in an empty field would look one short, and an empty extra field
    # go unseen. A quoted field counts only where the parser sees one: from a field's start to its end
    # (a quote inside an unquoted value is a character). The pattern is unrolled, so that Java's regex
    # does not recurse per character (a field of some thousands of characters overflowed its stack).
    unquoted = F.regexp_replace("value", QUOTED_FIELD, "$1")
    fields = F.length(unquoted) - F.length(F.regexp_replace(unquoted, ",", "")) + 1
    reasons = [
        # Spark's text reader keeps a line's bytes as they are: without this, invalid UTF-8 would be staged
        # and fail (or be mangled) later, in Parquet readers or in the warehouse's COPY.
        F.when(~F.is_valid_utf8("value"), F.lit(NOT_UTF8)),
        # Records are read line by line: a quoted field holding a line break splits its record into
        # fragments that each have an odd number of quotes. Say so, rather than only "fewer fields".
        F.when(quotes % 2 == 1, F.lit(UNBALANCED_QUOTES)),
        F.when((quotes % 2 == 0) & (fields < count), F.lit(f"expected {count} fields, found fewer")),
        # _c{count}: what the parser itself found beyond the contract's fields (a safety net for a line
        # the count above reads otherwise).
        F.when((quotes % 2 == 0) & ((fields > count) | F.col(f"_p._c{count}").isNotNull()),
               F.lit(f"expected {count} fields, found more")),
    ]
    typed_cols = []
    for i, (name, kind) in enumerate(types.items()):
        raw = F.trim(F.col(f"_p._c{i}"))
        clean = F.when(raw != "", raw)
        typed = _typed(clean, kind)
        typed_cols.append(typed.alias(name))
        if kind != "string":
            reasons.append(
                F.when(clean.isNotNull() & typed.isNull(),
                       F.concat(F.lit(f"{name}: cannot parse '"), clean, F.lit(f"' as {kind}")))
            )
    annotated = parsed.select(
        "source_object", "line", "dt", F.make_valid_utf8("value").alias("raw_line"), *typed_cols,
        F.make_valid_utf8(F.concat_ws("; ", *reasons)).alias("_reason"),  # reasons quote values
    )
    key = TABLES[table].primary_key
    missing_key = F.lit(False)
    for column in key:
        missing_key = missing_key | F.col(column).isNull()
    return annotated.withColumn(
        "_reason",
        F.when(missing_key & (F.col("_reason") == ""), F.lit(f"missing primary key ({', '.join(key)})"))
        .otherwise(F.col("_reason")),
    )


def _deduplicated(table: str, annotated: DataFrame) -> DataFrame:
    """Duplicates on the key within a day: the latest last_update wins (then the later line); the others
    are quarantined, naming the line that superseded them."""
    spec = TABLES[table]
    order_column = "last_update" if "last_update" in TABLES[table].types else spec.event_column
    window = Window.partitionBy(*spec.primary_key, "dt").orderBy(F.desc_nulls_last(order_column), F.desc("line"))
    valid = F.col("_reason") == ""
    return (
        annotated.withColumn("_rank", F.when(valid, F.row_number().over(window)))
        .withColumn("_winner", F.when(valid, F.first("line").over(window)))
        .withColumn(
            "_reason",
            F.when(valid & (F.col("_rank") > 1),
                   F.concat(F.lit(f"duplicate key ({', '.join(spec.primary_key)}): superseded by line "),
                            F.col("_winner").cast("string")))
            .otherwise(F.col("_reason")),
        )
    )


def day_profile(annotated: DataFrame, key: Sequence[str], conditions: Mapping[str, str]
                ) -> dict[date, dict[str, int]]:
    """Per day, in one pass over the annotated rows (``_reason`` "" when staged): rows in (data lines), staged, quarantined; staged
    rows beyond the first of each key (``DUPLICATE_KEYS``); and, per named SQL condition, the staged rows that
    meet it (the row-level checks' offending rows). One Spark job instead of one per figure."""
    staged = F.col("_reason") == ""
    key_value = F.struct(*[F.col(c) for c in key])
    aggregates = [
        F.count(F.lit(1)).alias("rows_in"),
        F.count(F.when(staged, 1)).alias("rows_out"),
        (F.count(F.when(staged, 1)) - F.count_distinct(F.when(staged, key_value))).alias(DUPLICATE_KEYS),
        *[F.count(F.when(staged & F.expr(c), 1)).alias(n) for n, c in conditions.items()],
    ]
    profile = {}
    for r in annotated.groupBy("dt").agg(*aggregates).collect():
        figures = r.asDict()
        del figures["dt"]
        figures["rows_quarantined"] = figures["rows_in"] - figures["rows_out"]
        profile[r["dt"]] = figures
    if None in profile:  # a line's file, as Spark names it, is none of the URIs it was given to read
        raise ValueError(f"{profile[None]['rows_in']} lines were read from a file Spark names other than its "
                         "path (e.g. percent-encoded): their day is unknown, nothing is staged")
    return profile
