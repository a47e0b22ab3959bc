"""Wiring: settings -> database, encoder, index store, ranker store -> one ``PartnerMatch``.

The only module of the service that touches ``embeddings``: everything else calls the front door.
"""

from __future__ import annotations

import ctypes
import ctypes.util

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


def keep_freed_memory() -> bool:
    """Ask the C library to keep memory a request frees for the next one (glibc: arrays up to 32 MiB
    from the heap, its top never handed back); False where it is not glibc. A search allocates and
    frees arrays the size of the registry, and memory handed back to the system costs a page fault
    per page when taken again: side by side (35,776 organisations, a search with a new idea after one
    without) 19-21 -> 15-16 ms, and 14-16 -> 9-9.6 ms for the search without. A worker keeps its
    largest request's memory (tens of MiB) instead of returning it."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        mallopt = None
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


def init_app(app: Flask, encoder: Encoder | None = None) -> None:
    """The web service's front door; a model call in a worker keeps to ``PARTNER_MATCH_MODEL_THREADS``,
    and freed memory is kept for the next request (``keep_freed_memory``)."""
    keep_freed_memory()
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
