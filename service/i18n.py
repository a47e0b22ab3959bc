"""The interface's language: English and Norwegian Bokmål, taken from the browser, switchable on every page.

Machine-readable codes (sectors, countries, reason codes) never change; only the words around them.
Country names come from pycountry's own translations (the iso3166-1 catalogue).
"""

from __future__ import annotations

import gettext
from functools import cache
from typing import Any, TypeVar
from urllib.parse import urlencode

import pycountry
from flask import Flask, Response, request, session
from flask_babel import Babel, get_locale, get_translations
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from matcher import vocab
from matcher.vocab import Text, name_of

LANGUAGES = {"en": "English", "nb": "Norsk bokmål"}
F = TypeVar("F")
ALIASES = {"no": "nb", "nn": "nb"}  # a browser that says "Norwegian" reads Bokmål best of the two


def select_locale() -> str:
    """``?lang=`` (remembered for the session), else the session's choice, else the browser's."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    if session.get("lang") in LANGUAGES:
        return str(session["lang"])
    offered = [
        (ALIASES.get(lang.split("-")[0].lower(), lang.split("-")[0].lower()), q) for lang, q in request.accept_languages
    ]
    for lang, _q in sorted(offered, key=lambda p: -p[1]):
        if lang in LANGUAGES:
            return lang
    return "en"


@cache
def _countries(lang: str) -> gettext.NullTranslations:
    return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True)


def country_name(code: str | None) -> str:
    """The country's name in the page's language."""
    english = vocab.country_name(code)
    lang = str(get_locale() or "en")
    if lang == "en" or not code:
        return english if code else _("unknown country")
    found = pycountry.countries.get(alpha_2=code)
    return _countries(lang).gettext(found.name) if found is not None else english


def sector_label(code: str) -> str:
    return str(_(vocab.sectors().get(code, code)))


# labels that live in seed_data, named here so that message extraction keeps them in the catalogue
# (tests/test_i18n.py checks every label of the data files is translated)
SECTOR_NAMES = (
    _l("School education"),
    _l("Vocational education and training"),
    _l("Higher education"),
    _l("Adult education"),
    _l("Youth"),
    _l("Enterprise"),
    _l("Public body"),
    _l("Research"),
    _l("Civil society"),
    _l("Other"),
)
# the Programme Guide's action names, as eligibility messages quote them (seed_data/programme_rules.json)
ACTION_NAMES = (
    _l("cooperation partnership"),
    _l("small-scale partnership"),
    _l("school exchange partnership (2014-2020 programme)"),
)


def translate(text: str) -> str:
    """A domain sentence (eligibility, reasons, warnings) in the request's language: its template from
    the catalogue, its countries and sectors named in that language. Plain strings pass unchanged."""
    lang = str(get_locale() or "en")
    if lang == "en" or not isinstance(text, Text):
        return str(text)
    catalogue = get_translations()
    if text.plural is not None:
        template = catalogue.ngettext(text.template, text.plural, int(text.params.get("n", 0)))
    else:
        template = catalogue.gettext(text.template)
    params = {
        k: translate(v) if isinstance(v, Text) else name_of(k, v, country_name, sector_label)
        for k, v in text.params.items()
    }
    if isinstance(params.get("action"), str):
        params["action"] = catalogue.gettext(params["action"])
    try:
        return str(template).format(**params)
    except (KeyError, IndexError, ValueError):  # a translation that names a parameter wrongly: say it in English
        return str(text)


COUNTRY_FIELDS = {"applicant_country", "countries", "exclude_countries", "country"}
SECTOR_FIELDS = {"applicant_sector", "sectors", "sector"}


def localise(form: F) -> F:
    """Country and sector choices in the page's language, countries sorted by their name in it."""
    for f in form:  # type: ignore[attr-defined]
        if f.name in COUNTRY_FIELDS | SECTOR_FIELDS and getattr(f, "choices", None):
            label = country_name if f.name in COUNTRY_FIELDS else sector_label
            empty = [(v, t) for v, t in f.choices if not v]
            named = [(v, label(v)) for v, _t in f.choices if v]
            f.choices = empty + (sorted(named, key=lambda p: p[1]) if f.name in COUNTRY_FIELDS else named)
    return form


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, default_translation_directories="translations")

    @app.template_filter("merge_lang")
    def merge_lang(args: Any, code: str) -> str:
        """This page's query string with ``lang`` set: switching language keeps the page."""
        return urlencode([*[(k, v) for k, v in args.items(multi=True) if k != "lang"], ("lang", code)])

    app.add_template_filter(translate, "t")

    @app.after_request
    def content_language(response: Response) -> Response:
        """Say which language the words are in; caches keep one copy per language."""
        response.headers["Content-Language"] = str(get_locale() or "en")
        response.vary.add("Accept-Language")
        return response

    @app.context_processor
    def language() -> dict[str, object]:
        lang = str(get_locale() or "en")
        return {"lang": lang, "languages": LANGUAGES}
