"""Whether a draft consortium can apply for an action in a call year, and every reason why not.

The rules are data (``seed_data/programme_rules.json``), each with the Programme Guide section or
announcement it comes from. This module is their one reader: which countries take part in which
call year (EU Member States, associated third countries, others, excluded), which of them count
toward an action's minimum, who may coordinate, sizes and fields. Candidate selection, the
complementarity gains and the eligibility panel all ask it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

import numpy as np

import seed_data
from matcher import vocab
from matcher.vocab import Text, plural_text

MEMBER, ASSOCIATED, NOT_ASSOCIATED, EXCLUDED = "member", "associated", "not_associated", "excluded"


@cache
def _rules() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(seed_data.resource("programme_rules.json").read_text(encoding="utf-8"))
    return data


@dataclass(frozen=True)
class ActionRule:
    key: str
    code: str
    label: str
    first_call: int
    last_call: int | None
    min_organisations: int
    min_countries: int
    max_organisations: int | None
    non_associated_may_join: bool
    sectors: frozenset[str] | None
    eche_for_higher_education: bool
    source: str

    @property
    def schools_only(self) -> bool:
        return self.sectors == frozenset({"school"})

    def open_in(self, year: int) -> bool:
        return self.first_call <= year and (self.last_call is None or year <= self.last_call)

    @property
    def calls(self) -> str:
        return f"{self.first_call}-{self.last_call}" if self.last_call else f"from {self.first_call}"


@cache
def actions() -> dict[str, ActionRule]:
    """Action key (``cooperation``, ``small-scale``, ``school``) -> its rule, in the file's order."""
    out = {}
    for key, raw in _rules()["actions"].items():
        sectors = frozenset(raw["sectors"]) if raw.get("sectors") is not None else None
        out[key] = ActionRule(key=key, **{**raw, "sectors": sectors})
    return out


def action(key: str) -> ActionRule:
    rules = actions()
    if key not in rules:
        raise vocab.UnknownCode(f"unknown action {key!r}; expected one of {', '.join(rules)}")
    return rules[key]


def default_call_year(today: dt.date | None = None) -> int:
    """The call a coordinator prepares now: next year's from November, when its Programme Guide appears."""
    today = today or dt.date.today()
    return today.year + (1 if today.month >= 11 else 0)


@dataclass(frozen=True)
class CountryStatus:
    status: str
    announced: bool = False
    source: str = ""


@cache  # the rules are fixed data: one answer per (country, year), asked for every candidate's draft
def country_status(code: str | None, year: int) -> CountryStatus:
    """How a country takes part in the programme's calls of ``year``."""
    countries = _rules()["countries"]
    for period in countries["periods"]:
        if period["code"] == code and period["from"] <= year and (period["until"] is None or year <= period["until"]):
            return CountryStatus(period["status"], bool(period.get("announced")), period["source"])
    if code in countries["eu_member_states"]["codes"]:
        return CountryStatus(MEMBER, source=countries["eu_member_states"]["source"])
    return CountryStatus(NOT_ASSOCIATED)


def counts_toward(code: str | None, year: int) -> bool:
    """Whether an organisation from ``code`` counts toward an action's minimum (EU or associated)."""
    return code is not None and country_status(code, year).status in (MEMBER, ASSOCIATED)


def counting_countries(year: int) -> frozenset[str]:
    """The EU Member States and associated third countries of a call year."""
    codes = {p["code"] for p in _rules()["countries"]["periods"]} | set(
        _rules()["countries"]["eu_member_states"]["codes"]
    )
    return frozenset(c for c in codes if counts_toward(c, year))


def registrable_countries(year: int | None = None) -> frozenset[str]:
    """Countries an organisation may register from: every country not excluded from the programme."""
    year = year or default_call_year()
    codes = {str(c.alpha_2) for c in vocab.all_countries()} | set(vocab.extra_countries())
    return frozenset(c for c in codes if country_status(c, year).status != EXCLUDED)


def may_join(countries: np.ndarray, sectors: np.ndarray, key: str, year: int | None = None) -> np.ndarray:
    """Which organisations may take part in the action at all: candidates are drawn from these only."""
    rule, year = action(key), year or default_call_year()
    codes = np.asarray(countries)
    statuses = {c: country_status(str(c), year).status for c in np.unique(codes)}
    allowed = {
        c
        for c, s in statuses.items()
        if s in (MEMBER, ASSOCIATED) or (s == NOT_ASSOCIATED and rule.non_associated_may_join)
    }
    ok = np.isin(codes, sorted(allowed))
    if rule.sectors is not None:
        ok &= np.isin(np.asarray(sectors), sorted(rule.sectors))
    return np.asarray(ok)


@dataclass(frozen=True)
class Member:
    id: int
    country: str | None
    sector: str
    name: str = ""
    eche: bool = False

    @property
    def label(self) -> str:
        return self.name or f"organisation {self.id}"


@dataclass
class Eligibility:
    action: str
    eligible: bool
    missing: list[str] = field(default_factory=list)
    programme_countries: list[str] = field(default_factory=list)
    countries_needed: int = 0
    organisations_needed: int = 0
    notes: list[str] = field(default_factory=list)
    call_year: int = 0


@lru_cache(maxsize=4096)  # a search checks each shown candidate with the same members: their verdicts repeat
def _member_problems(
    m: Member, rule: ActionRule, year: int, coordinator: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(unmet rules, notes) for one member; a member counts when it has neither problems nor a non-counting note."""
    status = country_status(m.country, year)
    who, action_ = m.label, rule.label.lower()
    missing: list[str] = []
    notes: list[str] = []
    if status.status == EXCLUDED:
        missing.append(
            Text("{who}: organisations from {country} cannot take part in Erasmus+", who=who, country=m.country)
        )
    elif status.status == NOT_ASSOCIATED:
        if coordinator:
            missing.append(
                Text(
                    "{who} cannot apply as coordinator: {country} is not associated to the programme; the "
                    "applicant must be established in an EU Member State or an associated third country",
                    who=who,
                    country=m.country,
                )
            )
        elif not rule.non_associated_may_join:
            missing.append(
                Text(
                    "{who}: {country} is not associated to the programme, and a {action} admits only "
                    "organisations from EU Member States and associated third countries",
                    who=who,
                    country=m.country,
                    action=action_,
                )
            )
        else:
            notes.append(
                Text(
                    "{who}: {country} is not associated to the programme: may join as a partner, does not "
                    "count toward the minimum",
                    who=who,
                    country=m.country,
                )
            )
    elif status.announced:
        notes.append(
            Text(
                "{country} takes part as an associated country from the {year} calls as announced (formal "
                "adoption pending)",
                country=m.country,
                year=year,
            )
        )
    if rule.sectors is not None and m.sector not in rule.sectors:
        missing.append(
            Text("{who}: a {action} admits schools only", who=who, action=action_)
            if rule.schools_only
            else Text(
                "{who}: organisations of the sector {sector} cannot take part in a {action}",
                who=who,
                sector=m.sector,
                action=action_,
            )
        )
    if (
        rule.eche_for_higher_education
        and m.sector == "higher_education"
        and status.status in (MEMBER, ASSOCIATED)
        and not m.eche
    ):
        notes.append(
            Text(
                "{who}: a higher education institution needs a valid Erasmus Charter for Higher Education "
                "(ECHE); none is recorded for it here",
                who=who,
            )
        )
    return tuple(missing), tuple(notes)


def check(
    members: Iterable[Member], key: str, call_year: int | None = None, coordinator: int | None = None
) -> Eligibility:
    """Eligibility of ``members`` for the action ``key`` in the calls of ``call_year``.

    ``coordinator`` is the applicant's id (it must be from an EU Member State or associated country).
    Every unmet rule is listed in plain words, and so is why a member does not count.
    """
    rule, year = action(key), call_year or default_call_year()
    members = list(members)
    missing: list[str] = []
    notes: list[str] = []
    if not rule.open_in(year):
        missing.append(
            Text(
                "a {action} ({code}) could be applied for in the {calls} calls only, not in {year}",
                action=rule.label.lower(),
                code=rule.code,
                calls=rule.calls,
                year=year,
            )
        )
    counted = []
    for m in members:
        problems, remarks = _member_problems(m, rule, year, coordinator is not None and m.id == coordinator)
        missing += problems
        notes += [n for n in remarks if n not in notes]
        if not problems and counts_toward(m.country, year):
            counted.append(m)
    countries = sorted({m.country for m in counted if m.country})
    schools = rule.schools_only
    orgs_needed = max(0, rule.min_organisations - len(counted))
    countries_needed = max(0, rule.min_countries - len(countries))
    action_, least = rule.label.lower(), rule.min_organisations
    if orgs_needed:
        missing.append(
            plural_text(
                "{n} more school from EU Member States or associated countries (a {action} needs at least {least})",
                "{n} more schools from EU Member States or associated countries (a {action} needs at least {least})",
                n=orgs_needed,
                action=action_,
                least=least,
            )
            if schools
            else plural_text(
                "{n} more organisation from EU Member States or associated countries (a {action} needs at least "
                "{least})",
                "{n} more organisations from EU Member States or associated countries (a {action} needs at "
                "least {least})",
                n=orgs_needed,
                action=action_,
                least=least,
            )
        )
    if countries_needed:
        so_far = {"n": countries_needed, "least": rule.min_countries, "so_far": len(countries)}
        missing.append(
            plural_text(
                "Schools from {n} more EU Member State or associated country (at least {least} needed, {so_far} "
                "so far)",
                "Schools from {n} more EU Member States or associated countries (at least {least} needed, {so_far} "
                "so far)",
                **so_far,
            )
            if schools
            else plural_text(
                "Organisations from {n} more EU Member State or associated country (at least {least} needed, "
                "{so_far} so far)",
                "Organisations from {n} more EU Member States or associated countries (at least {least} needed, "
                "{so_far} so far)",
                **so_far,
            )
        )
    if rule.max_organisations is not None and len(members) > rule.max_organisations:
        most, over = rule.max_organisations, len(members) - rule.max_organisations
        missing.append(
            Text("at most {most} schools may take part: {n} too many", most=most, n=over)
            if schools
            else Text("at most {most} organisations may take part: {n} too many", most=most, n=over)
        )
    return Eligibility(key, not missing, missing, countries, countries_needed, orgs_needed, notes, year)
