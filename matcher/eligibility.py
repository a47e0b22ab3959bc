"""Whether a draft consortium can apply for an action, and what it still lacks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from matcher import vocab


@dataclass(frozen=True)
class Member:
    id: int
    country: str | None
    sector: str


@dataclass
class Eligibility:
    action: str
    eligible: bool
    missing: list[str] = field(default_factory=list)
    programme_countries: list[str] = field(default_factory=list)
    countries_needed: int = 0
    organisations_needed: int = 0


def _rule(action: str) -> vocab.ActionRule:
    rules = vocab.actions()
    if action not in rules:
        raise vocab.UnknownCode(f"unknown action {action!r}; expected one of {', '.join(rules)}")
    return rules[action]


def may_join(sectors: np.ndarray, action: str) -> np.ndarray:
    """Which organisations (by sector) may take part in ``action`` at all: candidates are drawn from these."""
    rule = _rule(action)
    if rule.schools_only:
        return np.asarray(np.asarray(sectors) == "school")
    return np.ones(len(sectors), dtype=bool)


def _counts(member: Member, rule: vocab.ActionRule) -> bool:
    """Whether a member counts toward the action's minimum: a programme country, and a school where required."""
    return vocab.is_programme_country(member.country) and bool(may_join(np.array([member.sector]), rule.code)[0])


def check(members: Iterable[Member], action: str) -> Eligibility:
    """Eligibility of ``members`` for ``action`` (``cooperation``, ``small-scale`` or ``school``).

    Only organisations from programme countries count towards the minimum; a school
    partnership counts only schools.
    """
    rule = _rule(action)
    counted = [m for m in members if _counts(m, rule)]
    countries = sorted({m.country for m in counted if m.country})
    kind = "schools" if rule.schools_only else "organisations"
    orgs_needed = max(0, rule.min_organisations - len(counted))
    countries_needed = max(0, rule.min_countries - len(countries))
    missing = []
    if orgs_needed:
        missing.append(
            f"{orgs_needed} more {kind} from programme countries "
            f"(a {rule.label.lower()} needs at least {rule.min_organisations})"
        )
    if countries_needed:
        missing.append(
            f"{kind.capitalize()} from {countries_needed} more programme "
            f"{'country' if countries_needed == 1 else 'countries'} "
            f"(at least {rule.min_countries} needed, {len(countries)} so far)"
        )
    return Eligibility(action, not missing, missing, countries, countries_needed, orgs_needed)
