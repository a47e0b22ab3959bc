"""Wiring: settings -> database, encoder, index store, ranker store -> one ``PartnerMatch``.

The only module of the service that touches ``embeddings``: everything else calls the front door.
"""

from __future__ import annotations

from flask import Flask, current_app

from embeddings.encoders import ENCODERS, MULTILINGUAL, Encoder, limit_threads, load_encoder
from embeddings.index import IndexStore
from matcher.app import PartnerMatch
from matcher.db import Database
from matcher.mail import mailer_for
from matcher.newcomer import NewcomerRule
from matcher.ranker import RankerStore
from service.config import Settings


def build(settings: Settings, encoder: Encoder | None = None, secret_key: str = "") -> PartnerMatch:
    """The front door for these settings; the model is loaded on first use, not here."""
    if encoder is None and settings.encoder not in ENCODERS:
        raise ValueError(
            f"PARTNER_MATCH_ENCODER: unknown encoder {settings.encoder!r}; expected one of {', '.join(ENCODERS)}"
        )
    return PartnerMatch(
        Database(settings.database_url),
        encoder if encoder is not None else (lambda: load_encoder(settings.encoder)),
        IndexStore(settings.index_dir),
        RankerStore(settings.ranker_path),
        NewcomerRule.parse(settings.newcomer_max_projects, settings.newcomer_programmes),
        settings.exact_search_max,
        mailer_for(settings.smtp_url, settings.mail_sender),
        secret_key or settings.secret_key or "",
        settings.base_url,
    )


def init_app(app: Flask, encoder: Encoder | None = None) -> None:
    """The web service's front door; a model call in a worker keeps to ``PARTNER_MATCH_MODEL_THREADS``."""
    settings: Settings = app.config["PARTNER_MATCH_SETTINGS"]
    if encoder is None and settings.encoder != "hashing":
        limit_threads(settings.model_threads)
    app.extensions["partner_match"] = build(app.config["PARTNER_MATCH_SETTINGS"], encoder, app.config["SECRET_KEY"])


def partner_match() -> PartnerMatch:
    found: PartnerMatch = current_app.extensions["partner_match"]
    return found


def multilingual() -> bool:
    """Whether the model matches ideas across languages (what the search form tells users): the model
    in hand when one was given or has loaded, else the configured one (the form never loads a model)."""
    loaded = partner_match().multilingual()
    return loaded if loaded is not None else current_app.config["PARTNER_MATCH_SETTINGS"].encoder in MULTILINGUAL
