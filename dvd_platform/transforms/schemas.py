"""Typed contract of the staged tables: each landing column's type after parsing.

Types: ``int``, ``string``, ``timestamp`` (with UTC offset in the source),
``date``, ``bool`` (t/f), ``decimal(p,s)`` and ``text[]`` (a Postgres array literal).
"""

from __future__ import annotations

from dvd_platform.contract.tables import TABLES

STAGED_TYPES: dict[str, dict[str, str]] = {
    "rental": {"rental_id": "int", "rental_date": "timestamp", "inventory_id": "int", "customer_id": "int",
               "return_date": "timestamp", "staff_id": "int", "last_update": "timestamp"},
    "payment": {"payment_id": "int", "customer_id": "int", "staff_id": "int", "rental_id": "int",
                "amount": "decimal(7,2)", "payment_date": "timestamp"},
    "customer": {"customer_id": "int", "store_id": "int", "first_name": "string", "last_name": "string",
                 "email": "string", "address_id": "int", "activebool": "bool", "create_date": "date",
                 "last_update": "timestamp", "active": "int"},
    "address": {"address_id": "int", "address": "string", "address2": "string", "district": "string",
                "city_id": "int", "postal_code": "string", "phone": "string", "last_update": "timestamp"},
    "city": {"city_id": "int", "city": "string", "country_id": "int", "last_update": "timestamp"},
    "country": {"country_id": "int", "country": "string", "last_update": "timestamp"},
    "film": {"film_id": "int", "title": "string", "description": "string", "release_year": "int",
             "language_id": "int", "original_language_id": "int", "rental_duration": "int",
             "rental_rate": "decimal(4,2)", "length": "int", "replacement_cost": "decimal(5,2)",
             "rating": "string", "last_update": "timestamp", "special_features": "text[]"},
    "language": {"language_id": "int", "name": "string", "last_update": "timestamp"},
    "category": {"category_id": "int", "name": "string", "last_update": "timestamp"},
    "film_category": {"film_id": "int", "category_id": "int", "last_update": "timestamp"},
    "inventory": {"inventory_id": "int", "film_id": "int", "store_id": "int", "last_update": "timestamp"},
    "store": {"store_id": "int", "manager_staff_id": "int", "address_id": "int", "last_update": "timestamp"},
    "staff": {"staff_id": "int", "first_name": "string", "last_name": "string", "address_id": "int",
              "email": "string", "store_id": "int", "active": "bool", "username": "string",
              "last_update": "timestamp"},
}

#: Tables staged (actor and film_actor land and are kept raw, but the star schema has no actor dimension).
STAGED_TABLES = tuple(STAGED_TYPES)

assert all(tuple(STAGED_TYPES[t]) == TABLES[t].columns for t in STAGED_TABLES), "staged contract drifted from drops"


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

    fields = [T.StructField(c, spark_type(k)) for c, k in STAGED_TYPES[table].items()]
    return T.StructType(fields + [T.StructField("dt", T.DateType())])


def quarantine_schema():
    from pyspark.sql import types as T

    return T.StructType([
        T.StructField("source_object", T.StringType()), T.StructField("line", T.LongType()),
        T.StructField("reason", T.StringType()), T.StructField("raw_line", T.StringType()),
        T.StructField("dt", T.DateType()),
    ])
