"""Spark transforms from staged snapshots to warehouse rows.

SCD2 dimensions are derived from the staged *history* of their source tables:
for each day D of the window, a member gets a new version when its denormalized
state at the end of D differs from its state at the end of D-1. The result
depends only on the staged history, never on what the warehouse holds or on
the order days are loaded in, so re-running any day reproduces exactly the
versions (and keys) an in-order run makes. Keys hash (natural key,
valid_from); the first version of a member is valid from -infinity.

Type-1 dimensions and the category bridge take each member's latest staged
state, so re-running an old day never rolls them back.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

MINUS_INFINITY = "-infinity"
KEY_SPACE = 4_611_686_018_427_387_903  # 2**62 - 1: keys stay positive; -1 is the unknown member


def _days_filter(column: str, days: list[date]) -> Column:
    return F.col(column).isin([d.isoformat() for d in days]) if days else F.lit(False)


def as_of(history: DataFrame, key: str, pairs: DataFrame, pair_key: str, prefix: str) -> DataFrame:
    """For each row of ``pairs`` (``pair_key``, ``d``): the ``history`` row of that key with the latest dt <= d.

    The history's columns come back prefixed with ``prefix`` so several as-of
    lookups can be chained; pairs without a match keep nulls.
    """
    renamed = history.select([F.col(c).alias(f"{prefix}{c}") for c in history.columns])
    joined = pairs.join(
        renamed,
        (pairs[pair_key] == renamed[f"{prefix}{key}"]) & (renamed[f"{prefix}dt"] <= pairs["d"]),
        "left",
    )
    order = Window.partitionBy(*pairs.columns).orderBy(F.col(f"{prefix}dt").desc_nulls_last())
    return joined.withColumn("_rn", F.row_number().over(order)).where("_rn = 1").drop("_rn")


def _version_rows(state: DataFrame, id_col: str, attrs: list[str]) -> DataFrame:
    """Compare each candidate's state on d with its state on d-1 and emit the versions that start on d."""
    fingerprint = F.sha2(F.to_json(F.struct(*[F.col(a) for a in attrs])), 256)
    cur = state.where(F.col("_when") == "cur").withColumn("_fp", fingerprint)
    prev = (
        state.where(F.col("_when") == "prev").withColumn("_fp", fingerprint)
        .select(F.col(id_col).alias("_pid"), F.date_add("d", 1).alias("_pd"), F.col("_fp").alias("_pfp"),
                F.col("_exists").alias("_pexists"))
    )
    both = cur.where("_exists").join(prev, (cur[id_col] == prev["_pid"]) & (cur["d"] == prev["_pd"]), "left")
    changed = both.where(F.col("_pexists").isNull() | ~F.col("_pexists") | (F.col("_fp") != F.col("_pfp")))
    day_start = F.to_timestamp(F.col("d"))
    valid_from = (
        F.when(F.col("_pexists").isNull() | ~F.col("_pexists"), F.lit(MINUS_INFINITY))
        .otherwise(
            F.date_format(
                F.when(F.to_date("_changed_at") == F.col("d"), F.col("_changed_at")).otherwise(day_start),
                "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX",
            )
        )
    )
    return (
        changed.withColumn("valid_from", valid_from)
        .withColumn("_key", F.pmod(F.xxhash64(F.col(id_col), F.col("valid_from")), F.lit(KEY_SPACE)) + 1)
        .withColumn("version_day", F.col("d"))
    )


def _pairs_with_previous(candidates: DataFrame, id_col: str) -> DataFrame:
    cur = candidates.select(id_col, "d", F.lit("cur").alias("_when"))
    prev = candidates.select(id_col, F.date_sub("d", 1).alias("d"), F.lit("prev").alias("_when"))
    return cur.unionByName(prev).distinct()


def customer_versions(customer: DataFrame, address: DataFrame, city: DataFrame, country: DataFrame,
                      days: list[date]) -> DataFrame:
    """dim_customer versions starting on ``days`` (customer + address + city + country, denormalized)."""
    in_days = _days_filter("dt", days)
    k = country.where(in_days).select("country_id", F.col("dt").alias("d"))
    c = city.where(in_days).select("city_id", F.col("dt").alias("d")).unionByName(
        city.join(k, "country_id").where(F.col("dt") <= F.col("d")).select("city_id", "d"))
    a = address.where(in_days).select("address_id", F.col("dt").alias("d")).unionByName(
        address.join(c, "city_id").where(F.col("dt") <= F.col("d")).select("address_id", "d"))
    candidates = customer.where(in_days).select("customer_id", F.col("dt").alias("d")).unionByName(
        customer.join(a, "address_id").where(F.col("dt") <= F.col("d")).select("customer_id", "d")
    ).distinct()
    pairs = _pairs_with_previous(candidates, "customer_id")
    s = as_of(customer, "customer_id", pairs, "customer_id", "c_")
    s = as_of(address, "address_id", s, "c_address_id", "a_")
    s = as_of(city, "city_id", s, "a_city_id", "ci_")
    s = as_of(country, "country_id", s, "ci_country_id", "co_")
    state = s.select(
        "customer_id", "d", "_when",
        F.col("c_customer_id").isNotNull().alias("_exists"),
        F.col("c_first_name").alias("first_name"), F.col("c_last_name").alias("last_name"),
        F.col("c_email").alias("email"), F.col("a_address").alias("address"), F.col("a_district").alias("district"),
        F.col("ci_city").alias("city"), F.col("co_country").alias("country"),
        F.col("a_postal_code").alias("postal_code"), F.col("a_phone").alias("phone"),
        F.col("c_store_id").alias("store_id"), F.col("c_activebool").alias("active"),
        F.col("c_create_date").alias("create_date"),
        F.greatest("c_last_update", "a_last_update", "ci_last_update", "co_last_update").alias("_changed_at"),
    )
    attrs = ["first_name", "last_name", "email", "address", "district", "city", "country", "postal_code", "phone",
             "store_id", "active", "create_date"]
    versions = _version_rows(state, "customer_id", attrs)
    return versions.select(F.col("_key").alias("customer_key"), "customer_id", *attrs, "valid_from", "version_day")


def film_versions(film: DataFrame, language: DataFrame, film_category: DataFrame, category: DataFrame,
                  days: list[date]) -> DataFrame:
    """dim_film versions starting on ``days`` (film + language + its categories)."""
    in_days = _days_filter("dt", days)
    lang_changed = language.where(in_days).select("language_id", F.col("dt").alias("d"))
    cat_changed = category.where(in_days).select("category_id", F.col("dt").alias("d"))
    candidates = (
        film.where(in_days).select("film_id", F.col("dt").alias("d"))
        .unionByName(film_category.where(in_days).select("film_id", F.col("dt").alias("d")))
        .unionByName(film.join(lang_changed, "language_id").where(F.col("dt") <= F.col("d")).select("film_id", "d"))
        .unionByName(film_category.join(cat_changed, "category_id").where(F.col("dt") <= F.col("d")).select("film_id", "d"))
        .distinct()
    )
    pairs = _pairs_with_previous(candidates, "film_id")
    s = as_of(film, "film_id", pairs, "film_id", "f_")
    s = as_of(language, "language_id", s, "f_language_id", "l_")
    # Categories as of d: every (film, category) link seen up to d, named as of d.
    links = (
        pairs.join(film_category.select("film_id", "category_id", F.col("dt").alias("fc_dt"),
                                        F.col("last_update").alias("fc_last_update")), "film_id")
        .where(F.col("fc_dt") <= F.col("d"))
        .groupBy("film_id", "d", "_when", "category_id").agg(F.max("fc_last_update").alias("fc_last_update"))
    )
    named = as_of(category, "category_id", links, "category_id", "cat_")
    categories = named.groupBy("film_id", "d", "_when").agg(
        F.array_sort(F.collect_set("cat_name")).alias("categories"),
        F.greatest(F.max("fc_last_update"), F.max("cat_last_update")).alias("_cat_changed_at"),
    )
    s = s.join(categories, ["film_id", "d", "_when"], "left")
    state = s.select(
        "film_id", "d", "_when",
        F.col("f_film_id").isNotNull().alias("_exists"),
        F.col("f_title").alias("title"), F.col("f_description").alias("description"),
        F.col("f_release_year").alias("release_year"), F.col("l_name").alias("language"),
        F.coalesce("categories", F.array().cast("array<string>")).alias("categories"),
        F.col("f_rating").alias("rating"), F.col("f_length").alias("length"),
        F.col("f_rental_duration").alias("rental_duration"), F.col("f_rental_rate").alias("rental_rate"),
        F.col("f_replacement_cost").alias("replacement_cost"), F.col("f_special_features").alias("special_features"),
        F.greatest("f_last_update", "l_last_update", "_cat_changed_at").alias("_changed_at"),
    )
    attrs = ["title", "description", "release_year", "language", "categories", "rating", "length", "rental_duration",
             "rental_rate", "replacement_cost", "special_features"]
    versions = _version_rows(state, "film_id", attrs)
    return versions.select(F.col("_key").alias("film_key"), "film_id", *attrs, "valid_from", "version_day")


def latest(history: DataFrame, *key: str) -> DataFrame:
    """Each member's (each ``key`` value's) latest staged row."""
    order = Window.partitionBy(*key).orderBy(F.col("dt").desc())
    return history.withColumn("_rn", F.row_number().over(order)).where("_rn = 1").drop("_rn")


def store_rows(store: DataFrame, staff: DataFrame, address: DataFrame, city: DataFrame, country: DataFrame) -> DataFrame:
    """dim_store (type 1): latest state; store_key is the store id."""
    s = latest(store, "store_id").alias("s")
    m = latest(staff, "staff_id").select("staff_id", F.concat_ws(" ", "first_name", "last_name").alias("manager_name"))
    a = latest(address, "address_id").select("address_id", "address", "city_id")
    ci = latest(city, "city_id").select("city_id", "city", "country_id")
    co = latest(country, "country_id").select("country_id", "country")
    return (
        s.join(m, F.col("s.manager_staff_id") == m["staff_id"], "left")
        .join(a, F.col("s.address_id") == a["address_id"], "left")
        .join(ci, "city_id", "left").join(co, "country_id", "left")
        .select(F.col("s.store_id").cast("long").alias("store_key"), F.col("s.store_id").alias("store_id"),
                F.col("s.manager_staff_id").alias("manager_staff_id"), "manager_name", "address", "city", "country")
    )


def staff_rows(staff: DataFrame) -> DataFrame:
    """dim_staff (type 1): latest state; staff_key is the staff id."""
    return latest(staff, "staff_id").select(
        F.col("staff_id").cast("long").alias("staff_key"), "staff_id", "first_name", "last_name", "email",
        "store_id", "active", "username",
    )


def bridge_rows(film_category: DataFrame, category: DataFrame) -> DataFrame:
    """bridge_film_category links: each film's categories (every link seen); the weight 1/n is set in SQL."""
    names = latest(category, "category_id").select("category_id", F.col("name").alias("category"))
    return film_category.select("film_id", "category_id").distinct().join(names, "category_id").select(
        "film_id", "category").distinct()


def rental_rows(rental: DataFrame, inventory: DataFrame) -> DataFrame:
    """fact_rental stage rows: the rental plus its inventory's film and store as of the rental's day."""
    pairs = rental.select("rental_id", "inventory_id", F.col("dt").alias("d"))
    inv = as_of(inventory, "inventory_id", pairs, "inventory_id", "i_").select(
        "rental_id", F.col("i_film_id").alias("film_id"), F.col("i_store_id").alias("store_id"))
    return rental.join(inv, "rental_id", "left").select(
        "rental_id", F.col("rental_date").alias("rental_ts"), F.col("return_date").alias("return_ts"),
        "inventory_id", "customer_id", "staff_id", "film_id", "store_id",
    )


def payment_rows(payment: DataFrame) -> DataFrame:
    """fact_payment stage rows (rental-derived keys are bound in the warehouse)."""
    return payment.select(
        "payment_id", F.col("payment_date").alias("payment_ts"), "customer_id", "staff_id", "rental_id", "amount"
    )
