"""What a candidate adds to a consortium: a missing sector, a wanted type, a needed country.

A candidate that only repeats what the consortium has (same sector in a country already
present) is discounted; one that closes an eligibility gap or a wanted sector is favoured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from matcher.eligibility import counting_countries


@dataclass(frozen=True)
class ComplementarityConfig:
    adds_wanted_sector: float = 1.0
    adds_sector: float = 0.2
    adds_needed_country: float = 1.2
    repeats: float = -0.6


@dataclass
class Gains:
    adds_wanted_sector: np.ndarray
    adds_sector: np.ndarray
    adds_needed_country: np.ndarray
    repeats: np.ndarray

    def bonus(self, config: ComplementarityConfig) -> np.ndarray:
        return (
            config.adds_wanted_sector * self.adds_wanted_sector
            + config.adds_sector * self.adds_sector
            + config.adds_needed_country * self.adds_needed_country
            + config.repeats * self.repeats
        )


@dataclass(frozen=True)
class Coded:
    """A label per organisation as integer codes into a few names: membership tests cost a lookup per
    organisation, not a sort of every organisation's string."""

    names: np.ndarray
    codes: np.ndarray

    def __getitem__(self, i: int) -> str:
        return str(self.names[self.codes[i]])

    def isin(self, values: Iterable[str]) -> np.ndarray:
        return np.asarray(np.isin(self.names, sorted(values))[self.codes])


def gains(
    countries: Coded,
    sectors: Coded,
    members: Sequence[int],
    wanted_sectors: Sequence[str],
    countries_needed: int,
    call_year: int,
    unregistered: Sequence[tuple[str, str]] = (),
) -> Gains:
    """Per-organisation gains for the consortium ``members`` (positions into the arrays), and
    ``unregistered`` members known only by (country, sector): an applicant not yet in the registry."""
    have_sectors = {sectors[i] for i in members} | {s for _, s in unregistered}
    have_countries = {countries[i] for i in members} | {c for c, _ in unregistered}
    missing_wanted = [s for s in wanted_sectors if s not in have_sectors]
    n = len(sectors.codes)
    is_programme = countries.isin(counting_countries(call_year))
    new_country = ~countries.isin(have_countries)
    adds_wanted = sectors.isin(missing_wanted) if missing_wanted else np.zeros(n, dtype=bool)
    adds_sector = ~sectors.isin(have_sectors)
    needed = (is_programme & new_country) if countries_needed > 0 else np.zeros(n, dtype=bool)
    repeats = ~adds_sector & ~new_country
    return Gains(
        adds_wanted.astype(np.float32),
        adds_sector.astype(np.float32),
        needed.astype(np.float32),
        repeats.astype(np.float32),
    )
