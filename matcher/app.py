"""The domain's front door: every use case the API, the pages and the CLI offer, in one object.

Adapters parse input, call one method of ``PartnerMatch`` and render what it returns; they run
no query and hold no rule. ``PartnerMatch`` owns the caches a serving process needs (the live
index with newly registered organisations, the matcher built from the registry, the fitted
ranker) and rebuilds them when the registry, the index version or the ranker changes.

It is over 400 lines on purpose: it is the one place every use case lives, each method a few
lines over the domain modules (account rules live in ``accounts``, queries in ``registry``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from embeddings.encoders import Encoder, is_multilingual
from embeddings.index import IndexRefused, IndexStore, LiveIndex, LoadedIndex
from matcher import importers, indexing, registry
from matcher.accounts import EDITABLE, EMAIL, WEBSITE, AccountError, Accounts, Actor, audit, safe_url
from matcher.db import MAX_ID, NOT_TEXT, SPACE, Database, SavedSearch, fold_name, lock_registry
from matcher.eligibility import Eligibility, Member, check
from matcher.mail import LogMailer, Mailer, Message
from matcher.newcomer import NewcomerRule
from matcher.ranker import FittedRanker, RankerStore, fit_ranker
from matcher.recommend import Consortium, Matcher, MatchRequest, MatchResult, UnknownOrganisation
from matcher.registry import OrganisationFilter
from matcher.vocab import Text

__all__ = [
    "AccountError",
    "Actor",
    "Encoder",
    "IndexUnavailable",
    "MAX_ID",
    "NOT_TEXT",
    "NameTaken",
    "OrganisationFilter",
    "OrganisationQuery",
    "PartnerMatch",
    "SPACE",
    "UnknownOrganisation",
    "WEBSITE",
]


class NameTaken(Exception):
    """A registration that names an organisation already in the registry: the same (or nearly the same)
    name in the same country (``field`` "name"), or an identifier it holds (``field`` "pic" or "oid")."""

    def __init__(self, existing: int, field: str = "name") -> None:
        what = "this name in this country" if field == "name" else f"this {field.upper()}"
        super().__init__(f"organisation {existing} has {what}")
        self.existing = existing
        self.field = field


class IndexUnavailable(Exception):
    """No usable search index: callers answer 503 with the reasons, never an empty list."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class OrganisationQuery:
    """A list or search of organisations: filters, and a theme that ranks by profile similarity."""

    filter: OrganisationFilter = field(default_factory=OrganisationFilter)
    theme: str = ""
    page: int = 1
    page_size: int = 20


@dataclass
class Listed:
    """What every listing shows of an organisation; ``score`` only where a theme ranked it."""

    id: int
    name: str
    country: str | None
    city: str | None
    sector: str
    org_type: str | None
    website: str | None
    description: str | None
    newcomer: bool
    projects: int
    score: float | None = None


@dataclass
class OrganisationPage:
    """One page of a list, with what a reader needs to page through it."""

    items: list[Listed]
    total: int
    page: int
    pages: int


@dataclass
class NameMatch:
    """A name typed by a user: the organisation it names, or why none, with the ones it may mean."""

    id: int | None
    problem: str | None = None
    choices: list[registry.NamedOrganisation] = field(default_factory=list)


@dataclass
class IndexInfo:
    version: str
    model_id: str


@dataclass
class Recommendations:
    result: MatchResult
    index: IndexInfo
    cards: dict[int, Card] = field(default_factory=dict)  # what a result card shows beyond the ranking


@dataclass(frozen=True)
class Card:
    """Where an organisation is and what it says it does, in a line."""

    city: str | None
    summary: str | None


def first_sentence(text: str | None, limit: int = 200) -> str | None:
    """The first sentence (a stop after 20 characters or more: "Dr." is not one), at most ``limit``."""
    if not text or not text.strip():
        return None
    flat = " ".join(text.split())
    stops = (i + 1 for i, ch in enumerate(flat) if i >= 20 and ch in ".!?" and flat[i + 1 : i + 2] in ("", " "))
    end = next(stops, len(flat))
    line = flat[: min(end, limit)]
    return line if len(line) == len(flat[:end]) else line.rstrip() + "…"


@dataclass
class Proposals:
    consortia: list[Consortium]
    index: IndexInfo


@dataclass
class Readiness:
    ready: bool
    reasons: list[str]  # why not ready, or (when ready) what is degraded

    @property
    def status(self) -> str:
        return "unavailable" if not self.ready else ("degraded" if self.reasons else "ok")


@dataclass
class DraftPanel:
    members: list[Listed]
    eligibility: Eligibility
    unregistered: Member | None = None


class PartnerMatch:
    """The use cases of partner-match over one registry, one index store and one ranker store."""

    def __init__(
        self,
        db: Database,
        encoder: Encoder | Callable[[], Encoder],
        index_store: IndexStore,
        ranker_store: RankerStore,
        rule: NewcomerRule | None = None,
        exact_search_max: int = 200_000,
        mailer: Mailer | None = None,
        secret_key: str = "",
        base_url: str = "",
    ) -> None:
        self.db = db
        self.accounts = Accounts(db, mailer or LogMailer(), secret_key or secrets.token_hex(16), base_url)
        self._encoder: Encoder | None = encoder if isinstance(encoder, Encoder) else None
        self._encoder_factory: Callable[[], Encoder] | None = None if isinstance(encoder, Encoder) else encoder
        self.index_store = index_store
        self.ranker_store = ranker_store
        self.rule = rule or NewcomerRule()
        self.exact_search_max = exact_search_max
        self.ranker_error: str | None = None
        self._live: LiveIndex | None = None
        self._lock = threading.Lock()
        self._space: tuple[tuple[Any, ...], LoadedIndex] | None = None
        self._matcher: tuple[tuple[Any, ...], Matcher] | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._checked = 0.0
        # the last answers, by request: a reload, a language switch, a download or the back button asks
        # again; an answer counts only for the matcher that made it (a new matcher: computed anew)
        self._answers: OrderedDict[str, tuple[Matcher, MatchResult]] = OrderedDict()
        self._answers_lock = threading.Lock()

    # ------------------------------------------------------------------ wiring the caches
    @property
    def encoder(self) -> Encoder:
        """The encoder, loaded on first use (an import never needs the model)."""
        if self._encoder is None:
            if self._encoder_factory is None:
                raise RuntimeError("PartnerMatch was given neither an encoder nor a way to load one")
            self._encoder = self._encoder_factory()
        return self._encoder

    def multilingual(self) -> bool | None:
        """Whether the encoder in hand matches ideas across languages; None while it is not loaded
        (a page that only says so should not load a model)."""
        return None if self._encoder is None else is_multilingual(self._encoder)

    @property
    def live(self) -> LiveIndex:
        if self._live is None:
            self._live = LiveIndex(self.index_store, self.encoder.model_id, self.exact_search_max)
        return self._live

    def fingerprint(self, force: bool = False) -> tuple[Any, ...]:
        """Cheap summary of the registry, re-read at most once a second."""
        now = time.monotonic()
        if force or self._fingerprint is None or now - self._checked > 1.0:
            with self.db.session() as s:
                self._fingerprint = registry.registry_fingerprint(s, self.encoder.model_id)
            self._checked = now
        return self._fingerprint

    def space(self) -> LoadedIndex:
        """The serving index plus organisations embedded since it was built."""
        loaded = self.live.get()
        if loaded is None:
            raise IndexUnavailable([self.live.last_error or "no index loaded"])
        key = (loaded.version, self.fingerprint())
        cached = self._space
        if cached is None or cached[0] != key:
            cached = (key, indexing.with_unindexed(self.db, self.encoder.model_id, loaded))
            self._space = cached
        return cached[1]

    def _ranker(self) -> FittedRanker | None:
        """The fitted ranker if one is saved; a refused one is reported by readiness, the default serves."""
        self.ranker_error = None
        try:
            return self.ranker_store.load(self.encoder.model_id if self.encoder is not None else None)
        except (ValueError, OSError, KeyError, TypeError) as exc:
            self.ranker_error = f"fitted ranker refused, serving the default scorer: {exc}"
            return None

    def matcher(self) -> Matcher:
        """The matcher over the current registry, index and ranker; rebuilt only when one changed."""
        space = self.space()
        key = (space.version, self.fingerprint(), self.ranker_store.stamp())
        cached = self._matcher
        if cached is None or cached[0] != key:
            with self._lock:
                cached = self._matcher
                if cached is None or cached[0] != key:
                    # organisations registered or edited: applied to the matcher in hand; else a rebuild
                    same = cached is not None and cached[0][0] == key[0] and cached[0][2] == key[2]
                    built = cached[1].refreshed(self.db, space) if same and cached is not None else None
                    if built is None:
                        built = Matcher.from_db(self.db, self.encoder, space, rule=self.rule, ranker=self._ranker())
                    cached = self._matcher = (key, built)
        return cached[1]

    def warm(self) -> str:
        """Load the model, the serving index and the matcher now, for a server that forks its workers
        afterwards (gunicorn's preload): they then share these read-only pages instead of each loading
        its own. The model is loaded, never run: a model run before a fork leaves its thread pool
        unusable in the children (they hang). The connections used are closed before the fork.
        Returns what was loaded, or why nothing was (the workers then load on first use, as without)."""
        try:
            model_id = self.encoder.model_id
            organisations = len(self.matcher().history.org_ids)
        except IndexUnavailable as exc:
            return f"nothing warmed ({exc})"
        finally:
            self.db.dispose()
        return f"{organisations} organisations, model {model_id}"

    def after_fork(self) -> None:
        """In a forked worker: forget the parent's pooled connections without closing them."""
        self.db.dispose(close=False)

    def _info(self) -> IndexInfo:
        space = self.space()
        return IndexInfo(space.version, space.manifest.model_id)

    # ------------------------------------------------------------------ matching
    def recommend(self, req: MatchRequest) -> Recommendations:
        """Ranked partners for a request, with reasons and the consortium's eligibility."""
        result = self._answer(req)
        ids = {r.organisation_id for r in [*result.results, *result.network, *result.new_to_you]}
        with self.db.session() as s:
            found = registry.organisations_by_id(s, ids)
            cards = {i: Card(o.city, first_sentence(o.description)) for i, o in found.items()}
        return Recommendations(result, self._info(), cards)

    def _answer(self, req: MatchRequest, keep: int = 256) -> MatchResult:
        """The matcher's answer, from the last ``keep`` answers when the same request was answered by the
        matcher in hand (the request's every field is the key; a rebuilt or refreshed matcher misses)."""
        matcher, key = self.matcher(), repr(req)
        with self._answers_lock:
            found = self._answers.get(key)
            if found is not None and found[0] is matcher:
                self._answers.move_to_end(key)
                return found[1]
        result = matcher.recommend(req)
        with self._answers_lock:
            self._answers[key] = (matcher, result)
            while len(self._answers) > keep:
                self._answers.popitem(last=False)
        return result

    def propose(self, req: MatchRequest, n: int = 3) -> Proposals:
        """Alternative complete, eligible consortia."""
        return Proposals(self.matcher().propose_consortia(req, n=n), self._info())

    def draft(
        self,
        ids: Sequence[int],
        action: str,
        call_year: int | None = None,
        coordinator: int | None = None,
        unregistered: Member | None = None,
    ) -> DraftPanel:
        """A draft consortium's members (in the given order) and the Guide's verdict on it; an
        ``unregistered`` applicant (country and sector only) counts as its coordinator."""
        members = self._listed(list(dict.fromkeys(ids)))
        with self.db.session() as s:
            eche = registry.eche_holders(s, [m.id for m in members])
        checked = [Member(m.id, m.country, m.sector, m.name, m.id in eche) for m in members]
        if unregistered is not None:
            checked, coordinator = [unregistered, *checked], unregistered.id
        return DraftPanel(members, check(checked, action, call_year, coordinator), unregistered)

    # ------------------------------------------------------------------ the registry
    def resolve(self, ref: int | str, field_name: str) -> int:
        """An organisation id for an id (int) or a PIC (digit string); LookupError names the field."""
        return self.resolve_all([(ref, field_name)])[0]

    def resolve_all(self, refs: Sequence[tuple[int | str, str]]) -> list[int]:
        """``resolve`` for (reference, field) pairs in one unit of work: a request's applicant and
        partners; LookupError names the first field whose organisation does not exist."""
        with self.db.session() as s:
            found = registry.find_all_by_id_or_pic(s, [ref for ref, _ in refs])
        for ref, field_name in refs:
            if ref not in found:
                kind = "id" if isinstance(ref, int) else "PIC"
                raise LookupError(f"{field_name}: no organisation with {kind} {ref}")
        return [found[ref] for ref, _ in refs]

    def exists(self, org_id: int) -> bool:
        with self.db.session() as s:
            return registry.find_by_id_or_pic(s, org_id) is not None

    def find_by_name(self, name: str) -> NameMatch:
        """The organisation a typed name means: the one whose whole name it is, accents, case and script
        folded (Lodz = Łódź, Thessaloniki = Θεσσαλονίκη). Part of a name, a name several organisations
        bear or a likely typo is never picked silently: the problem lists the organisations it may mean."""
        typed = fold_name(name)
        if not typed:
            return NameMatch(None, f'"{name.strip()}" holds no letters or digits to match a name with.')
        with self.db.session() as s:
            exact = registry.organisations_named(s, typed, whole=True)
            if len(exact) == 1:
                return NameMatch(exact[0].id)
            if exact:
                return NameMatch(None, f'{len(exact)} organisations are called "{name.strip()}": choose one.', exact)
            partial = registry.organisations_named(s, typed, whole=False)
            if partial:
                what = "one organisation's name" if len(partial) == 1 else f"the names of {len(partial)} organisations"
                return NameMatch(None, f'"{name.strip()}" is part of {what}: choose one.', partial)
            folded = registry.folded_names(s)
            near = process.extract(typed, folded, scorer=fuzz.ratio, score_cutoff=80, limit=5)
            choices = [c for _, _, k in near for c in registry.organisations_named(s, folded[int(k)], True, 1)]
        if choices:
            return NameMatch(None, f'No organisation is called "{name.strip()}". Did you mean one of these?', choices)
        return NameMatch(None, f'No organisation called "{name.strip()}" is registered.')

    def newcomers(
        self,
        theme: str = "",
        countries: Sequence[str] = (),
        sectors: Sequence[str] = (),
        page: int = 1,
        page_size: int = 50,
    ) -> OrganisationPage:
        """Organisations new to the programme, by relevance to ``theme`` (by name without one): the
        national agency's list. Several countries and sectors at once; a page past the end is empty."""
        flt = OrganisationFilter(countries=tuple(countries), sectors=tuple(sectors), newcomer=True)
        return self.search(OrganisationQuery(flt, theme=theme, page=page, page_size=page_size))

    def search(self, q: OrganisationQuery) -> OrganisationPage:
        """Organisations passing the filters: by similarity to the theme when there is one, else by name.

        The one search behind the API's lists, the newcomer pages and ``partner-match search``;
        it sees organisations registered since the last index build.
        """
        size, offset = q.page_size, (q.page - 1) * q.page_size
        if q.theme.strip():
            space = self.space()
            with self.db.session() as s:
                allowed = registry.filtered_ids(s, q.filter, self.rule)
            total = len(space.ids) if allowed is None else len(space.rows_for(allowed))
            hits = space.search(space.align(self.encoder.encode_queries([q.theme])[0]), offset + size, allowed)[offset:]
            items = self._listed([h.id for h in hits], {h.id: round(h.score, 4) for h in hits})
        else:
            with self.db.session() as s:
                total = registry.count_organisations(s, q.filter, self.rule)
                ids = [o.id for o in registry.list_organisations(s, q.filter, self.rule, offset, size)]
            items = self._listed(ids)
        return OrganisationPage(items, total, q.page, max(1, -(-total // size)))

    def _listed(self, ids: list[int], scores: dict[int, float] | None = None) -> list[Listed]:
        with self.db.session() as s:
            orgs = registry.organisations_by_id(s, ids)
            counts = registry.project_counts(s, [i for i in ids if i in orgs])
            counted = registry.counted_projects(s, self.rule, [i for i in ids if i in orgs])
        return [
            Listed(
                o.id,
                o.display_name,
                o.country,
                o.city,
                o.sector,
                o.org_type,
                o.website,
                o.description,
                self.rule.is_newcomer(counted[o.id]),
                counts[o.id],
                (scores or {}).get(o.id),
            )
            for o in (orgs[i] for i in ids if i in orgs)
        ]

    def organisation(self, org_id: int, actor: Actor | None = None) -> dict[str, Any] | None:
        """One organisation: profile, experience, past projects, known partners, similar organisations."""
        with self.db.session() as s:
            org = registry.organisations_by_id(s, [org_id]).get(org_id)
            if org is None or (org.hidden and not (actor and actor.admin)):
                return None
            exp = registry.experience_of(s, org_id)
            counted = registry.counted_projects(s, self.rule, [org_id])[org_id]
            projects = registry.projects_of(s, org_id)
            partner_rows = registry.partners_of(s, org_id)
        partners = {p.id: p for p in self._listed([p for p, _ in partner_rows])}
        return {
            "id": org.id,
            "name": org.display_name,
            "short_name": org.short_name,
            "other_names": org.other_names,
            "pic": org.pic,
            "oid": org.oid,
            "country": org.country,
            "city": org.city,
            "region": org.region,
            "website": org.website,
            "org_type": org.org_type,
            "sector": org.sector,
            "description": org.description,
            "sources": org.sources,
            "newcomer": self.rule.is_newcomer(counted),
            "contact_name": org.contact_name,
            "contactable": bool(org.contact_email or org.owner_id),
            "owned": org.owner_id is not None,
            "editable": bool(actor and (actor.admin or (actor.verified and org.owner_id == actor.id))),
            "hidden": org.hidden,
            "experience": exp.__dict__,
            "projects": projects,
            "similar": self._similar(org_id),
            "known_partners": [
                {"id": p, "name": partners[p].name, "country": partners[p].country, "shared_projects": n}
                for p, n in partner_rows
                if p in partners
            ],
        }

    def _similar(self, org_id: int, k: int = 6) -> list[dict[str, Any]]:
        try:
            space = self.space()
        except IndexUnavailable:
            return []
        vector = space.vector(org_id)
        if vector is None:
            return []
        hits = [h for h in space.search(vector, k + 1) if h.id != org_id][:k]
        listed = {o.id: o for o in self._listed([h.id for h in hits])}
        return [
            {
                "id": h.id,
                "name": listed[h.id].name,
                "country": listed[h.id].country,
                "sector": listed[h.id].sector,
                "score": round(h.score, 4),
            }
            for h in hits
            if h.id in listed
        ]

    def save_search(self, params: dict[str, Any]) -> str:
        """Keep a search's parameters; the returned key is all its URL needs."""
        key = secrets.token_urlsafe(12)
        with self.db.session() as s:
            s.add(SavedSearch(key=key, params=params))
        return key

    def load_search(self, key: str) -> dict[str, Any] | None:
        if not key or len(key) > 32:
            return None
        with self.db.session() as s:
            found = s.get(SavedSearch, key)
            return dict(found.params) if found else None

    def stats(self) -> dict[str, Any]:
        with self.db.session() as s:
            return registry.stats(s, self.rule)

    # ------------------------------------------------------------------ writes
    def register(self, values: dict[str, Any], actor: Actor | None) -> int:
        """Store, profile and embed an organisation owned by ``actor``, so the next search finds it.

        Never overwrites: a same or nearly same name in the same country raises ``NameTaken`` (claim it,
        or say it is a different organisation with ``different=True``), and so does a PIC or OID the
        registry already holds (no ``different`` for those); the same registration sent twice
        by its owner returns the first. ValueError (``AccountError``) names the field."""
        actor = self._require_verified(actor, Text("register an organisation"))
        values = {**values, "website": safe_url(values.get("website"))}
        record = importers.registry_record(values)  # checks name, sector, country first
        with self.db.session() as s:
            lock_registry(s)  # a double-click's second request waits, then finds the first's organisation
            similar = registry.similar_in_country(s, record.name or "", record.country)
            holders = registry.holding_identifiers(s, record.pic, record.oid)
            owned = registry.owned_by(s, actor.id, [*holders.values(), *similar])
            if owned:
                return owned[0]
            for field, holder in holders.items():  # an identifier names one organisation: "different" cannot split it
                raise NameTaken(holder, field)
            if similar and not values.get("different"):
                raise NameTaken(similar[0])
            org_id = importers.register_organisation(s, values, owner_id=actor.id, distinct=bool(similar))
            audit(s, actor, "organisation.register", f"organisation:{org_id}", name=record.name)
        self._embed(org_id)
        return org_id

    def update_organisation(self, org_id: int, values: dict[str, Any], actor: Actor | None) -> dict[str, Any]:
        """Change what an owner (or an admin) may change; returns the changes made."""
        self.accounts.require_editor(actor, org_id)
        changes = {k: v for k, v in values.items() if k in EDITABLE}
        if "website" in changes:
            changes["website"] = safe_url(changes["website"])
        with self.db.session() as s:
            done = registry.update_organisation(s, org_id, changes)
            audit(s, actor, "organisation.edit", f"organisation:{org_id}", changes=done)
        if done:
            self._embed(org_id)
        return done

    def contact(self, org_id: int, sender_name: str, sender_email: str, text: str) -> None:
        """Relay a message to the organisation's published contact (or owner); no address is revealed."""
        with self.db.session() as s:
            to, name = registry.contact_address(s, org_id)
        if to is None:
            raise AccountError("organisation", Text("this organisation has not published a contact yet"), 409)
        if not EMAIL.match(sender_email.strip()):
            raise AccountError("email", Text("is not an e-mail address"))
        self.accounts.mailer.send(
            Message(
                to,
                f"partner-match: a message for {name}",
                f"{sender_name.strip()} ({sender_email.strip()}) writes to you through partner-match:\n\n"
                f"{text.strip()}\n\n"
                "Reply to this e-mail to answer them. partner-match did not show them your address.",
                reply_to=sender_email.strip(),
            )
        )

    def _require_verified(self, actor: Actor | None, what: Text) -> Actor:
        if actor is None:
            raise AccountError("account", Text("sign in (or send an API token) to {what}", what=what), 401)
        if not actor.verified:
            raise AccountError("account", Text("confirm your e-mail address to {what}", what=what), 403)
        return actor

    def _embed(self, org_id: int) -> None:
        indexing.embed_organisations(self.db, self.encoder, [org_id])
        self.fingerprint(force=True)

    def import_path(self, path: Path, fmt: str | None = None, progress: bool = True) -> importers.ImportSummary:
        """Import one file or folder in its own unit of work: one that cannot be read changes nothing."""
        with self.db.session() as s:
            return importers.import_path(s, path, fmt, progress=progress)

    def build_index(self, progress: bool = True) -> indexing.BuildSummary:
        return indexing.build_index(self.db, self.encoder, self.index_store, progress=progress)

    def index_status(self) -> dict[str, Any]:
        return indexing.index_status(self.db, self.encoder, self.index_store)

    def rollback_index(self) -> str:
        """Serve the version before the current one again; ValueError says why not."""
        previous = self.index_store.previous(self.encoder.model_id)
        if previous is None:
            raise ValueError("no earlier index version to roll back to")
        try:
            self.index_store.switch(previous, self.encoder.model_id)
        except IndexRefused as exc:
            raise ValueError(f"cannot roll back: {exc}") from exc
        return previous

    def fit_ranker(self, years: int, max_consortia: int, progress: bool = True) -> FittedRanker:
        """Fit and save a ranker on the registry's consortia; ValueError (nothing saved) when it cannot."""
        model_id = self.encoder.model_id if self.encoder is not None else None
        encode_ideas: Callable[[list[str]], np.ndarray] | None = None
        if self.encoder is not None and is_multilingual(self.encoder):  # ideas as a user's: query prefix, aligned
            encoder = self.encoder
            align: Callable[[np.ndarray], np.ndarray]
            try:
                align = self.space().align
            except IndexUnavailable:  # no index yet: no project vectors either, so no text is learnt
                align = lambda v: v  # noqa: E731
            encode_ideas = lambda texts: np.stack([align(v) for v in encoder.encode_queries(texts)])  # noqa: E731
        fitted = fit_ranker(
            self.db, years, max_consortia, progress=progress, model_id=model_id, encode_ideas=encode_ideas
        )
        self.ranker_store.save(fitted)
        return fitted

    def remove_ranker(self) -> bool:
        return self.ranker_store.remove()

    # ------------------------------------------------------------------ health
    def readiness(self) -> Readiness:
        """Whether this process (and the next one to start) can answer well.

        Unavailable: the database cannot be used, or the index version marked current is missing,
        corrupt or of another model (what the next worker would load is checked, not only what this
        one holds). Degraded but serving: a refused fitted ranker, organisations not yet embedded."""
        try:
            schema = self.db.schema_problem()
            with self.db.session() as s:
                organisations = registry.count_organisations(s) if schema is None else 0
        except Exception as exc:  # any driver error means the database is unusable
            return Readiness(False, [f"database unreachable: {exc.__class__.__name__}"])
        if schema:
            return Readiness(False, [schema])
        current = self.index_store.current_name()
        try:
            if current is None:
                raise IndexUnavailable(["no index version is marked current (run: partner-match index build)"])
            self.index_store.verify(current, self.encoder.model_id)
            self.matcher()
            space = self.space()
        except IndexRefused as exc:
            return Readiness(False, [f"the current index cannot be served: {exc}"])
        except IndexUnavailable as exc:
            return Readiness(False, exc.reasons)
        notes = [self.ranker_error] if self.ranker_error else []
        missing = organisations - len(space.ids)
        if missing > 0:
            notes.append(
                f"{missing} organisation{'s' if missing != 1 else ''} not embedded yet, so not found by "
                "text: run `partner-match index build`"
            )
        return Readiness(True, notes)
