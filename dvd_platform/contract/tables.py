"""The table contract: which tables a daily drop holds and their columns.

Columns are pagila's, in pagila's order (the sample CSVs' headers). Event tables
are cut into days by their event column (UTC); reference tables arrive as a
full snapshot on the first day and as changed rows on later days.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]
    event_column: str | None = None  # set for event tables, cut into days by it

    @property
    def is_event(self) -> bool:
        return self.event_column is not None


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("rental", ("rental_id", "rental_date", "inventory_id", "customer_id", "return_date", "staff_id", "last_update"),
                  ("rental_id",), "rental_date"),
        TableSpec("payment", ("payment_id", "customer_id", "staff_id", "rental_id", "amount", "payment_date"),
                  ("payment_id",), "payment_date"),
        TableSpec("customer", ("customer_id", "store_id", "first_name", "last_name", "email", "address_id", "activebool",
                               "create_date", "last_update", "active"), ("customer_id",)),
        TableSpec("address", ("address_id", "address", "address2", "district", "city_id", "postal_code", "phone", "last_update"),
                  ("address_id",)),
        TableSpec("city", ("city_id", "city", "country_id", "last_update"), ("city_id",)),
        TableSpec("country", ("country_id", "country", "last_update"), ("country_id",)),
        TableSpec("film", ("film_id", "title", "description", "release_year", "language_id", "original_language_id",
                           "rental_duration", "rental_rate", "length", "replacement_cost", "rating", "last_update",
                           "special_features"), ("film_id",)),
        TableSpec("language", ("language_id", "name", "last_update"), ("language_id",)),
        TableSpec("category", ("category_id", "name", "last_update"), ("category_id",)),
        TableSpec("film_category", ("film_id", "category_id", "last_update"), ("film_id", "category_id")),
        TableSpec("actor", ("actor_id", "first_name", "last_name", "last_update"), ("actor_id",)),
        TableSpec("film_actor", ("actor_id", "film_id", "last_update"), ("actor_id", "film_id")),
        TableSpec("inventory", ("inventory_id", "film_id", "store_id", "last_update"), ("inventory_id",)),
        TableSpec("store", ("store_id", "manager_staff_id", "address_id", "last_update"), ("store_id",)),
        TableSpec("staff", ("staff_id", "first_name", "last_name", "address_id", "email", "store_id", "active", "username",
                            "last_update"), ("staff_id",)),
    )
}

EVENT_TABLES = tuple(name for name, spec in TABLES.items() if spec.is_event)
REFERENCE_TABLES = tuple(name for name, spec in TABLES.items() if not spec.is_event)
