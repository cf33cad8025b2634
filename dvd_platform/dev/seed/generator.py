"""A deterministic generator of pagila-shaped daily drops, at any scale.

Why: the pagila sample is one fixed snapshot of ~16k rentals whose reference
tables never change. Load tests and demos need more (or fewer) rows, any number
of days, and reference rows that change over time (e-mail changes, moves, new
film prices) so that slowly changing dimensions have something to track. The
generator writes the same drop contract as :class:`FolderSource`: every table,
every day, the full reference snapshot on the first day, changed and new
reference rows on later days.

Determinism: every random draw comes from a ``random.Random`` seeded with a
string such as ``"42:2022-02-01:rentals"`` (string seeds go through SHA-512, so
they are stable across runs and platforms, unlike ``hash()``). The simulation
always runs from the first day, in the same order, drawing the same numbers
whichever days are asked for; it only writes the files of the wanted days. So
the bytes of a day depend on (scale, seed, start, day) alone.

Memory: of the reference tables only what changes or what the rentals draw
from is kept, in arrays of machine numbers (a few bytes per customer, film and
copy); a customer's or film's row is drawn again from its own seed
(``"42:reference:film:17"``) whenever it is written. Events are made one day
at a time. A payment dated on a later day than
its rental (paid at return) is spooled to a per-day temp file, and only when
that day is being written; for the other days a per-day count keeps payment
ids right.
"""

from __future__ import annotations

import math
import random
from array import array
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from itertools import accumulate, product
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from dvd_platform.contract.drops import SeedError
from dvd_platform.contract.tables import TABLES
from dvd_platform.dev.seed import csvio
from dvd_platform.dev.seed.sources import open_drop

DEFAULT_START = date(2022, 2, 1)
DEFAULT_DAYS = 120

EPOCH = date(1970, 1, 1)
DAY_SECONDS = 86_400
MICROS = 1_000_000
DAY_MICROS = DAY_SECONDS * MICROS

# Sizes at scale 1, pagila's: ~16k rentals over the default 120 days.
RENTALS_PER_DAY = 16_000 / DEFAULT_DAYS
CUSTOMERS = 600
FILMS = 1_000
STORES = 2
STAFF_PER_STORE = 2
# Fixed lookup tables, whatever the scale.
COUNTRIES = 109
CITIES = 600
ACTORS = 200

# Daily change rates of the reference data (share of the table per day, before day noise).
EMAIL_CHANGES = 0.003
MOVES = 0.001
RATE_CHANGES = 0.002
DAY_NOISE = 0.15  # sigma of the log-normal day factor of rentals
CHANGE_NOISE = 0.3  # and of reference changes

# Rentals and payments.
WEEKDAY_FACTORS = (0.85, 0.85, 0.9, 0.95, 1.15, 1.25, 1.05)  # Monday..Sunday, mean 1
HOUR_WEIGHTS = (3, 2, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 9, 10, 11, 11, 10, 8, 6, 4)  # UTC hour of day
HOUR_CUM_WEIGHTS = tuple(accumulate(HOUR_WEIGHTS))
INVENTORY_TRIES = 3  # picks of a copy that is in the store before renting one that is out anyway
NEVER_RETURNED = 0.01
FREE_PAYMENTS = 0.0015
PAID_AT_RENTAL = 0.6  # of rentals returned in time
LATE_TAIL = 0.2  # share of returned rentals kept well past their due day
LATE_TAIL_DAYS = 3.0  # mean extra days of those
LATE_FEE_DAYS = 7  # at most 7 x 1.00 late fee: 4.99 + 7.00 = 11.99, pagila's top amount
PAYMENT_DELAY_MICROS = 600 * MICROS  # a payment follows its rental or return within 10 minutes
OUT_FOREVER = 1 << 62  # out_until of a copy never returned

RATES_CENTS = (99, 299, 499)
COPIES = (0, 2, 3, 4, 5, 6, 7, 8)  # copies of a film in the inventory: ~4.6 on average
COPY_WEIGHTS = (4, 11.5, 16.3, 17.3, 16.3, 14.4, 11.5, 8.7)
CATEGORY_COUNTS = (1, 2, 3)
CATEGORY_COUNT_WEIGHTS = (36, 561, 403)  # pagila's films with 1, 2 and 3 categories
INACTIVE_CUSTOMERS = 0.025

LANGUAGES = ("English", "Italian", "Japanese", "Mandarin", "French", "German")
LANGUAGE_WEIGHTS = (58, 9, 8, 8, 9, 8)
LANGUAGE_WIDTH = 20  # pagila's language.name is char(20): blank-padded
CATEGORIES = ("Action", "Animation", "Children", "Classics", "Comedy", "Documentary", "Drama", "Family",
              "Foreign", "Games", "Horror", "Music", "New", "Sci-Fi", "Sports", "Travel")
RATINGS = ("G", "PG", "PG-13", "R", "NC-17")
FEATURES = ("Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes")

FIRST_NAMES = ("ALICE", "ANNA", "BEN", "BRUNO", "CARLA", "CHLOE", "DANIEL", "DAVID", "ELENA", "EMMA", "FELIX",
               "FRANK", "GRACE", "HANNAH", "HENRY", "IRENE", "IVAN", "JAMES", "JULIA", "KAREN", "KEVIN", "LAURA",
               "LUCAS", "MARIA", "MARTIN", "NINA", "NOAH", "OLIVIA", "OSCAR", "PETER", "QUINN", "ROSA", "SAMUEL",
               "TERESA", "ULRICH", "VERA", "WALTER", "XENIA", "YUSUF", "ZOE")
LAST_NAMES = ("ADAMS", "ALLEN", "ANDERSON", "BAKER", "CAMPBELL", "CARTER", "CLARK", "COLLINS", "DAVIS", "EDWARDS",
              "EVANS", "GARCIA", "GREEN", "HARRIS", "HILL", "JACKSON", "JOHNSON", "KING", "LEWIS", "LOPEZ",
              "MARTIN", "MILLER", "MITCHELL", "MOORE", "NELSON", "PARKER", "PEREZ", "PHILLIPS", "ROBERTS",
              "ROBINSON", "SCOTT", "SMITH", "THOMAS", "TORRES", "TURNER", "WALKER", "WHITE", "WILSON", "WRIGHT",
              "YOUNG")
TITLE_FIRST = ("AMBER", "ARCTIC", "BLUE", "BRAVE", "BROKEN", "CRIMSON", "DARK", "DESERT", "ELECTRIC", "EMPTY",
               "FINAL", "FROZEN", "GOLDEN", "GRAND", "HIDDEN", "HOLLOW", "IRON", "LAST", "LOST", "LUCKY",
               "MIDNIGHT", "MODERN", "NORTHERN", "OPEN", "PAPER", "PERFECT", "QUIET", "RAPID", "RED", "SECRET",
               "SILENT", "SILVER", "SOLAR", "SPLIT", "STOLEN", "STRANGE", "SUDDEN", "SWEET", "TIDAL", "TWISTED",
               "URBAN", "VELVET", "WANDERING", "WICKED", "WILD", "WINTER", "WOODEN", "YELLOW", "YOUNG", "ZERO")
TITLE_SECOND = ("ALIBI", "ANGEL", "BANDIT", "BRIDGE", "CANYON", "CARNIVAL", "CASTLE", "CIRCUS", "CITY", "COAST",
                "CROWN", "DANCER", "DETECTIVE", "DRAGON", "DREAM", "EMPIRE", "FACTORY", "FORTUNE", "GARDEN", "GHOST",
                "HARBOR", "HEART", "HIGHWAY", "HUNTER", "ISLAND", "JUNGLE", "KINGDOM", "LEGEND", "MACHINE", "MIRROR",
                "MOUNTAIN", "NIGHT", "ORCHARD", "PARADISE", "PIRATE", "PRINCE", "RIVER", "ROBOT", "SHADOW", "SIGNAL",
                "SPIRIT", "STORM", "SUMMER", "TEMPLE", "TRAIN", "VALLEY", "VOYAGE", "WARRIOR", "WHISPER", "WINDOW")
STORY_MOODS = ("Gripping", "Quiet", "Epic", "Tender", "Restless", "Witty", "Dark", "Sprawling", "Playful", "Haunting")
STORY_FORMS = ("Drama", "Story", "Saga", "Documentary", "Tale", "Yarn", "Panorama", "Reflection", "Character Study",
               "Display")
STORY_PEOPLE = ("Astronaut", "Baker", "Boat", "Cat", "Chef", "Composer", "Detective", "Dog", "Explorer",
                "Forensic Psychologist", "Girl", "Hunter", "Librarian", "Mechanic", "Monkey", "Pilot", "Robot",
                "Sailor", "Student", "Teacher")
STORY_VERBS = ("Build", "Chase", "Confront", "Defeat", "Find", "Meet", "Outrace", "Rescue", "Sink", "Succumb to")
STORY_PLACES = ("a Lighthouse", "a Mine Shaft", "a Shark Tank", "an Abandoned Mill", "Ancient Rome", "a Jet Boat",
                "the Desert", "a Train Station", "the Arctic", "a U-Boat")
STREETS = ("Maple", "Oak", "Cedar", "Lake", "Hill", "River", "Sunset", "Park", "Church", "Mill", "Bridge", "Forest",
           "Harbor", "Valley", "Station", "Garden", "Meadow", "Spring", "Pine", "Elm")
STREET_KINDS = ("Street", "Avenue", "Road", "Lane", "Drive", "Boulevard", "Way", "Place", "Parkway", "Manor")
SYLLABLES = ("ba", "ca", "da", "el", "fa", "go", "ha", "in", "ka", "la", "ma", "na", "or", "pa", "ri", "sa", "ta",
             "ul", "va", "za", "bo", "ke", "lu", "mi", "ne", "ro", "si", "te", "vo", "ya")
DISTRICTS = 150
CUSTOMER_MAIL = "dvdcustomer.org"
STAFF_MAIL = "dvdstaff.com"
MAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example")

_FILM = TABLES["film"].columns
FILM_RATE = _FILM.index("rental_rate")
FILM_LAST_UPDATE = _FILM.index("last_update")

Row = list[object]


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: day counts get natural noise, and small means still yield whole events now and then."""
    if mean < 30:
        limit, count, product_ = math.exp(-mean), 0, rng.random()
        while product_ > limit:
            count += 1
            product_ *= rng.random()
        return count
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def _day_factor(rng: random.Random, sigma: float) -> float:
    """Log-normal noise with mean 1, so the expected sizes stay exactly linear in the scale."""
    return rng.lognormvariate(-sigma * sigma / 2, sigma)


def _epoch_day(day: date) -> int:
    return (day - EPOCH).days


def _cents_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


_HOURS_MINUTES = tuple(f"{hour:02d}:{minute:02d}:" for hour in range(24) for minute in range(60))
_SECONDS = tuple(f"{second:02d}" for second in range(60))


class _DayText(dict[int, str]):
    """``YYYY-MM-DD `` of an epoch day number, computed once per day met."""

    def __missing__(self, epoch_day: int) -> str:
        text = f"{(EPOCH + timedelta(epoch_day)).isoformat()} "
        self[epoch_day] = text
        return text


class _Clock:
    """Formats UTC epoch seconds/microseconds exactly like :func:`csvio.format_pg_timestamp`.

    Event rows carry ~3 timestamps each; building a datetime and calling
    strftime for every one would take most of the generator's time, while
    these table look-ups are ~9x faster (the tests check both give the same text).
    """

    def __init__(self) -> None:
        self._days = _DayText()

    def seconds(self, value: int) -> str:
        day, second = divmod(value, DAY_SECONDS)
        minute, second = divmod(second, 60)
        return f"{self._days[day]}{_HOURS_MINUTES[minute]}{_SECONDS[second]}+00"

    def micros(self, value: int) -> str:
        seconds, micros = divmod(value, MICROS)
        if not micros:
            return self.seconds(seconds)
        day, second = divmod(seconds, DAY_SECONDS)
        minute, second = divmod(second, 60)
        fraction = f"{micros:06d}".rstrip("0")
        return f"{self._days[day]}{_HOURS_MINUTES[minute]}{_SECONDS[second]}.{fraction}+00"


def _place_names(rng: random.Random, count: int) -> list[str]:
    """Distinct made-up place names of 2-3 syllables (27,900 possible, far more than asked for)."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _array_literal(items: Sequence[str]) -> str:
    """A Postgres text array literal, quoting elements with blanks the way pg_dump does."""
    return "{" + ",".join(f'"{item}"' if " " in item else item for item in items) + "}"


@dataclass
class _DayChanges:
    """Reference rows changed on one day, and the film rates that day's price changes replaced.

    ``rates_replaced``: film -> [(epoch second of a change, cents before it)] in time order,
    so a rental made before a change pays the rate then in force.
    """

    rows: dict[str, list[Row]] = field(default_factory=dict)
    rates_replaced: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


class _Reference:
    """The reference tables and their state as of the day being simulated.

    Rebuilt from the seed at each run, so that replaying the change draws from
    the first day gives every day the same state whatever days are written.
    Lists indexed by id carry a dummy at index 0.
    """

    def __init__(self, scale: float, seed: int, start: date):
        self.scale = scale
        self.seed = seed
        self.clock = _Clock()
        snapshot_time = datetime.combine(start - timedelta(1), time(9, 30), tzinfo=timezone.utc)
        self.loaded = csvio.format_pg_timestamp(snapshot_time)  # before the first rental: the snapshot's load
        self.start = start
        self.n_stores = max(STORES, round(STORES * scale))
        self.n_staff = self.n_stores * STAFF_PER_STORE
        self.n_customers = max(1, round(CUSTOMERS * scale))
        self.n_films = max(1, round(FILMS * scale))
        self.first_customer_address = self.n_stores + self.n_staff + 1
        self.next_address_id = self.first_customer_address + self.n_customers
        self.districts = _place_names(self._rng("district"), DISTRICTS)
        self._build_films()
        self._build_inventory()
        self._build_customers()

    def _rng(self, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}:reference:{purpose}")

    def _build_customers(self) -> None:
        """Customers, each at a store that has copies to rent (all of them, unless the scale is tiny).

        Only what changes or what the rentals draw from is kept, in compact arrays; the
        rest of a customer's row is drawn again from its own seed when it is written.
        """
        self.stocked = [store for store in range(1, self.n_stores + 1) if self.store_items[store]]
        if not self.stocked:
            raise SeedError(f"scale {self.scale:g} is too small: no film copy is in stock")
        self.customer_store = array("i", [0])
        self.customer_address = array("i", [0])
        self.customer_updated = array("q", [0])  # epoch second of the last change; 0: as loaded
        self.customer_email: dict[int, str] = {}  # changed e-mails only
        self.customer_cum_weights = array("d")
        total = 0.0
        for customer_id in range(1, self.n_customers + 1):
            _, _, store, _, active, weight = self._customer_static(customer_id)
            self.customer_store.append(store)
            self.customer_address.append(self.first_customer_address + customer_id - 1)
            self.customer_updated.append(0)
            total += weight * (1.0 if active else 0.2)  # some customers rent far more
            self.customer_cum_weights.append(total)
        self.customer_ids = range(1, self.n_customers + 1)

    def _customer_static(self, customer_id: int) -> tuple[str, str, int, str, bool, float]:
        """A customer's fixed attributes, from its own seed: first, last, store, created, active, weight."""
        rng = self._rng(f"customer:{customer_id}")
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        store = rng.choice(self.stocked)
        created = self.start - timedelta(rng.randint(1, 730))
        active = rng.random() >= INACTIVE_CUSTOMERS
        return first, last, store, created.isoformat(), active, rng.gammavariate(2.0, 0.5)

    def customer_row(self, customer_id: int) -> Row:
        first, last, store, created, active, _ = self._customer_static(customer_id)
        updated = self.customer_updated[customer_id]
        return [customer_id, store, first, last,
                self.customer_email.get(customer_id, f"{first}.{last}@{CUSTOMER_MAIL}"),
                self.customer_address[customer_id], "t", created,
                self.clock.seconds(updated) if updated else self.loaded, int(active)]

    def _build_films(self) -> None:
        rng = self._rng("film")
        self.titles = [f"{a} {b}" for a, b in product(TITLE_FIRST, TITLE_SECOND)]
        rng.shuffle(self.titles)
        self.film_rate = array("i", [0])
        self.film_duration = array("i", [0])
        self.film_updated = array("q", [0])  # epoch second of the last price change; 0: as loaded
        for film_id in range(1, self.n_films + 1):
            _, duration, rate = self._film_static(film_id)
            self.film_rate.append(rate)
            self.film_duration.append(duration)
            self.film_updated.append(0)

    def _film_static(self, film_id: int) -> tuple[Row, int, int]:
        """A film's row as loaded (from its own seed), its rental duration and its first rate in cents."""
        rng = self._rng(f"film:{film_id}")
        rounds, index = divmod(film_id - 1, len(self.titles))
        title = self.titles[index] + (f" {rounds + 1}" if rounds else "")  # unique beyond the word pairs
        people = rng.sample(STORY_PEOPLE, 3)
        description = (f"A {rng.choice(STORY_MOODS)} {rng.choice(STORY_FORMS)} of a {people[0]} And a "
                       f"{people[1]} who must {rng.choice(STORY_VERBS)} a {people[2]} in "
                       f"{rng.choice(STORY_PLACES)}")
        duration = rng.randint(3, 7)
        rate = rng.choice(RATES_CENTS)
        features: list[str] = []
        while not features:
            features = [feature for feature in FEATURES if rng.random() < 0.5]
        row = [film_id, title, description, rng.randint(2006, 2024),
               rng.choices(range(1, len(LANGUAGES) + 1), LANGUAGE_WEIGHTS)[0], "", duration,
               _cents_text(rate), rng.randint(46, 185), _cents_text(rng.randint(9, 29) * 100 + 99),
               rng.choice(RATINGS), self.loaded, _array_literal(features)]
        return row, duration, rate

    def film_row(self, film_id: int) -> Row:
        row, _, _ = self._film_static(film_id)
        row[FILM_RATE] = _cents_text(self.film_rate[film_id])
        if self.film_updated[film_id]:
            row[FILM_LAST_UPDATE] = self.clock.seconds(self.film_updated[film_id])
        return row

    def _build_inventory(self) -> None:
        rng = self._rng("inventory")
        self.item_film = array("i", [0])
        self.item_store = array("i", [0])
        self.store_items = [array("i") for _ in range(self.n_stores + 1)]
        for film_id in range(1, self.n_films + 1):
            copies = rng.choices(COPIES, COPY_WEIGHTS)[0]
            for store in sorted(rng.randint(1, self.n_stores) for _ in range(copies)):
                self.store_items[store].append(len(self.item_film))
                self.item_film.append(film_id)
                self.item_store.append(store)
        self.n_items = len(self.item_film) - 1

    def address_row(self, rng: random.Random, address_id: int, last_update: str) -> Row:
        return [address_id, f"{rng.randint(1, 1999)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}", "",
                rng.choice(self.districts), rng.randint(1, CITIES), str(rng.randint(10_000, 99_999)),
                str(rng.randint(10**11, 10**12 - 1)), last_update]

    def staff_name(self, staff_id: int) -> tuple[str, str]:
        rng = self._rng(f"staff:{staff_id}")
        return rng.choice(FIRST_NAMES).capitalize(), rng.choice(LAST_NAMES).capitalize()

    def snapshot(self, table: str) -> Iterable[Row]:
        """The table's rows as of the first day, streamed where nothing else needs them."""
        return getattr(self, f"_snapshot_{table}")()

    def _snapshot_country(self) -> Iterator[Row]:
        for country_id, name in enumerate(_place_names(self._rng("country"), COUNTRIES), 1):
            yield [country_id, name, self.loaded]

    def _snapshot_city(self) -> Iterator[Row]:
        rng = self._rng("city")
        for city_id, name in enumerate(_place_names(rng, CITIES), 1):
            yield [city_id, name, rng.randint(1, COUNTRIES), self.loaded]

    def _snapshot_language(self) -> Iterator[Row]:
        for language_id, name in enumerate(LANGUAGES, 1):
            yield [language_id, name.ljust(LANGUAGE_WIDTH), self.loaded]

    def _snapshot_category(self) -> Iterator[Row]:
        for category_id, name in enumerate(CATEGORIES, 1):
            yield [category_id, name, self.loaded]

    def _snapshot_actor(self) -> Iterator[Row]:
        rng = self._rng("actor")
        for actor_id in range(1, ACTORS + 1):
            yield [actor_id, rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), self.loaded]

    def _snapshot_address(self) -> Iterator[Row]:
        rng = self._rng("address")
        for address_id in range(1, self.first_customer_address + self.n_customers):
            yield self.address_row(rng, address_id, self.loaded)

    def _snapshot_store(self) -> Iterator[Row]:
        for store in range(1, self.n_stores + 1):
            yield [store, (store - 1) * STAFF_PER_STORE + 1, store, self.loaded]

    def _snapshot_staff(self) -> Iterator[Row]:
        for staff_id in range(1, self.n_staff + 1):
            first, last = self.staff_name(staff_id)
            yield [staff_id, first, last, self.n_stores + staff_id, f"{first}.{last}@{STAFF_MAIL}",
                   (staff_id - 1) // STAFF_PER_STORE + 1, "t", f"{first}.{last}{staff_id}".lower(), self.loaded]

    def _snapshot_customer(self) -> Iterator[Row]:
        return map(self.customer_row, self.customer_ids)

    def _snapshot_film(self) -> Iterator[Row]:
        return map(self.film_row, range(1, self.n_films + 1))

    def _snapshot_film_category(self) -> Iterator[Row]:
        rng = self._rng("film_category")
        for film_id in range(1, self.n_films + 1):
            count = rng.choices(CATEGORY_COUNTS, CATEGORY_COUNT_WEIGHTS)[0]
            for category_id in sorted(rng.sample(range(1, len(CATEGORIES) + 1), count)):
                yield [film_id, category_id, self.loaded]

    def _snapshot_film_actor(self) -> Iterator[Row]:
        rng = self._rng("film_actor")
        for film_id in range(1, self.n_films + 1):
            count = min(15, max(1, round(rng.gauss(5.5, 2.6))))  # pagila: 1..15, 5.5 on average
            for actor_id in sorted(rng.sample(range(1, ACTORS + 1), count)):
                yield [actor_id, film_id, self.loaded]

    def _snapshot_inventory(self) -> Iterator[Row]:
        for item in range(1, self.n_items + 1):
            yield [item, self.item_film[item], self.item_store[item], self.loaded]

    def change(self, day: date) -> _DayChanges:
        """Apply the day's e-mail changes, moves and film price changes; return the rows they touched.

        The draws are made first and applied in time order, so a customer's row
        is the complete latest version (a move after an e-mail change keeps the
        new e-mail) and its last_update is the time of its last change.
        """
        rng = random.Random(f"{self.seed}:{day}:changes")
        noise = _day_factor(rng, CHANGE_NOISE)
        day_start = _epoch_day(day) * DAY_SECONDS
        events = sorted(
            (rng.randrange(DAY_SECONDS), kind, rng.randint(1, size))
            for kind, size, share in (("email", self.n_customers, EMAIL_CHANGES), ("move", self.n_customers, MOVES),
                                      ("rate", self.n_films, RATE_CHANGES))
            for _ in range(_poisson(rng, share * size * noise))
        )
        changes = _DayChanges()
        customers: set[int] = set()
        films: set[int] = set()
        addresses: list[Row] = []
        for second, kind, target in events:
            moment = day_start + second
            if kind == "rate":
                changes.rates_replaced.setdefault(target, []).append((moment, self.film_rate[target]))
                self.film_rate[target] = rng.choice([r for r in RATES_CENTS if r != self.film_rate[target]])
                self.film_updated[target] = moment
                films.add(target)
                continue
            if kind == "email":
                first, last, *_ = self._customer_static(target)
                self.customer_email[target] = f"{first}.{last}{rng.randint(1, 999)}@{rng.choice(MAIL_DOMAINS)}".lower()
            else:
                addresses.append(self.address_row(rng, self.next_address_id, self.clock.seconds(moment)))
                self.customer_address[target] = self.next_address_id
                self.next_address_id += 1
            self.customer_updated[target] = moment
            customers.add(target)
        # Each changed row as it is at the end of the day (its latest version).
        changes.rows["customer"] = [self.customer_row(key) for key in sorted(customers)]
        changes.rows["film"] = [self.film_row(key) for key in sorted(films)]
        changes.rows["address"] = addresses
        return changes


class _Simulation:
    """One run over the days from the first one to the last wanted one."""

    def __init__(self, source: GeneratedSource, wanted: set[date], out_dir: Path, spool_dir: Path):
        self.source = source
        self.wanted = wanted
        self.wanted_epoch_days = {_epoch_day(day) for day in wanted}
        self.out_dir = out_dir
        self.spool_dir = spool_dir
        self.ref = _Reference(source.scale, source.seed, source.start)
        self.clock = self.ref.clock
        self.out_until = array("q", bytes(8 * (self.ref.n_items + 1)))  # per copy: second it is back in the store
        self.next_rental_id = 1
        self.next_payment_id = 1
        self.payment_counts: dict[int, int] = {}  # epoch day -> payments dated that day (ids are given per day)
        self.spools: dict[int, IO[str]] = {}  # epoch day -> payments dated that day, made on earlier days

    def run(self, last: date) -> None:
        day = self.source.start
        try:
            while day <= last:
                self._day(day)
                day += timedelta(1)
        finally:
            for spool in self.spools.values():
                spool.close()

    def _day(self, day: date) -> None:
        keep = day in self.wanted
        changes = _DayChanges() if day == self.source.start else self.ref.change(day)
        epoch_day = _epoch_day(day)
        rentals, payments = self._rentals(day, epoch_day, changes.rates_replaced, keep)
        count = self.payment_counts.pop(epoch_day, 0)
        if keep:
            payments.extend(self._unspool(epoch_day))
            payments.sort()  # by time, then rental: payment ids increase with time
            payment_rows = (
                (payment_id, customer, staff, rental, _cents_text(cents), self.clock.micros(paid))
                for payment_id, (paid, rental, customer, staff, cents) in enumerate(payments, self.next_payment_id)
            )
            self._write(day, rentals, payment_rows, changes)
        self.next_payment_id += count

    def _rentals(self, day: date, epoch_day: int, rates_replaced: dict[int, list[tuple[int, int]]],
                 keep: bool) -> tuple[list[tuple], list[tuple]]:
        """Make the day's rentals and their payments (the hot loop: plain locals and tuples).

        Every draw is made whether the day is kept or not, so that the random
        streams are the same in every run. Returns the rental rows and the
        payments dated on this same day, when the day is kept.
        """
        ref = self.ref
        rng = random.Random(f"{self.source.seed}:{day}:rentals")
        rand = rng.random
        mean = RENTALS_PER_DAY * self.source.scale * WEEKDAY_FACTORS[day.weekday()] * _day_factor(rng, DAY_NOISE)
        count = _poisson(rng, mean)
        day_start = epoch_day * DAY_SECONDS
        hours = rng.choices(range(24), cum_weights=HOUR_CUM_WEIGHTS, k=count)
        times = sorted(day_start + 3600 * hour + int(rand() * 3600) for hour in hours)
        customers = rng.choices(ref.customer_ids, cum_weights=ref.customer_cum_weights, k=count)
        customer_store, store_items, item_film = ref.customer_store, ref.store_items, ref.item_film
        film_rate, film_duration, out_until = ref.film_rate, ref.film_duration, self.out_until
        counts, wanted, seconds_text = self.payment_counts, self.wanted_epoch_days, self.clock.seconds
        rentals: list[tuple] = []
        payments: list[tuple] = []
        rental_id = self.next_rental_id
        for rented, customer in zip(times, customers):
            store = customer_store[customer]
            items = store_items[store]
            for _ in range(INVENTORY_TRIES):
                item = items[int(rand() * len(items))]
                if out_until[item] <= rented:
                    break
            film = item_film[item]
            rate = film_rate[film]
            if film in rates_replaced:
                for changed, old_rate in rates_replaced[film]:
                    if rented < changed:
                        rate = old_rate
                        break
            first_staff = (store - 1) * STAFF_PER_STORE + 1
            staff = first_staff + int(rand() * STAFF_PER_STORE)
            if rand() < NEVER_RETURNED:
                returned = None
                out_until[item] = OUT_FOREVER
                cents = rate
                paid = rented
            else:
                duration = film_duration[film]
                days_out = 0.3 + rand() * (duration + 3)
                if rand() < LATE_TAIL:
                    days_out += rng.expovariate(1 / LATE_TAIL_DAYS)
                returned = rented + int(days_out * DAY_SECONDS)
                out_until[item] = returned
                late_days = min(LATE_FEE_DAYS, max(0, math.ceil(days_out) - duration))
                cents = rate + 100 * late_days
                # A late fee is only known, and paid, at the return.
                paid = rented if not late_days and rand() < PAID_AT_RENTAL else returned
            if rand() < FREE_PAYMENTS:
                cents = 0
            paid_staff = staff if paid == rented else first_staff + int(rand() * STAFF_PER_STORE)
            paid_micros = paid * MICROS + int(rand() * PAYMENT_DELAY_MICROS)
            pay_day = paid_micros // DAY_MICROS
            counts[pay_day] = counts.get(pay_day, 0) + 1
            if keep:
                rented_text = seconds_text(rented)
                rentals.append((rental_id, rented_text, item, customer,
                                "" if returned is None else seconds_text(returned), staff, rented_text))
            if pay_day in wanted:
                payment = (paid_micros, rental_id, customer, paid_staff, cents)
                if pay_day == epoch_day:
                    payments.append(payment)
                else:
                    self._spool(pay_day).write(",".join(map(str, payment)) + "\n")
            rental_id += 1
        self.next_rental_id = rental_id
        return rentals, payments

    def _spool(self, epoch_day: int) -> IO[str]:
        spool = self.spools.get(epoch_day)
        if spool is None:
            spool = self.spools[epoch_day] = open(self.spool_dir / f"{epoch_day}.csv", "w", encoding="ascii")
        return spool

    def _unspool(self, epoch_day: int) -> list[tuple]:
        spool = self.spools.pop(epoch_day, None)
        if spool is None:
            return []
        spool.close()
        path = Path(spool.name)
        with open(path, encoding="ascii") as stream:
            payments = [tuple(int(value) for value in line.split(",")) for line in stream]
        path.unlink()
        return payments

    def _write(self, day: date, rentals: list[tuple], payments: Iterable[tuple], changes: _DayChanges) -> None:
        for table, spec in TABLES.items():
            if table == "rental":
                rows: Iterable[Sequence[object]] = rentals
            elif table == "payment":
                rows = payments
            elif day == self.source.start:
                rows = self.ref.snapshot(table)
            else:
                rows = changes.rows.get(table, [])
            with open_drop(self.out_dir, table, day) as out:
                writer = csvio.writer(out)
                writer.writerow(spec.columns)
                writer.writerows(rows)


class GeneratedSource:
    """Generated pagila-shaped drops: ``scale`` 1 is about pagila's size, sizes are linear in it.

    Implements :class:`dvd_platform.contract.drops.DropSource`.
    """

    def __init__(self, scale: float = 1.0, seed: int = 42, start: date = DEFAULT_START, days: int = DEFAULT_DAYS):
        if not (scale > 0 and math.isfinite(scale)):
            raise SeedError(f"scale must be a positive number, not {scale}")
        if days < 1:
            raise SeedError(f"days must be at least 1, not {days}")
        self.scale = scale
        self.seed = seed
        self.start = start
        self.days = days
        extra = "" if (start, days) == (DEFAULT_START, DEFAULT_DAYS) else f",start={start},days={days}"
        self.description = f"generated:scale={scale:g},seed={seed}{extra}"

    def day_range(self) -> tuple[date, date]:
        return self.start, self.start + timedelta(self.days - 1)

    def write_days(self, days: Sequence[date], out_dir: Path) -> None:
        """Write every table of ``days``; days outside the range get header-only files.

        The simulation runs from the first day up to the last wanted one (state
        such as ids, copies out and payments due needs every earlier day) and
        writes only the wanted days.
        """
        first, last = self.day_range()
        wanted = set(days)
        inside = {day for day in wanted if first <= day <= last}
        for day in sorted(wanted - inside):
            for table, spec in TABLES.items():
                with open_drop(out_dir, table, day) as out:
                    csvio.write_rows(out, spec.columns, [])
        if inside:
            with tempfile.TemporaryDirectory(prefix="dvd-generator-") as spool_dir:
                _Simulation(self, inside, Path(out_dir), Path(spool_dir)).run(max(inside))
