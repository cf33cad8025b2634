"""The generated stores and their staff: ``STORES`` x scale stores (at least 2), ``STAFF_PER_STORE`` each.

Store ``s`` has address ``s`` and manager ``(s - 1) * STAFF_PER_STORE + 1``; staff
member ``n`` has address ``stores + n``. Never changed after the first day.
"""

from __future__ import annotations

from typing import Iterator

from dvd_platform.dev.seed.draws import reference_rng
from dvd_platform.dev.seed.formats import Row
from dvd_platform.dev.seed.names import FIRST_NAMES, LAST_NAMES

STORES = 2  # at scale 1
STAFF_PER_STORE = 2
STAFF_MAIL = "dvdstaff.com"
#: The columns of the rows made here, by name: generator.py writes them in the contract's order.
COLUMNS = {
    "store": ("store_id", "manager_staff_id", "address_id", "last_update"),
    "staff": ("staff_id", "first_name", "last_name", "address_id", "email", "store_id", "active", "username",
              "last_update"),
}


def store_count(scale: float) -> int:
    return max(STORES, round(STORES * scale))


def store_rows(n_stores: int, loaded: str) -> Iterator[Row]:
    for store in range(1, n_stores + 1):
        yield [store, (store - 1) * STAFF_PER_STORE + 1, store, loaded]


def staff_rows(seed: int, n_stores: int, loaded: str) -> Iterator[Row]:
    for staff_id in range(1, n_stores * STAFF_PER_STORE + 1):
        rng = reference_rng(seed, f"staff:{staff_id}")
        first, last = rng.choice(FIRST_NAMES).capitalize(), rng.choice(LAST_NAMES).capitalize()
        yield [staff_id, first, last, n_stores + staff_id, f"{first}.{last}@{STAFF_MAIL}",
               (staff_id - 1) // STAFF_PER_STORE + 1, "t", f"{first}.{last}{staff_id}".lower(), loaded]
