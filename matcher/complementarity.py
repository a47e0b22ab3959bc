"""What a candidate adds to a consortium: a missing sector, a wanted type, a needed country.

A candidate that only repeats what the consortium has (same sector in a country already
present) is discounted; one that closes an eligibility gap or a wanted sector is favoured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from matcher.eligibility import counting_countries


@dataclass(frozen=True)
class ComplementarityConfig:
    adds_wanted_sector: float = 1.0
    adds_sector: float = 0.2
    adds_needed_country: float = 1.2
    repeats: float = -0.6


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

    def any_in(self, values: Iterable[str], positions: np.ndarray) -> bool:
        """Whether one of ``positions`` has one of ``values``: the first thousand looked at first (a pool
        nearly always has one there), the rest only when none of them has, not a pass over the registry."""
        table = np.isin(self.names, sorted(values))
        return bool(table[self.codes[positions[:1024]]].any() or table[self.codes[positions[1024:]]].any())


@dataclass
class Gains:
    """What each organisation would add, held per country code and per sector code (a few dozen of
    each), since that is all a gain depends on: reading one is a lookup, and the bonus for every
    organisation is one gather from a country x sector table, not four passes over the registry."""

    countries: Coded
    sectors: Coded
    wanted_sector: np.ndarray  # per sector code: a wanted sector the consortium lacks
    new_sector: np.ndarray  # per sector code: a sector the consortium lacks
    needed_country: np.ndarray  # per country code: a programme country the consortium still needs
    new_country: np.ndarray  # per country code: a country not yet in the consortium
    _bonus: dict[ComplementarityConfig, np.ndarray] = field(default_factory=dict, repr=False)

    def adds_wanted_sector(self, pos: int) -> bool:
        return bool(self.wanted_sector[self.sectors.codes[pos]])

    def adds_sector(self, pos: int) -> bool:
        return bool(self.new_sector[self.sectors.codes[pos]])

    def adds_needed_country(self, pos: int) -> bool:
        return bool(self.needed_country[self.countries.codes[pos]])

    def bonus(self, config: ComplementarityConfig) -> np.ndarray:
        """Per organisation: the weighted gains, a repeat of what the consortium has discounted."""
        if config not in self._bonus:
            by_sector = config.adds_wanted_sector * self.wanted_sector + config.adds_sector * self.new_sector
            table = (
                by_sector[None, :]
                + (config.adds_needed_country * self.needed_country)[:, None]
                + config.repeats * (~self.new_country[:, None] & ~self.new_sector[None, :])
            ).astype(np.float32)
            self._bonus[config] = table.ravel()[self.countries.codes * len(self.sectors.names) + self.sectors.codes]
        return self._bonus[config]


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
    new_country = ~np.isin(countries.names, sorted(have_countries))
    programme = np.isin(countries.names, sorted(counting_countries(call_year)))
    return Gains(
        countries,
        sectors,
        wanted_sector=np.isin(sectors.names, sorted(missing_wanted)),
        new_sector=~np.isin(sectors.names, sorted(have_sectors)),
        needed_country=(programme & new_country) if countries_needed > 0 else np.zeros(len(countries.names), bool),
        new_country=new_country,
    )
