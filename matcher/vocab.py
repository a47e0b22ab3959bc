"""Reference vocabularies from ``seed_data/vocabularies.json``; country names from pycountry.

Kept in one place so that every importer, rule and page agrees on what a sector or a
programme country is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any

import pycountry

import seed_data


class UnknownCode(ValueError):
    """A code that is not in the vocabulary; the message names it."""


@cache
def _vocab() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(seed_data.resource("vocabularies.json").read_text(encoding="utf-8"))
    return data


def _public(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if not k.startswith("_")}


@cache
def sectors() -> dict[str, str]:
    """Sector code -> label, in the vocabulary's order."""
    return _public(_vocab()["sectors"])


@cache
def horizontal_priorities() -> dict[str, str]:
    return _public(_vocab()["horizontal_priorities"])


def normalise_country(raw: str | None) -> str | None:
    """ISO 3166 alpha-2 for a code or a name; ``None`` for empty; UnknownCode otherwise.

    Accepts the EU's own codes (``EL`` for Greece, ``UK`` for the United Kingdom) and
    ``XK`` (Kosovo), which EU data uses though ISO has not assigned it, and country names as the
    Commission's exports write them (``Kosovo*``, ``Türkiye``/``Turkey``, ``Czech Republic``,
    ``former Yugoslav Republic of Macedonia``).
    """
    if raw is None:
        return None
    value = str(raw).strip().rstrip("*").strip()
    if not value:
        return None
    parts = {p.strip() for p in value.split(";") if p.strip()}
    if len(parts) == 1:  # CORDIS sometimes repeats a value: "FI;FI"
        value = parts.pop()
    aliases = _public(_vocab()["country_aliases"])
    upper = value.upper()
    if upper in aliases:
        return str(aliases[upper])
    if len(value) == 2 and pycountry.countries.get(alpha_2=upper) is not None:
        return upper
    if len(value) == 3:
        found = pycountry.countries.get(alpha_3=upper)
        if found is not None:
            return str(found.alpha_2)
    if len(value) > 3:
        names = _public(_vocab()["country_name_aliases"])
        folded = " ".join(value.casefold().split())
        if folded in names:
            return str(names[folded])
        try:
            return str(pycountry.countries.lookup(value).alpha_2)
        except LookupError:
            pass
    raise UnknownCode(f"unknown country code {value!r}")


@cache
def country_codes() -> tuple[str, ...]:
    """Every two-letter code accepted as a country: ISO 3166 alpha-2 and the EU's own (EL, UK, XK)."""
    codes = {str(c.alpha_2) for c in pycountry.countries}
    codes |= {k for k in _public(_vocab()["country_aliases"]) if len(k) == 2}
    return tuple(sorted(codes | set(extra_countries())))


@cache  # asked for every reason that names a country
def country_name(code: str | None) -> str:
    if not code:
        return "unknown country"
    extra = _vocab()["extra_countries"]
    if code in extra:
        return str(extra[code])
    found = pycountry.countries.get(alpha_2=code)
    if found is None:
        return code
    return str(getattr(found, "common_name", None) or found.name)


def country_choices(codes: Iterable[str]) -> list[tuple[str, str]]:
    """(code, name) pairs sorted by name."""
    return sorted(((c, country_name(c)) for c in codes), key=lambda p: p[1])


def all_countries() -> list[Any]:
    """Every ISO 3166 country (pycountry records)."""
    return list(pycountry.countries)


def extra_countries() -> dict[str, str]:
    """Codes EU data uses that ISO has not assigned (Kosovo), with their names."""
    return dict(_public(_vocab()["extra_countries"]))


def programme_families() -> dict[str, str]:
    """Family code -> label (``erasmus``, ``horizon``, ``culture``, ``interreg``)."""
    return {k: str(v["label"]) for k, v in _public(_vocab()["programme_families"]).items()}


def programme_family(programme: str | None, source: str | None) -> str:
    """The family of a project's programme (``other`` when none fits): what the newcomer rule counts."""
    lowered = (programme or "").casefold()
    for family, entry in _public(_vocab()["programme_families"]).items():
        if any(k in lowered for k in entry["keywords"]):
            return str(family)
    return str(_public(_vocab()["source_families"]).get(source or "", "other"))


@cache
def legal_forms() -> tuple[str, ...]:
    """Legal-form words (normalised), longest first, stripped from names before matching by name."""
    return tuple(sorted(_vocab()["legal_forms"]["forms"], key=len, reverse=True))


def check_sector(code: str) -> str:
    if code not in sectors():
        raise UnknownCode(f"unknown sector {code!r}; expected one of {', '.join(sectors())}")
    return code


def erasmus_type_sector(label: str | None) -> str:
    """Sector for an Erasmus+ organisation-type label; unknown labels fall back by keyword."""
    if not label:
        return "other"
    clean = " ".join(label.replace("\u2013", "–").split())
    types = _public(_vocab()["erasmus_plus_organisation_types"])
    if clean in types:
        return str(types[clean])
    lowered = {k.lower(): v for k, v in types.items()}
    if clean.lower() in lowered:
        return str(lowered[clean.lower()])
    for keyword, sector in _public(_vocab()["erasmus_plus_type_keywords"]).items():
        if keyword in clean.lower():
            return str(sector)
    return "other"


def sector_from_name(name: str | None, fallback: str = "other") -> str:
    """A sector read from an organisation's name, for data that gives no type (the project's own reading)."""
    folded = f" {(name or '').casefold()} "
    for keyword, sector in _vocab()["name_sector_keywords"]["keywords"]:
        if keyword in folded:
            return str(sector)
    return fallback


def hes_sector(name: str | None) -> str:
    """The project's own reading of a CORDIS ``HES`` (higher *or secondary*): by keywords in the name."""
    rules = _vocab()["hes_refinement"]
    folded = f" {(name or '').casefold()} "
    if any(k in folded for k in rules["higher_education_keywords"]):
        return "higher_education"
    if any(k in folded for k in rules["school_keywords"]):
        return "school"
    return "higher_education"


def cordis_activity(code: str | None, name: str | None = None) -> tuple[str | None, str]:
    """(organisation-type label, sector) for a CORDIS activity type such as ``HES``.

    The label keeps CORDIS's own meaning; only the sector of an ``HES`` is refined by name."""
    if not code:
        return None, "other"
    parts = {p.strip() for p in code.split(";") if p.strip()}
    value = parts.pop() if len(parts) == 1 else code.strip()
    types = _vocab()["cordis_activity_types"]
    if value not in types:
        raise UnknownCode(f"unknown CORDIS activity type {code!r}")
    entry = types[value]
    sector = hes_sector(name) if entry.get("refine_by_name") else str(entry["sector"])
    return f"{entry['label']} ({value})", sector


class Text(str):
    """A sentence for people: the English sentence as a ``str`` (so stored, compared and serialised as
    before), carrying its template and parameters so that an interface in another language can
    translate the template and name the parameters its own way. By convention a parameter named
    ``country`` (or ending ``_country``) holds a country code, ``sector`` a sector code, and ``n``
    chooses between ``template`` and ``plural``; every other parameter is shown as it is."""

    template: str
    plural: str | None
    params: dict[str, Any]

    def __new__(cls, template: str, plural: str | None = None, **params: Any) -> Text:
        chosen = plural if plural is not None and params.get("n") != 1 else template
        english = chosen.format(
            **{k: name_of(k, v, country_name, lambda c: sectors().get(c, c)) for k, v in params.items()}
        )
        made = super().__new__(cls, english)
        made.template, made.plural, made.params = template, plural, params
        return made


def plural_text(singular: str, plural: str, **params: Any) -> Text:
    """A ``Text`` whose words follow the number ``n`` (its own name, so message extraction knows which
    calls carry a plural)."""
    return Text(singular, plural, **params)


def name_of(key: str, value: Any, country: Any, sector: Any) -> Any:
    """A parameter of a ``Text`` as people read it: codes named by ``country`` / ``sector``."""
    if key == "country" or key.endswith("_country"):
        return country(value)
    if key == "sector" or key.endswith("_sector"):
        return sector(value)
    return value
