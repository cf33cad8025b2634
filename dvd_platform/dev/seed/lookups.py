"""The generated lookup tables: country, city, language, category and actor.

Fixed whatever the scale (the same bytes at scale 0.5 and 10) and never
changed after the first day's snapshot.
"""

from __future__ import annotations

from typing import Iterator

from dvd_platform.dev.seed.draws import reference_rng
from dvd_platform.dev.seed.formats import Row
from dvd_platform.dev.seed.names import FIRST_NAMES, LAST_NAMES, place_names

COUNTRIES = 109
CITIES = 600
ACTORS = 200
LANGUAGES = ("English", "Italian", "Japanese", "Mandarin", "French", "German")
LANGUAGE_WIDTH = 20  # pagila's language.name is char(20): blank-padded
#: The columns of the rows made here, by name: generator.py writes them in the contract's order.
COLUMNS = {
    "country": ("country_id", "country", "last_update"),
    "city": ("city_id", "city", "country_id", "last_update"),
    "language": ("language_id", "name", "last_update"),
    "category": ("category_id", "name", "last_update"),
    "actor": ("actor_id", "first_name", "last_name", "last_update"),
}
CATEGORIES = ("Action", "Animation", "Children", "Classics", "Comedy", "Documentary", "Drama", "Family",
              "Foreign", "Games", "Horror", "Music", "New", "Sci-Fi", "Sports", "Travel")


def country_rows(seed: int, loaded: str) -> Iterator[Row]:
    for country_id, name in enumerate(place_names(reference_rng(seed, "country"), COUNTRIES), 1):
        yield [country_id, name, loaded]


def city_rows(seed: int, loaded: str) -> Iterator[Row]:
    rng = reference_rng(seed, "city")
    for city_id, name in enumerate(place_names(rng, CITIES), 1):
        yield [city_id, name, rng.randint(1, COUNTRIES), loaded]


def language_rows(loaded: str) -> Iterator[Row]:
    for language_id, name in enumerate(LANGUAGES, 1):
        yield [language_id, name.ljust(LANGUAGE_WIDTH), loaded]


def category_rows(loaded: str) -> Iterator[Row]:
    for category_id, name in enumerate(CATEGORIES, 1):
        yield [category_id, name, loaded]


def actor_rows(seed: int, loaded: str) -> Iterator[Row]:
    rng = reference_rng(seed, "actor")
    for actor_id in range(1, ACTORS + 1):
        yield [actor_id, rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), loaded]
