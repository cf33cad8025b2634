"""Spark schemas of the staged tables, from the typed contract (``dvd_platform.contract.tables``)."""

from __future__ import annotations

from dvd_platform.contract.tables import TABLES


def spark_type(kind: str):
    from pyspark.sql import types as T

    if kind.startswith("decimal("):
        precision, scale = (int(x) for x in kind[8:-1].split(","))
        return T.DecimalType(precision, scale)
    return {
        "int": T.IntegerType(), "string": T.StringType(), "timestamp": T.TimestampType(), "date": T.DateType(),
        "bool": T.BooleanType(), "text[]": T.ArrayType(T.StringType()),
    }[kind]


def staged_schema(table: str):
    """Spark schema of a staged snapshot: the typed columns plus ``dt`` (the drop day)."""
    from pyspark.sql import types as T

    fields = [T.StructField(c.name, spark_type(c.type)) for c in TABLES[table].schema]
    return T.StructType(fields + [T.StructField("dt", T.DateType())])


def quarantine_schema():
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField("source_object", T.StringType()), T.StructField("line", T.LongType()),
        T.StructField("reason", T.StringType()), T.StructField("raw_line", T.StringType()),
        T.StructField("dt", T.DateType()),
    ])
