"""The generated customers and the address table, and their day-to-day changes (new e-mails, moves).

Addresses are numbered stores first, then staff, then one per customer; a move
adds a new address row (the old one stays) and points the customer at it.

Memory: only what changes or what the rentals draw from is kept, in arrays of
machine numbers (a few bytes per customer); the rest of a customer's row is
drawn again from its own seed (``"42:reference:customer:17"``) when it is written.
"""

from __future__ import annotations

import random
from array import array
from datetime import date, timedelta
from typing import Iterator

from dvd_platform.dev.seed.draws import reference_rng
from dvd_platform.dev.seed.formats import Clock, Row
from dvd_platform.dev.seed.lookups import CITIES
from dvd_platform.dev.seed.names import FIRST_NAMES, LAST_NAMES, place_names

CUSTOMERS = 600  # at scale 1
INACTIVE_CUSTOMERS = 0.025
CUSTOMER_MAIL = "dvdcustomer.org"
MAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example")
DISTRICTS = 150
STREETS = ("Maple", "Oak", "Cedar", "Lake", "Hill", "River", "Sunset", "Park", "Church", "Mill", "Bridge", "Forest",
           "Harbor", "Valley", "Station", "Garden", "Meadow", "Spring", "Pine", "Elm")
STREET_KINDS = ("Street", "Avenue", "Road", "Lane", "Drive", "Boulevard", "Way", "Place", "Parkway", "Manor")
#: The columns of the rows made here, by name: generator.py writes them in the contract's order.
COLUMNS = {
    "customer": ("customer_id", "store_id", "first_name", "last_name", "email", "address_id", "activebool",
                 "create_date", "last_update", "active"),
    "address": ("address_id", "address", "address2", "district", "city_id", "postal_code", "phone", "last_update"),
}


class Customers:
    """Customers, each at a store that has copies to rent (all of them, unless the scale is tiny), and addresses.

    ``first_address``: the first customer's address id (the stores' and staff's come before it).
    Arrays indexed by customer id carry a dummy at index 0.
    """

    def __init__(self, seed: int, scale: float, start: date, stocked: list[int], first_address: int,
                 loaded: str, clock: Clock):
        self.seed = seed
        self.start = start
        self.stocked = stocked
        self.loaded = loaded
        self.clock = clock
        self.count = max(1, round(CUSTOMERS * scale))
        self.first_address = first_address
        self.next_address_id = first_address + self.count
        self.districts = place_names(reference_rng(seed, "district"), DISTRICTS)
        self.store = array("i", [0])
        self.address = array("i", [0])
        self.updated = array("q", [0])  # epoch second of the last change; 0: as loaded
        self.email: dict[int, str] = {}  # changed e-mails only
        self.cum_weights = array("d")
        total = 0.0
        for customer_id in range(1, self.count + 1):
            _, _, store, _, active, weight = self._static(customer_id)
            self.store.append(store)
            self.address.append(first_address + customer_id - 1)
            self.updated.append(0)
            total += weight * (1.0 if active else 0.2)  # some customers rent far more
            self.cum_weights.append(total)
        self.ids = range(1, self.count + 1)

    def _static(self, customer_id: int) -> tuple[str, str, int, str, bool, float]:
        """A customer's fixed attributes, from its own seed: first, last, store, created, active, weight."""
        rng = reference_rng(self.seed, f"customer:{customer_id}")
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        store = rng.choice(self.stocked)
        created = self.start - timedelta(rng.randint(1, 730))
        active = rng.random() >= INACTIVE_CUSTOMERS
        return first, last, store, created.isoformat(), active, rng.gammavariate(2.0, 0.5)

    def row(self, customer_id: int) -> Row:
        """The customer's row as it is now (its latest e-mail and address)."""
        first, last, store, created, active, _ = self._static(customer_id)
        updated = self.updated[customer_id]
        return [customer_id, store, first, last,
                self.email.get(customer_id, f"{first}.{last}@{CUSTOMER_MAIL}"),
                self.address[customer_id], "t", created,
                self.clock.seconds(updated) if updated else self.loaded, int(active)]

    def rows(self) -> Iterator[Row]:
        return map(self.row, self.ids)

    def address_row(self, rng: random.Random, address_id: int, last_update: str) -> Row:
        return [address_id, f"{rng.randint(1, 1999)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}", "",
                rng.choice(self.districts), rng.randint(1, CITIES), str(rng.randint(10_000, 99_999)),
                str(rng.randint(10**11, 10**12 - 1)), last_update]

    def address_rows(self) -> Iterator[Row]:
        """The addresses as loaded: the stores', the staff's and one per customer."""
        rng = reference_rng(self.seed, "address")
        for address_id in range(1, self.first_address + self.count):
            yield self.address_row(rng, address_id, self.loaded)

    def change_email(self, rng: random.Random, customer_id: int, moment: int) -> None:
        first, last, *_ = self._static(customer_id)
        self.email[customer_id] = f"{first}.{last}{rng.randint(1, 999)}@{rng.choice(MAIL_DOMAINS)}".lower()
        self.updated[customer_id] = moment

    def move(self, rng: random.Random, customer_id: int, moment: int) -> Row:
        """Move the customer to a new address at epoch second ``moment``; return the new address row."""
        address = self.address_row(rng, self.next_address_id, self.clock.seconds(moment))
        self.address[customer_id] = self.next_address_id
        self.next_address_id += 1
        self.updated[customer_id] = moment
        return address
