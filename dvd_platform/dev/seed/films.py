"""The generated films (with their categories and actors) and the inventory of copies, and price changes.

Memory: only a film's current rate, rental duration and last change are kept,
in arrays of machine numbers; a film's row is drawn again from its own seed
(``"42:reference:film:17"``) whenever it is written.
"""

from __future__ import annotations

import random
from array import array
from itertools import product
from typing import Iterator

from dvd_platform.dev.seed.draws import reference_rng
from dvd_platform.dev.seed.formats import Clock, Row, array_literal, cents_text
from dvd_platform.dev.seed.lookups import ACTORS, CATEGORIES, LANGUAGES

FILMS = 1_000  # at scale 1
RATES_CENTS = (99, 299, 499)
LANGUAGE_WEIGHTS = (58, 9, 8, 8, 9, 8)  # of lookups.LANGUAGES
CATEGORY_COUNTS = (1, 2, 3)
CATEGORY_COUNT_WEIGHTS = (36, 561, 403)  # pagila's films with 1, 2 and 3 categories
COPIES = (0, 2, 3, 4, 5, 6, 7, 8)  # copies of a film in the inventory: ~4.6 on average
COPY_WEIGHTS = (4, 11.5, 16.3, 17.3, 16.3, 14.4, 11.5, 8.7)
RATINGS = ("G", "PG", "PG-13", "R", "NC-17")
FEATURES = ("Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes")
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

#: The columns of the rows made here, by name: generator.py writes them in the contract's order.
COLUMNS = {
    "film": ("film_id", "title", "description", "release_year", "language_id", "original_language_id",
             "rental_duration", "rental_rate", "length", "replacement_cost", "rating", "last_update",
             "special_features"),
    "film_category": ("film_id", "category_id", "last_update"),
    "film_actor": ("actor_id", "film_id", "last_update"),
    "inventory": ("inventory_id", "film_id", "store_id", "last_update"),
}
FILM_RATE = COLUMNS["film"].index("rental_rate")
FILM_LAST_UPDATE = COLUMNS["film"].index("last_update")


class Films:
    """The films, their current rates and their categories and actors. Arrays by film id have a dummy at 0."""

    def __init__(self, seed: int, scale: float, loaded: str, clock: Clock):
        self.seed = seed
        self.loaded = loaded
        self.clock = clock
        self.count = max(1, round(FILMS * scale))
        rng = reference_rng(seed, "film")
        self.titles = [f"{a} {b}" for a, b in product(TITLE_FIRST, TITLE_SECOND)]
        rng.shuffle(self.titles)
        self.rate = array("i", [0])
        self.duration = array("i", [0])
        self.updated = array("q", [0])  # epoch second of the last price change; 0: as loaded
        for film_id in range(1, self.count + 1):
            _, duration, rate = self._static(film_id)
            self.rate.append(rate)
            self.duration.append(duration)
            self.updated.append(0)

    def _static(self, film_id: int) -> tuple[Row, int, int]:
        """A film's row as loaded (from its own seed), its rental duration and its first rate in cents."""
        rng = reference_rng(self.seed, f"film:{film_id}")
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
               cents_text(rate), rng.randint(46, 185), cents_text(rng.randint(9, 29) * 100 + 99),
               rng.choice(RATINGS), self.loaded, array_literal(features)]
        return row, duration, rate

    def row(self, film_id: int) -> Row:
        """The film's row as it is now (its latest rate)."""
        row, _, _ = self._static(film_id)
        row[FILM_RATE] = cents_text(self.rate[film_id])
        if self.updated[film_id]:
            row[FILM_LAST_UPDATE] = self.clock.seconds(self.updated[film_id])
        return row

    def rows(self) -> Iterator[Row]:
        return map(self.row, range(1, self.count + 1))

    def category_rows(self) -> Iterator[Row]:
        rng = reference_rng(self.seed, "film_category")
        for film_id in range(1, self.count + 1):
            count = rng.choices(CATEGORY_COUNTS, CATEGORY_COUNT_WEIGHTS)[0]
            for category_id in sorted(rng.sample(range(1, len(CATEGORIES) + 1), count)):
                yield [film_id, category_id, self.loaded]

    def actor_rows(self) -> Iterator[Row]:
        rng = reference_rng(self.seed, "film_actor")
        for film_id in range(1, self.count + 1):
            count = min(15, max(1, round(rng.gauss(5.5, 2.6))))  # pagila: 1..15, 5.5 on average
            for actor_id in sorted(rng.sample(range(1, ACTORS + 1), count)):
                yield [actor_id, film_id, self.loaded]

    def change_rate(self, rng: random.Random, film_id: int, moment: int) -> int:
        """Give the film another rate from epoch second ``moment``; return the rate (cents) it replaced."""
        old = self.rate[film_id]
        self.rate[film_id] = rng.choice([r for r in RATES_CENTS if r != old])
        self.updated[film_id] = moment
        return old


class Inventory:
    """The copies: each film has 0-8, spread over the stores. Arrays by item id have a dummy at 0."""

    def __init__(self, seed: int, n_films: int, n_stores: int, loaded: str):
        self.loaded = loaded
        rng = reference_rng(seed, "inventory")
        self.item_film = array("i", [0])
        self.item_store = array("i", [0])
        self.store_items = [array("i") for _ in range(n_stores + 1)]
        for film_id in range(1, n_films + 1):
            copies = rng.choices(COPIES, COPY_WEIGHTS)[0]
            for store in sorted(rng.randint(1, n_stores) for _ in range(copies)):
                self.store_items[store].append(len(self.item_film))
                self.item_film.append(film_id)
                self.item_store.append(store)
        self.count = len(self.item_film) - 1

    def stocked_stores(self) -> list[int]:
        return [store for store in range(1, len(self.store_items)) if self.store_items[store]]

    def rows(self) -> Iterator[Row]:
        for item in range(1, self.count + 1):
            yield [item, self.item_film[item], self.item_store[item], self.loaded]
