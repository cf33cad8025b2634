"""The table contract: one declaration per landing table; the landing side and the staged layer derive from it.

A table's declaration says what a drop of it holds and what a valid row is: its columns in
order with their types, its primary key, the columns a row is useless without, the foreign
keys the platform enforces, and its landing layout. Derived from it: the drop headers and
manifests (``drops.py``), the generator's and the OLTP exporter's columns, the raw assets'
header check, the staged Spark schemas (``transforms/schemas.py``) and the staged checks'
per-table specs (``checks/staged.py``). The warehouse's columns are not derived: a fact or
dimension is a chosen projection of these (``LOAD_SPECS``). ``test_contract_ddl.py`` compares
both with the DDL: these tables with the OLTP schema the exporter reads (``sql/oltp/``), the
load specs with the warehouse's (``sql/``).

Columns are pagila's, in pagila's order (the sample CSVs' headers). Types, after parsing:
``int``, ``string``, ``timestamp`` (with UTC offset in the source), ``date``, ``bool``
(t/f), ``decimal(p,s)`` and ``text[]`` (a Postgres array literal).

Layout: event tables (an ``event_column``) are cut into days by it (UTC); reference tables
arrive as a full snapshot on the first day and as changed rows on later days.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False  # a row is useless without it (the key is checked apart)
    references: str | None = None  # "table.column": a foreign key enforced on the staged rows
    may_lag: bool = False  # the row may land before the one it references (days later): a warning, not an error


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: str  # the referenced (staged) table
    referenced_column: str
    may_lag: bool


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: tuple[Column, ...]
    primary_key: tuple[str, ...]
    event_column: str | None = None  # set for event tables, cut into days by it
    staged: bool = True  # parsed and checked by a stg_<table> asset (actor tables land and stay raw)

    @property
    def is_event(self) -> bool:
        return self.event_column is not None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.schema)

    @property
    def types(self) -> dict[str, str]:
        return {c.name: c.type for c in self.schema}

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.schema if c.required)

    @property
    def foreign_keys(self) -> tuple[ForeignKey, ...]:
        return tuple(ForeignKey(c.name, *c.references.split("."), c.may_lag) for c in self.schema if c.references)


def _table(name: str, key: tuple[str, ...], *columns: Column, event: str | None = None,
           staged: bool = True) -> TableSpec:
    return TableSpec(name, columns, key, event, staged)


# Shorthands for the declarations below.
C = Column
TS = "timestamp"
LAST_UPDATE = Column("last_update", TS)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        _table("rental", ("rental_id",),
               C("rental_id", "int"), C("rental_date", TS, required=True),
               C("inventory_id", "int", required=True, references="inventory.inventory_id"),
               C("customer_id", "int", required=True, references="customer.customer_id"),
               C("return_date", TS), C("staff_id", "int", required=True, references="staff.staff_id"), LAST_UPDATE,
               event="rental_date"),
        _table("payment", ("payment_id",),
               C("payment_id", "int"), C("customer_id", "int", required=True, references="customer.customer_id"),
               C("staff_id", "int", required=True),
               # A payment may land before its rental (late-arriving; completed by the warehouse).
               C("rental_id", "int", references="rental.rental_id", may_lag=True),
               C("amount", "decimal(7,2)", required=True), C("payment_date", TS, required=True),
               event="payment_date"),
        _table("customer", ("customer_id",),
               C("customer_id", "int"), C("store_id", "int", required=True), C("first_name", "string", required=True),
               C("last_name", "string", required=True), C("email", "string"), C("address_id", "int", required=True),
               C("activebool", "bool"), C("create_date", "date"), LAST_UPDATE, C("active", "int")),
        _table("address", ("address_id",),
               C("address_id", "int"), C("address", "string", required=True), C("address2", "string"),
               C("district", "string"), C("city_id", "int", required=True), C("postal_code", "string"),
               C("phone", "string"), LAST_UPDATE),
        _table("city", ("city_id",),
               C("city_id", "int"), C("city", "string", required=True), C("country_id", "int", required=True),
               LAST_UPDATE),
        _table("country", ("country_id",), C("country_id", "int"), C("country", "string", required=True), LAST_UPDATE),
        _table("film", ("film_id",),
               C("film_id", "int"), C("title", "string", required=True), C("description", "string"),
               C("release_year", "int"), C("language_id", "int", required=True), C("original_language_id", "int"),
               C("rental_duration", "int", required=True), C("rental_rate", "decimal(4,2)", required=True),
               C("length", "int"), C("replacement_cost", "decimal(5,2)", required=True), C("rating", "string"),
               LAST_UPDATE, C("special_features", "text[]")),
        _table("language", ("language_id",), C("language_id", "int"), C("name", "string", required=True), LAST_UPDATE),
        _table("category", ("category_id",), C("category_id", "int"), C("name", "string", required=True), LAST_UPDATE),
        _table("film_category", ("film_id", "category_id"), C("film_id", "int"), C("category_id", "int"), LAST_UPDATE),
        _table("actor", ("actor_id",),
               C("actor_id", "int"), C("first_name", "string"), C("last_name", "string"), LAST_UPDATE, staged=False),
        _table("film_actor", ("actor_id", "film_id"), C("actor_id", "int"), C("film_id", "int"), LAST_UPDATE,
               staged=False),
        _table("inventory", ("inventory_id",),
               C("inventory_id", "int"), C("film_id", "int", required=True, references="film.film_id"),
               C("store_id", "int", required=True, references="store.store_id"), LAST_UPDATE),
        _table("store", ("store_id",),
               C("store_id", "int"), C("manager_staff_id", "int"), C("address_id", "int", required=True), LAST_UPDATE),
        _table("staff", ("staff_id",),
               C("staff_id", "int"), C("first_name", "string", required=True), C("last_name", "string", required=True),
               C("address_id", "int"), C("email", "string"), C("store_id", "int", required=True),
               C("active", "bool"), C("username", "string"), LAST_UPDATE),
    )
}

EVENT_TABLES = tuple(name for name, spec in TABLES.items() if spec.is_event)
REFERENCE_TABLES = tuple(name for name, spec in TABLES.items() if not spec.is_event)
#: Tables staged (actor and film_actor land and are kept raw, but the star schema has no actor dimension).
STAGED_TABLES = tuple(name for name, spec in TABLES.items() if spec.staged)
