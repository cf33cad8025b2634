"""The generator's random draws that are not about one table: seeded streams, day noise, event counts.

Determinism rests here: every stream is a ``random.Random`` seeded with a
string such as ``"42:2022-02-01:rentals"`` or ``"42:reference:film:17"``
(string seeds go through SHA-512, so they are stable across runs and
platforms, unlike ``hash()``).
"""

from __future__ import annotations

import math
import random


def reference_rng(seed: int, purpose: str) -> random.Random:
    """The stream of one piece of reference data (``"film:17"``, ``"inventory"``), whatever else is drawn."""
    return random.Random(f"{seed}:reference:{purpose}")


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: day counts get natural noise, and small means still yield whole events now and then."""
    if mean < 30:
        limit, count, product_ = math.exp(-mean), 0, rng.random()
        while product_ > limit:
            count += 1
            product_ *= rng.random()
        return count
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


def day_factor(rng: random.Random, sigma: float) -> float:
    """Log-normal noise with mean 1, so the expected sizes stay exactly linear in the scale."""
    return rng.lognormvariate(-sigma * sigma / 2, sigma)
