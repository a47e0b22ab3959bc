"""Whether a draft consortium can apply for an action, and what it still lacks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

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


def check(members: Iterable[Member], action: str) -> Eligibility:
    """Eligibility of ``members`` for ``action`` (``cooperation``, ``small-scale`` or ``school``).

    Only organisations from programme countries count towards the minimum; a school
    partnership counts only schools.
    """
    rules = vocab.actions()
    if action not in rules:
        raise vocab.UnknownCode(f"unknown action {action!r}; expected one of {', '.join(rules)}")
    rule = rules[action]
    counted = [m for m in members if vocab.is_programme_country(m.country)
               and (not rule.schools_only or m.sector == "school")]
    countries = sorted({m.country for m in counted if m.country})
    kind = "schools" if rule.schools_only else "organisations"
    orgs_needed = max(0, rule.min_organisations - len(counted))
    countries_needed = max(0, rule.min_countries - len(countries))
    missing = []
    if orgs_needed:
        missing.append(f"{orgs_needed} more {kind} from programme countries "
                       f"(a {rule.label.lower()} needs at least {rule.min_organisations})")
    if countries_needed:
        missing.append(f"{kind.capitalize()} from {countries_needed} more programme "
                       f"{'country' if countries_needed == 1 else 'countries'} "
                       f"(at least {rule.min_countries} needed, {len(countries)} so far)")
    return Eligibility(action, not missing, missing, countries, countries_needed, orgs_needed)
