"""Made-up names of people (customers, staff, actors) and places (countries, cities, districts)."""

from __future__ import annotations

import random

FIRST_NAMES = ("ALICE", "ANNA", "BEN", "BRUNO", "CARLA", "CHLOE", "DANIEL", "DAVID", "ELENA", "EMMA", "FELIX",
               "FRANK", "GRACE", "HANNAH", "HENRY", "IRENE", "IVAN", "JAMES", "JULIA", "KAREN", "KEVIN", "LAURA",
               "LUCAS", "MARIA", "MARTIN", "NINA", "NOAH", "OLIVIA", "OSCAR", "PETER", "QUINN", "ROSA", "SAMUEL",
               "TERESA", "ULRICH", "VERA", "WALTER", "XENIA", "YUSUF", "ZOE")
LAST_NAMES = ("ADAMS", "ALLEN", "ANDERSON", "BAKER", "CAMPBELL", "CARTER", "CLARK", "COLLINS", "DAVIS", "EDWARDS",
              "EVANS", "GARCIA", "GREEN", "HARRIS", "HILL", "JACKSON", "JOHNSON", "KING", "LEWIS", "LOPEZ",
              "MARTIN", "MILLER", "MITCHELL", "MOORE", "NELSON", "PARKER", "PEREZ", "PHILLIPS", "ROBERTS",
              "ROBINSON", "SCOTT", "SMITH", "THOMAS", "TORRES", "TURNER", "WALKER", "WHITE", "WILSON", "WRIGHT",
              "YOUNG")
SYLLABLES = ("ba", "ca", "da", "el", "fa", "go", "ha", "in", "ka", "la", "ma", "na", "or", "pa", "ri", "sa", "ta",
             "ul", "va", "za", "bo", "ke", "lu", "mi", "ne", "ro", "si", "te", "vo", "ya")


def place_names(rng: random.Random, count: int) -> list[str]:
    """Distinct made-up place names of 2-3 syllables (27,900 possible, far more than asked for)."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names
