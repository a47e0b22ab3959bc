"""Recommendations and whole-consortium proposals for one request, with reasons.

Wires the pipeline stages of ``ranking`` to the registry: candidates (filters) -> features
-> score + complementarity -> FA*IR newcomer re-ranking -> structured reasons.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from embeddings.encoders import Encoder
from embeddings.index import LoadedIndex
from matcher import registry
from matcher.complementarity import Coded, ComplementarityConfig, Gains, gains
from matcher.db import Database
from matcher.eligibility import Eligibility, Member, check, counting_countries, default_call_year, may_join
from matcher.fairness import QUOTA, SIGNIFICANCE, FairConfig
from matcher.newcomer import NewcomerRule
from matcher.ranker import FittedRanker
from matcher.ranking import (
    FEATURES,
    FeatureConfig,
    Features,
    History,
    ScoreConfig,
    best_project,
    default_weights,
    fair_top,
    features,
    idea_text,
    in_network,
    rank,
    score,
    text_vectors,
)
from matcher.vocab import Text, plural_text

UNREGISTERED = 0  # the id an unregistered applicant has in eligibility checks (no organisation has it)


@dataclass
class MatchRequest:
    idea: str = ""
    action: str = "cooperation"
    applicant: int | None = None
    partners: list[int] = field(default_factory=list)
    sectors: list[str] = field(default_factory=list)
    org_types: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    exclude_countries: list[str] = field(default_factory=list)
    k: int = 10
    newcomer_share: float = FairConfig.share
    seek_coordinator: bool = False
    call_year: int | None = None  # the call applied to; None: the next one
    fairness: str = QUOTA  # how the newcomer share is held: a quota, or FA*IR's significance test
    network_k: int = 5  # "from your network": organisations a member has worked with
    new_k: int = 10  # "new to you": nobody in the consortium has worked with them (partners of partners may)
    # an applicant not (yet) in the registry: its country and sector still count for eligibility,
    # complementarity and reasons; ``applicant`` (a registered one) takes precedence
    applicant_country: str | None = None
    applicant_sector: str | None = None
    applicant_name: str = "your organisation"

    @property
    def unregistered(self) -> Member | None:
        if self.applicant is not None or not self.applicant_country or not self.applicant_sector:
            return None
        return Member(UNREGISTERED, self.applicant_country, self.applicant_sector, self.applicant_name)

    @property
    def year(self) -> int:
        return self.call_year or default_call_year()

    @property
    def members(self) -> list[int]:
        return list(dict.fromkeys(([self.applicant] if self.applicant is not None else []) + self.partners))


@dataclass
class Reason:
    code: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, **self.data}


@dataclass
class Recommendation:
    organisation_id: int
    name: str
    country: str | None
    sector: str
    score: float
    newcomer: bool
    known_partner: bool
    partner_of_partner: bool
    projects: int
    coordinated: int
    reasons: list[Reason]
    eligibility_with: Eligibility | None = None


@dataclass
class MatchResult:
    results: list[Recommendation]
    eligibility: Eligibility
    warnings: list[str] = field(default_factory=list)  # why the request cannot be met as asked
    # the same pool in two groups: what a coordinator knows of already, and what it could not find alone
    network: list[Recommendation] = field(default_factory=list)
    new_to_you: list[Recommendation] = field(default_factory=list)


@dataclass
class Consortium:
    members: list[Recommendation]
    eligibility: Eligibility
    newcomers: int
    known_partners: int


# the recent ideas' similarities a matcher keeps (about 100 ideas at 37,500 organisations, 13 at
# 300,000): enough for a page's draft edits and paging, and for a busy worker's repeated ideas
IDEAS_BYTES = 64 * 2**20


class UnknownOrganisation(LookupError):
    pass


class Matcher:
    """Everything a request needs, held in memory; rebuild it when the registry changes."""

    def __init__(
        self,
        history: History,
        names: dict[int, str | None],
        projects: dict[int, tuple[str | None, int | None]],
        encoder: Encoder | None,
        index: LoadedIndex | None,
        config: FeatureConfig | None = None,
        weights: ScoreConfig | None = None,
        complementarity: ComplementarityConfig | None = None,
        alpha: float = FairConfig.alpha,
        rule: NewcomerRule | None = None,
        org_types: np.ndarray | None = None,
        ranker: FittedRanker | None = None,
        eche: set[int] | None = None,
    ) -> None:
        self.history = history
        self.names = names
        self.projects = projects
        self.encoder = encoder
        self.index = index
        self.config = config or FeatureConfig()
        self.weights = weights or ScoreConfig()
        self.complementarity = complementarity or ComplementarityConfig()
        self.alpha = alpha
        self.rule = rule or NewcomerRule()
        self.ranker = ranker if ranker is not None and ranker.kind == "lambdamart" else None
        self.org_types = org_types if org_types is not None else np.array([""] * len(history.org_ids))
        self.eche = eche or set()  # holders of an Erasmus Charter for Higher Education
        self.hidden = np.zeros(len(history.org_ids), dtype=bool)  # hidden by a moderator
        self.mask = np.ones(len(history.project_ids), dtype=bool)
        self.counts = self.rule.counts(history.incidence, history.funded, history.project_families, self.mask)
        self.newcomer = self.rule.flags(self.counts)
        self.newcomers = np.flatnonzero(self.newcomer)  # sorted: FA*IR finds the few in a pool without a pass
        self._profile_rows: np.ndarray | None = None
        # the idea's similarities, for the same idea again (the draft's add/remove, paging): the
        # products over every project and profile vector are most of a request's cost with a model
        self._ideas: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = OrderedDict()
        self._ideas_lock = threading.Lock()
        self.countries = Coded(history.country_names, history.country_codes)
        self.sectors = Coded(history.sector_names, history.sector_codes)
        self._joinable: dict[tuple[str, int], np.ndarray] = {}  # (action, call year) -> who may take part
        # set by from_db: the registry's participation count and newest organisation change when read
        self.participations = -1
        self.as_of: dt.datetime | None = None

    @classmethod
    def from_db(cls, db: Database, encoder: Encoder | None, index: LoadedIndex | None, **kwargs: Any) -> Matcher:
        with db.session() as session:
            as_of = session.scalar(registry.last_change())  # first: a change while reading is seen again later
            participations = registry.participation_count(session)
            history = History.from_db(session)
            if encoder is not None:
                history.keep_texts(*text_vectors(history, registry.project_vectors(session, encoder.model_id)))
            names, types, projects = registry.labels(session)
            eche = registry.eche_holders(session)
            hidden = registry.hidden_ids(session)
        org_types = np.array([types.get(int(i)) or "" for i in history.org_ids])
        matcher = cls(history, names, projects, encoder, index, org_types=org_types, eche=eche, **kwargs)
        matcher.hidden = np.isin(history.org_ids, sorted(hidden))
        matcher.participations, matcher.as_of = participations, as_of
        return matcher

    def refreshed(self, db: Database, index: LoadedIndex | None) -> Matcher | None:
        """This matcher with the organisations registered or edited since it was built, without reading
        the whole registry again (a registration must not cost every worker a rebuild); None when only a
        rebuild will do: participations changed, an organisation was deleted or merged, or the new ids
        do not follow the known ones."""
        if self.as_of is None:  # not built from a registry: nothing to compare with
            return None
        h = self.history
        known_max = int(h.org_ids[-1]) if len(h.org_ids) else 0
        with db.session() as session:
            as_of = session.scalar(registry.last_change())
            remaining, parts, rows, hidden = registry.changed_organisations(session, self.as_of, known_max)
        if remaining != len(h.org_ids) or parts != self.participations:
            return None
        new = [r for r in rows if int(r[0]) > known_max]
        edited = [r for r in rows if int(r[0]) <= known_max]
        if [int(r[0]) for r in new] != sorted(int(r[0]) for r in new):
            return None
        countries = [*h.countries.tolist(), *(r[1] or "" for r in new)]
        sectors = [*h.sectors.tolist(), *(r[2] or "other" for r in new)]
        org_types = [*self.org_types.tolist(), *(r[4] or "" for r in new)]
        names, eche = dict(self.names), set(self.eche)
        for r in edited + new:
            names[int(r[0])] = r[3]
            eche.discard(int(r[0]))
            if r[5] is not None:
                eche.add(int(r[0]))
        for r in edited:
            pos = h.org_position[int(r[0])]
            countries[pos], sectors[pos], org_types[pos] = r[1] or "", r[2] or "other", r[4] or ""
        grow = sp.csr_matrix((len(new), len(h.project_ids)), dtype=h.incidence.dtype)
        history = History(
            np.concatenate([h.org_ids, np.array([int(r[0]) for r in new], dtype=h.org_ids.dtype)]),
            np.array(countries),
            np.array(sectors),
            h.project_ids,
            h.project_years,
            sp.vstack([h.incidence, grow]).tocsr(),
            sp.vstack([h.coordinated, grow]).tocsr(),
            h.project_vectors,
            sp.vstack([h.funded, grow]).tocsr() if h.funded is not None else None,
            h.project_families,
        )
        if h.project_vectors is None:  # the projects did not change: the same text vectors
            history.keep_texts(*h.text_rows())
        matcher = Matcher(
            history,
            names,
            self.projects,
            self.encoder,
            index,
            self.config,
            self.weights,
            self.complementarity,
            self.alpha,
            self.rule,
            np.array(org_types),
            self.ranker,
            eche,
        )
        matcher.hidden = np.isin(history.org_ids, sorted(hidden))
        matcher.participations, matcher.as_of = parts, as_of
        return matcher

    # -- stages ---------------------------------------------------------------------------
    def positions(self, ids: list[int]) -> list[int]:
        missing = [i for i in ids if i not in self.history.org_position]
        if missing:
            raise UnknownOrganisation(f"unknown organisation id(s): {', '.join(map(str, missing))}")
        return [self.history.org_position[i] for i in ids]

    def candidates(self, req: MatchRequest, members: list[int]) -> np.ndarray:
        h = self.history
        ok = np.ones(len(h.org_ids), dtype=bool)
        ok[members] = False
        if req.countries:
            ok &= self.countries.isin(req.countries)
        if req.exclude_countries:
            ok &= ~self.countries.isin(req.exclude_countries)
        if req.org_types:
            ok &= np.isin(self.org_types, req.org_types)
        key = (req.action, req.year)
        if key not in self._joinable:  # the registry is fixed for this matcher's life: once per action and year
            self._joinable[key] = may_join(h.countries, h.sectors, req.action, req.year)
        ok &= self._joinable[key]
        ok &= ~self.hidden
        return np.flatnonzero(ok)

    def profile_scores(self, query: np.ndarray | None) -> np.ndarray | None:
        if query is None or self.index is None:
            return None
        if self._profile_rows is None:  # index row -> history position, once per matcher
            rows = np.array([self.history.org_position.get(int(i), -1) for i in self.index.ids], dtype=np.int64)
            self._profile_rows = rows
        out = np.zeros(len(self.history.org_ids), dtype=np.float32)
        sims = self.index.similarities(query)
        keep = self._profile_rows >= 0
        out[self._profile_rows[keep]] = sims[keep]
        return out

    def _similarities(self, query: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The idea against past projects (per organisation its best, and per project) and profiles,
        the last ideas kept (``IDEAS_BYTES``): the arrays are only read afterwards."""
        if query is None:
            return (*idea_text(self.history, None, self.mask), None)
        key = query.tobytes()
        with self._ideas_lock:
            if key in self._ideas:
                self._ideas.move_to_end(key)
                return self._ideas[key]
        found = (*idea_text(self.history, query, self.mask.astype(np.float64)), self.profile_scores(query))
        for values in found:
            if values is not None:
                values.setflags(write=False)  # shared by later requests: a write would be a bug, so it raises
        with self._ideas_lock:
            self._ideas[key] = found
            held = sum(a.nbytes for entry in self._ideas.values() for a in entry if a is not None)
            while held > IDEAS_BYTES and len(self._ideas) > 1:
                held -= sum(a.nbytes for a in self._ideas.popitem(last=False)[1] if a is not None)
        return found

    @staticmethod
    def _seek(req: MatchRequest) -> bool:
        """A coordinator is sought when the request says so, or when nobody applies yet."""
        return req.seek_coordinator or (req.applicant is None and req.unregistered is None)

    def _score(self, req: MatchRequest, members: list[int]) -> tuple[Features, np.ndarray, Eligibility, Gains]:
        h = self.history
        query = self.encoder.encode_queries([req.idea])[0] if (req.idea.strip() and self.encoder) else None
        if query is not None and self.index is not None:
            query = self.index.align(query)  # an idea in another language next to its English
        virtual = req.unregistered
        extra = [(virtual.country or "", virtual.sector)] if virtual else []
        text, sims, profile = self._similarities(query)
        f = features(h, members, self.mask, self.config, query, profile, virtual=extra, similarities=(text, sims))
        elig = self._check(members, req)
        g = gains(self.countries, self.sectors, members, req.sectors, elig.countries_needed, req.year, extra)
        seek = self._seek(req)
        linear = score(f, self.weights, seek_coordinator=seek)
        if self.ranker is not None and members:
            # the fitted ranker orders the network (and the idea's text, where it learnt it from past
            # projects); the profile and a sought coordinator keep their default weights on top
            outside = np.ones(len(h.org_ids), dtype=bool)
            outside[members] = False
            pool = np.flatnonzero(outside)  # as setdiff1d(arange, members), without sorting the registry
            added_columns = ("profile", "coordinated") if self.ranker.text_model else ("text", "profile", "coordinated")
            kept = np.isin(FEATURES, added_columns)
            added = np.where(kept, default_weights(self.weights, seek), 0.0).astype(np.float32)
            return f, self.ranker.score(f, linear, pool, added) + g.bonus(self.complementarity), elig, g
        return f, linear + g.bonus(self.complementarity), elig, g

    def _member(self, pos: int) -> Member:
        h = self.history
        org_id = int(h.org_ids[pos])
        return Member(org_id, h.countries[pos] or None, str(h.sectors[pos]), self._name(pos), org_id in self.eche)

    def _fair(self, req: MatchRequest) -> FairConfig:
        if req.fairness == SIGNIFICANCE:
            return FairConfig.significance(req.newcomer_share)
        return FairConfig(req.newcomer_share, self.alpha)

    def _check(self, positions: list[int], req: MatchRequest) -> Eligibility:
        """The Guide's verdict on these members, the applicant (registered or not) as coordinator."""
        virtual = req.unregistered
        members = ([virtual] if virtual else []) + [self._member(p) for p in positions]
        return check(members, req.action, req.year, UNREGISTERED if virtual else req.applicant)

    def recommend(self, req: MatchRequest) -> MatchResult:
        """One ranked list (``k``, newcomer share held by FA*IR) and the same pool in two groups: "from
        your network" (a shared project with a member: the fitted network ranker's order) and "new to
        you" (nobody in the consortium has worked with them: ranked by the discovery scorer, the
        idea's relevance and an introduction through a partner, plus complementarity, with the
        newcomer share held within the group)."""
        members = self.positions(req.members)
        f, scores, elig, g = self._score(req, members)
        pool = self.candidates(req, members)
        warnings = self._impossible(req, pool, elig)
        if len(pool) == 0:
            return MatchResult([], elig, warnings)
        standout = self._standout(f, pool)

        seen: dict[tuple[int, int], Recommendation] = {}  # the list and the groups share most of their members

        def explain(positions: np.ndarray, by: np.ndarray = scores) -> list[Recommendation]:
            for p in positions:
                if (int(p), id(by)) not in seen:
                    seen[int(p), id(by)] = self._explain(int(p), f, g, by, members, req, elig, standout)
            return [seen[int(p), id(by)] for p in positions]

        fair = self._fair(req)
        top = fair_top(rank(scores, pool, max(req.k * 5, 50)), self.newcomer, req.k, fair, scores, pool, self.newcomers)
        tied = in_network(f)
        near, far = pool[tied[pool]], pool[~tied[pool]]
        network = rank(scores, near, req.network_k) if req.network_k > 0 and len(near) else near[:0]
        fresh = far[:0]
        # a fitted ranker, where one is kept, also orders "new to you": it learns who joins a consortium
        # beyond the old partners (run L: 0.154 of the novel partners in its top 10); else the discovery weights
        if self.ranker is not None:
            found = scores
        else:
            found = score(f, self.weights, self._seek(req), discovery=True) + g.bonus(self.complementarity)
        if req.new_k > 0 and len(far):
            head = rank(found, far, max(req.new_k * 5, 50))
            fresh = fair_top(head, self.newcomer, req.new_k, fair, found, far, self.newcomers)
        return MatchResult(explain(top), elig, warnings, explain(network), explain(fresh, found))

    @staticmethod
    def _standout(f: Features, pool: np.ndarray) -> tuple[float, float]:
        """The text and profile similarity a candidate needs for "similar to your idea" to say something:
        the pool's top decile (and at least 0.3), not a line on every result."""

        def decile(values: np.ndarray) -> float:  # no idea, no similarity: nothing to sort
            return max(0.3, float(np.quantile(values[pool], 0.9))) if len(pool) and values.any() else 0.3

        return decile(f.text), decile(f.profile)

    def _impossible(self, req: MatchRequest, pool: np.ndarray, elig: Eligibility) -> list[str]:
        """Say so when the filters leave nobody who could make the consortium eligible."""
        if len(pool) == 0:
            return [Text("No organisation passes these filters (countries, exclusions, action): widen them.")]
        counting = counting_countries(req.year)
        if elig.countries_needed > 0:
            wanted = counting - set(elig.programme_countries)
            text = Text(
                "With these filters no suggestion can make the consortium eligible: it needs another EU Member "
                "State or associated country, and no organisation that passes the filters is from one."
            )
        elif elig.organisations_needed > 0:
            wanted = counting
            text = Text(
                "With these filters no suggestion can make the consortium eligible: it needs an organisation "
                "from an EU Member State or associated country, and no organisation that passes the filters is "
                "from one."
            )
        else:
            return []
        return [] if self.countries.any_in(wanted, pool) else [text]

    # -- reasons --------------------------------------------------------------------------
    def _projects_of(self, pos: int) -> np.ndarray:
        inc = self.history.incidence  # the CSR arrays directly: slicing a row builds a matrix each time
        return np.asarray(inc.indices[inc.indptr[pos] : inc.indptr[pos + 1]])

    def _introducer(self, pos: int, f: Features, members: list[int]) -> int:
        """Who could introduce ``pos``: among the members' old partners (not members) that ``pos`` has
        worked with, the one most closely tied to the members; -1 when there is none."""
        mine = self._projects_of(pos)
        if f.two_hop[pos] <= 0 or not len(mine):
            return -1
        met, _ = self.history.members_of(mine.astype(np.int64))
        via = met[(f.shared[met] > 0) & (met != pos)]
        for m in members:  # a few members: comparisons, not np.isin's sort
            via = via[via != m]
        return int(via[np.argmax(f.direct[via])]) if len(via) else -1

    def _shared_project(self, a: int, b: int) -> int | None:
        """The most recent past project of both (the first of equals), None when they share none: the
        shorter project list looked up in the longer (the incidence's rows are sorted)."""
        mine, theirs = self._projects_of(a), self._projects_of(b)
        if len(mine) > len(theirs):
            mine, theirs = theirs, mine
        if not len(mine):
            return None
        shared = mine[theirs[np.minimum(np.searchsorted(theirs, mine), len(theirs) - 1)] == mine]
        if not len(shared):
            return None
        return int(self.history.project_ids[shared[np.argmax(self.history.project_years[shared])]])

    def _explain(
        self,
        pos: int,
        f: Features,
        g: Gains,
        scores: np.ndarray,
        members: list[int],
        req: MatchRequest,
        elig: Eligibility,
        standout: tuple[float, float] = (0.3, 0.3),
    ) -> Recommendation:
        """Reasons read from the same features and complementarity gains that scored the candidate."""
        h = self.history
        reasons = self._network_reasons(pos, f, members)
        known = any(r.code == "worked_with" for r in reasons)
        partner_of_partner = any(r.code == "partner_of_partner" for r in reasons)
        reasons += self._complement_reasons(pos, g, elig) + self._relevance_reasons(pos, f, standout)
        newcomer = bool(self.newcomer[pos])
        projects, coordinated = int(f.projects[pos]), int(f.coordinated[pos])
        if newcomer:
            reasons.append(Reason("newcomer", Text("new to the programme")))
        else:
            text = plural_text(
                "{n} past project, coordinated {coordinated}",
                "{n} past projects, coordinated {coordinated}",
                n=projects,
                coordinated=coordinated,
            )
            reasons.append(Reason("experience", text, {"projects": projects, "coordinated": coordinated}))
        with_it = self._check([*members, pos], req)
        score_ = round(float(scores[pos]), 4)
        return Recommendation(
            int(h.org_ids[pos]),
            self._name(pos),
            h.countries[pos] or None,
            str(h.sectors[pos]),
            score_,
            newcomer,
            known,
            partner_of_partner,
            projects,
            coordinated,
            reasons,
            with_it,
        )

    def _network_reasons(self, pos: int, f: Features, members: list[int]) -> list[Reason]:
        """A shared past project with a member (the most recent), else who could introduce it: the
        member's old partner it has worked with most closely, and in which project."""
        h = self.history
        for m in members if f.shared[pos] > 0 else []:
            pid = self._shared_project(pos, m)
            if pid is not None:
                title, year = self.projects.get(pid, (None, None))
                text = self._in_project("worked with {partner} in {project}{when}", title, year, partner=self._name(m))
                return [Reason("worked_with", text, {"partner_id": int(h.org_ids[m]), "project_id": pid})]
        best = self._introducer(pos, f, members)
        if best < 0:
            if f.two_hop[pos] > 0:
                return [Reason("partner_of_partner", Text("has worked with a partner of your consortium"))]
            return []
        pid = self._shared_project(pos, best)
        member = next((m for m in members if self._shared_project(best, m) is not None), members[0])
        title, year = self.projects.get(pid, (None, None)) if pid is not None else (None, None)
        text = self._in_project(
            "worked with {via} in {project}{when}, who has worked with {partner}",
            title,
            year,
            via=self._name(best),
            partner=self._name(member),
        )
        data = {"via_id": int(h.org_ids[best]), "project_id": pid, "partner_id": int(h.org_ids[member])}
        return [Reason("partner_of_partner", text, data)]

    def _complement_reasons(self, pos: int, g: Gains, elig: Eligibility) -> list[Reason]:
        out = []
        sector, country = str(self.history.sectors[pos]), self.history.countries[pos]
        if g.adds_sector(pos):
            wanted = g.adds_wanted_sector(pos)
            label = (
                Text("adds sector {sector} (wanted)", sector=sector)
                if wanted
                else Text("adds sector {sector}", sector=sector)
            )
            out.append(Reason("adds_sector", label, {"sector": sector, "wanted": wanted}))
        if g.adds_needed_country(pos):
            n = len(elig.programme_countries) + 1
            ordinal = {  # made when chosen: one Text, not four
                1: lambda: Text("adds {country} as the consortium's first programme country", country=country),
                2: lambda: Text("adds {country} as the consortium's second programme country", country=country),
                3: lambda: Text("adds {country} as the consortium's third programme country", country=country),
            }
            label = (
                ordinal[n]()
                if n in ordinal
                else Text("adds {country} as the consortium's programme country number {n}", country=country, n=n)
            )
            out.append(Reason("adds_country", label, {"country": country}))
        return out

    def _relevance_reasons(self, pos: int, f: Features, standout: tuple[float, float]) -> list[Reason]:
        best = best_project(self.history, f, pos) if f.text[pos] >= standout[0] else -1
        if best >= 0:
            pid = int(self.history.project_ids[best])
            title, year = self.projects.get(pid, (None, None))
            label = self._in_project('similar past project "{project}"{when}', title, year)
            return [Reason("similar_project", label, {"project_id": pid, "similarity": round(float(f.text[pos]), 3)})]
        if f.profile[pos] >= standout[1]:
            similarity = round(float(f.profile[pos]), 3)
            return [Reason("similar_profile", Text("its profile matches your idea"), {"similarity": similarity})]
        return []

    @staticmethod
    def _in_project(template: str, title: str | None, year: int | None, **params: Any) -> Text:
        """A sentence naming a past project, its year in brackets when known (``{when}``)."""
        return Text(template, project=title, when=f" ({year})" if year else "", **params)

    def _name(self, pos: int) -> str:
        org_id = int(self.history.org_ids[pos])
        return self.names.get(org_id) or f"organisation {org_id}"

    # -- consortia ------------------------------------------------------------------------
    def propose_consortia(self, req: MatchRequest, n: int = 3, max_added: int = 6) -> list[Consortium]:
        """Up to ``n`` alternative consortia, each eligible, covering wanted sectors, mixing known and new."""
        members = self.positions(req.members)
        f, base, elig0, g0 = self._score(req, members)
        pool = self.candidates(req, members)
        standout = self._standout(f, pool)
        used_first: set[int] = set()
        used: set[int] = set()  # organisations earlier proposals added: later ones try others
        out: list[Consortium] = []
        for _ in range(n):
            team = list(members)
            added: list[int] = []
            want_newcomer = req.newcomer_share > 0
            while len(added) < max_added:
                elig = self._check(team, req)
                covered = {str(self.history.sectors[p]) for p in team}
                covered |= {req.unregistered.sector} if req.unregistered else set()
                if (
                    elig.eligible
                    and set(req.sectors) <= covered
                    and (not want_newcomer or any(self.newcomer[p] for p in added))
                ):
                    break
                virtual = req.unregistered
                extra = [(virtual.country or "", virtual.sector)] if virtual else []
                g = gains(
                    self.countries,
                    self.sectors,
                    team,
                    req.sectors,
                    elig.countries_needed,
                    req.year,
                    extra,
                )
                s = base + g.bonus(self.complementarity) * 3
                choice = pool[~np.isin(pool, team) & ~np.isin(pool, list(used_first) if not added else [])]
                unused = choice[~np.isin(choice, sorted(used))]
                choice = unused if len(unused) else choice  # differ in more than the first pick
                if want_newcomer and not any(self.newcomer[p] for p in added) and len(added) >= 1:
                    fresh = choice[self.newcomer[choice]]
                    choice = fresh if len(fresh) else choice
                if len(choice) == 0:
                    break
                best = int(rank(s, choice, 1)[0])
                if not added:
                    used_first.add(best)
                added.append(best)
                team.append(best)
            elig = self._check(team, req)
            used.update(added)
            if not elig.eligible or not added:
                continue
            recs = [self._explain(p, f, g0, base, members, req, elig0, standout) for p in added]
            out.append(Consortium(recs, elig, sum(r.newcomer for r in recs), sum(r.known_partner for r in recs)))
        return out
