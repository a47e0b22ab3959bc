"""What a running service holds: database, encoder, the live index and a cached matcher.

A missing or refused index raises ``IndexUnavailable`` with the reason, so every caller
degrades visibly (503) instead of answering with an empty list.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from flask import Flask, current_app
from sqlalchemy import delete, func, insert, select

from embeddings.encoders import Encoder, load_encoder
from embeddings.index import IndexStore, LiveIndex, LoadedIndex
from matcher.db import Database, Organisation, Participation, StoredEmbedding, utcnow
from matcher.importers import register_organisation
from matcher.newcomer import NewcomerRule
from matcher.profiles import TEXT_VERSION, load_sources, profile_text, text_hash
from matcher.ranking import FittedRanker
from matcher.recommend import Matcher
from service.config import Settings


class IndexUnavailable(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class Services:
    def __init__(self, settings: Settings, encoder: Encoder | None = None) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.encoder = encoder or load_encoder(settings.encoder)
        self.store = IndexStore(settings.index_dir)
        self.live = LiveIndex(self.store, self.encoder.model_id, settings.exact_search_max)
        self.rule = NewcomerRule(settings.newcomer_max_projects)
        self._ranker_dir = settings.ranker_path
        self.ranker_error: str | None = None
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._matcher: Matcher | None = None
        self._space: LoadedIndex | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._checked = 0.0

    def fingerprint(self, force: bool = False) -> tuple[Any, ...]:
        """Cheap summary of the registry; a change means the cached matcher is stale."""
        now = time.monotonic()
        if force or self._fingerprint is None or now - self._checked > 1.0:
            with self.db.session() as s:
                self._fingerprint = (
                    s.scalar(select(func.count()).select_from(Organisation)),
                    s.scalar(select(func.max(Organisation.updated_at))),
                    s.scalar(select(func.count()).select_from(Participation)),
                    s.scalar(select(func.count()).select_from(StoredEmbedding)
                             .where(StoredEmbedding.model_id == self.encoder.model_id)),
                )
            self._checked = now
        return self._fingerprint

    def loaded(self) -> LoadedIndex:
        loaded = self.live.get()
        if loaded is None:
            raise IndexUnavailable([self.live.last_error or "no index loaded"])
        return loaded

    def _build(self, loaded: LoadedIndex) -> tuple[Matcher, LoadedIndex]:
        """Index plus vectors of organisations registered since the build (no full rebuild needed)."""
        known = set(loaded.ids.tolist())
        with self.db.session() as s:
            extra = [(i, v) for i, v in s.execute(
                select(StoredEmbedding.organisation_id, StoredEmbedding.vector)
                .where(StoredEmbedding.model_id == self.encoder.model_id)) if i not in known]
        space = loaded
        if extra:
            ids = np.concatenate([loaded.ids, np.array([i for i, _ in extra], dtype=np.int64)])
            vectors = np.vstack([loaded.vectors, np.vstack([np.frombuffer(v, dtype=np.float32) for _, v in extra])])
            space = LoadedIndex(loaded.manifest, ids, vectors, exact_max=self.settings.exact_search_max)
        return Matcher.from_db(self.db, self.encoder, space, rule=self.rule, ranker=self._ranker()), space

    def _ranker_stamp(self) -> float | None:
        meta = self._ranker_dir / "ranker.json"
        return meta.stat().st_mtime if meta.exists() else None

    def _ranker(self) -> FittedRanker | None:
        """The fitted ranker if one is saved; a refused one is reported by readiness, the default serves."""
        self.ranker_error = None
        if self._ranker_stamp() is None:
            return None
        try:
            return FittedRanker.load(self._ranker_dir)
        except (ValueError, OSError, KeyError, TypeError) as exc:
            self.ranker_error = f"fitted ranker refused, serving the default scorer: {exc}"
            return None

    def matcher(self) -> tuple[Matcher, LoadedIndex]:
        loaded = self.loaded()
        key = (loaded.version, self.fingerprint(), self._ranker_stamp())
        if key != self._key or self._matcher is None or self._space is None:
            with self._lock:
                if key != self._key or self._matcher is None or self._space is None:
                    self._matcher, self._space = self._build(loaded)
                    self._key = key
        return self._matcher, self._space

    def register(self, values: dict[str, Any]) -> int:
        """Store, profile and embed one organisation so the next search finds it."""
        with self.db.session() as s:
            org_id = register_organisation(s, values)
        with self.db.session() as s:
            text = profile_text(load_sources(s, organisation_ids=[org_id])[org_id], self.encoder.truncate)
            vector = self.encoder.encode_documents([text])[0]
            s.execute(delete(StoredEmbedding).where(StoredEmbedding.organisation_id == org_id,
                                                    StoredEmbedding.model_id == self.encoder.model_id))
            s.execute(insert(StoredEmbedding), [{
                "organisation_id": org_id, "model_id": self.encoder.model_id, "text_version": TEXT_VERSION,
                "text_hash": text_hash(text), "vector": vector.astype(np.float32).tobytes(), "updated_at": utcnow()}])
        self.fingerprint(force=True)
        return org_id

    def readiness(self) -> list[str]:
        """Reasons the service cannot answer well; empty when ready."""
        problems: list[str] = []
        try:
            with self.db.session() as s:
                organisations = s.scalar(select(func.count()).select_from(Organisation)) or 0
        except Exception as exc:  # any driver error means the database is unusable
            return [f"database unreachable: {exc.__class__.__name__}"]
        try:
            _, space = self.matcher()
        except IndexUnavailable as exc:
            return exc.reasons
        if self.ranker_error:
            problems.append(self.ranker_error)
        if space.manifest.model_id != self.encoder.model_id:
            problems.append(f"index model {space.manifest.model_id} differs from configured {self.encoder.model_id}")
        if len(space.ids) < organisations:
            problems.append(f"index covers {len(space.ids)} of {organisations} organisations: "
                            "run `partner-match index build`")
        return problems


def init_app(app: Flask) -> None:
    app.extensions["partner_match"] = Services(app.config["PARTNER_MATCH_SETTINGS"], app.config.get("ENCODER"))


def services() -> Services:
    return current_app.extensions["partner_match"]  # type: ignore[no-any-return]
