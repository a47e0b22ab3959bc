"""The recommendation pipeline: candidates -> features -> score -> newcomer-fair re-rank.

Each stage is a small component with a typed config. The network of past collaborations
is held as a sparse organisation x project incidence matrix, so that "which projects count
as history" is just a mask over projects: the evaluation hides a test project or the
future with it, the service uses everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session

from matcher.db import Organisation, Participation, Project
from matcher.fairness import FairConfig, fair_rerank
from matcher.profiles import project_year


@dataclass
class History:
    """Organisations, projects and who took part in what, as arrays for fast scoring."""

    org_ids: np.ndarray            # (n_orgs,) database ids, sorted
    countries: np.ndarray          # (n_orgs,) ISO codes or ""
    sectors: np.ndarray            # (n_orgs,) sector codes
    project_ids: np.ndarray        # (n_projects,)
    project_years: np.ndarray      # (n_projects,) year or -1 when unknown
    incidence: sp.csr_matrix       # (n_orgs, n_projects) 1 where the organisation took part
    coordinated: sp.csr_matrix     # same shape, 1 where it coordinated
    project_vectors: np.ndarray | None = None   # (n_projects, d) text embeddings, zero rows when no text
    org_position: dict[int, int] = field(default_factory=dict)
    project_position: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.org_position = {int(i): p for p, i in enumerate(self.org_ids.tolist())}
        self.project_position = {int(i): p for p, i in enumerate(self.project_ids.tolist())}
        self.incidence_t = self.incidence.T.tocsr()
        self.project_sizes = np.asarray(self.incidence.sum(axis=0)).ravel()

    @classmethod
    def from_db(cls, session: Session) -> History:
        orgs = session.execute(select(Organisation.id, Organisation.country, Organisation.sector)
                               .order_by(Organisation.id)).all()
        projects = session.execute(select(Project.id, project_year()).order_by(Project.id)).all()
        parts = session.execute(select(Participation.organisation_id, Participation.project_id,
                                       Participation.role)).all()
        org_ids = np.array([o[0] for o in orgs], dtype=np.int64)
        project_ids = np.array([p[0] for p in projects], dtype=np.int64)
        opos = {int(i): n for n, i in enumerate(org_ids.tolist())}
        ppos = {int(i): n for n, i in enumerate(project_ids.tolist())}
        rows = np.array([opos[p[0]] for p in parts], dtype=np.int64)
        cols = np.array([ppos[p[1]] for p in parts], dtype=np.int64)
        coord = np.array([p[2] == "coordinator" for p in parts])
        shape = (len(org_ids), len(project_ids))
        inc = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        cin = sp.csr_matrix((np.ones(int(coord.sum()), np.float32), (rows[coord], cols[coord])), shape=shape)
        return cls(org_ids, np.array([o[1] or "" for o in orgs]), np.array([o[2] or "other" for o in orgs]),
                   project_ids, np.array([int(p[1]) if p[1] is not None else -1 for p in projects]), inc, cin)


@dataclass(frozen=True)
class ScoreConfig:
    """Weights of the features; fitted defaults from the CORDIS evaluation (see README)."""

    direct: float = 1.0          # weighted ties to the known members
    two_hop: float = 0.15        # partners of partners
    same_country: float = 0.02   # share of known members in the candidate's country
    popularity: float = 0.01     # log past projects
    text: float = 0.05           # similarity of the idea to the best-matching past project
    profile: float = 0.05        # similarity of the idea to the organisation's profile
    coordinator: float = 0.0     # times as coordinator (raised when a coordinator is sought)
    shared_weight_power: float = 1.0  # a shared project of size s weighs 1/(s-1)**power


@dataclass
class Features:
    direct: np.ndarray
    two_hop: np.ndarray
    same_country: np.ndarray
    projects: np.ndarray
    coordinated: np.ndarray
    text: np.ndarray
    best_project: np.ndarray     # position of the best-matching past project, -1 when none
    profile: np.ndarray


def features(history: History, known: Sequence[int], project_mask: np.ndarray, config: ScoreConfig,
             query_vector: np.ndarray | None = None, profile_scores: np.ndarray | None = None) -> Features:
    """Per-organisation features for a consortium of ``known`` positions, history = ``project_mask``."""
    n = len(history.org_ids)
    sizes = history.project_sizes
    weight = np.where(sizes > 1, 1.0 / np.maximum(sizes - 1, 1) ** config.shared_weight_power, 0.0)
    weight = (weight * project_mask).astype(np.float32)
    inc, inc_t = history.incidence, history.incidence_t
    if known:
        u = np.asarray(inc[list(known)].sum(axis=0)).ravel()
        direct = inc @ (weight * u)
        two_hop = inc @ (weight * (inc_t @ direct))
        codes = [history.countries[k] for k in known if history.countries[k]]
        same = np.zeros(n, dtype=np.float32)
        if codes:
            values, counts = np.unique(codes, return_counts=True)
            lookup = dict(zip(values.tolist(), (counts / len(known)).tolist(), strict=True))
            same = np.array([lookup.get(c, 0.0) for c in history.countries.tolist()], dtype=np.float32)
    else:
        direct = two_hop = np.zeros(n, dtype=np.float32)
        same = np.zeros(n, dtype=np.float32)
    mask = project_mask.astype(np.float32)
    projects = inc @ mask
    coordinated = history.coordinated @ mask
    text = np.zeros(n, dtype=np.float32)
    best = np.full(n, -1, dtype=np.int64)
    if query_vector is not None and history.project_vectors is not None:
        sims = (history.project_vectors @ query_vector) * mask
        weighted = inc.multiply(sims[None, :]).tocsr()
        text = weighted.max(axis=1).toarray().ravel().astype(np.float32)
        best = np.asarray(weighted.argmax(axis=1)).ravel()
        best[text <= 0] = -1
    profile = profile_scores if profile_scores is not None else np.zeros(n, dtype=np.float32)
    return Features(np.asarray(direct), np.asarray(two_hop), same, projects, coordinated, text, best, profile)


def score(f: Features, config: ScoreConfig) -> np.ndarray:
    return (config.direct * np.log1p(10 * f.direct) + config.two_hop * np.log1p(10 * f.two_hop)
            + config.same_country * f.same_country + config.popularity * np.log1p(f.projects)
            + config.text * f.text + config.profile * f.profile
            + config.coordinator * np.log1p(f.coordinated))


def rank(scores: np.ndarray, candidates: np.ndarray, limit: int) -> np.ndarray:
    """Candidate positions by descending score (ties by position), at most ``limit``."""
    sub = scores[candidates]
    limit = min(limit, len(candidates))
    top = np.argpartition(-sub, limit - 1)[:limit] if limit < len(candidates) else np.arange(len(candidates))
    order = np.lexsort((candidates[top], -sub[top]))
    return candidates[top][order]


def fair_top(ranked: np.ndarray, newcomer: np.ndarray, k: int, fair: FairConfig,
             scores: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """FA*IR over the ranked list, drawing newcomers from the whole pool in score order."""
    if fair.share <= 0:
        return ranked[:k]
    pool_new = pool[newcomer[pool]]
    best_new = rank(scores, pool_new, k) if len(pool_new) else np.zeros(0, dtype=np.int64)
    merged = list(dict.fromkeys([*ranked[:k].tolist(), *best_new.tolist()]))
    merged.sort(key=lambda p: (-scores[p], p))
    flags = [bool(newcomer[p]) for p in merged]
    return np.array(fair_rerank(merged, flags, k, fair), dtype=np.int64)
