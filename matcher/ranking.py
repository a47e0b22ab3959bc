"""The recommendation pipeline: candidates -> features -> score -> newcomer-fair re-rank.

Each stage is a small component with a typed config. The network of past collaborations
is held as a sparse organisation x project incidence matrix, so that "which projects count
as history" is just a mask over projects: the evaluation hides a test project or the
future with it, the service uses everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits

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
    """How features are made and weighed by the linear scorer.

    The network weights were fitted (logistic regression) on CORDIS consortia that started
    before 2020 and are the service's defaults; ``evaluate`` fits its own ranker per run.
    """

    shared_weight_power: float = 0.5   # a shared project of size s weighs 1/(s-1)**power
    recency_years: float = 2.0         # half-life-like decay of ties and activity, in years
    # set by hand from a few settings compared by recall@10 on CORDIS consortia: consortia re-forming
    # (overlap) and ties to several members (breadth) first, the idea's text next; the evaluation fits
    # its own ranker on past consortia and uses these only to order what that ranker does not score
    weights: tuple[float, ...] = (2.0, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 2.0, 1.5, 0.0, 3.0)
    coordinator_weight: float = 0.3    # added to the coordinator column when a coordinator is sought


FEATURES = ("breadth", "same_country", "ties", "shared_projects", "ties_small", "ties_recent", "projects",
            "recent_activity", "two_hop", "text", "profile", "coordinated", "overlap")


@dataclass
class Features:
    breadth: np.ndarray          # how many known members the organisation has worked with
    direct: np.ndarray           # shared projects with known members, small consortia weigh more
    shared: np.ndarray           # plain count of shared projects with known members
    direct_small: np.ndarray     # shared projects weighted 1/(s-1): small consortia weigh much more
    direct_recent: np.ndarray    # ties, recent ones weighing more
    two_hop: np.ndarray          # partners of partners
    same_country: np.ndarray     # share of known members in the organisation's country
    projects: np.ndarray         # past projects (the history mask applied)
    recent_activity: np.ndarray  # past projects, recent ones weighing more
    coordinated: np.ndarray
    text: np.ndarray             # similarity of the idea to the best-matching past project
    best_project: np.ndarray     # position of that project, -1 when none
    profile: np.ndarray          # similarity of the idea to the organisation's profile
    overlap: np.ndarray          # most known members met in one past project: a consortium re-forming
    n_known: int = 0

    def matrix(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The transformed feature columns (``FEATURES`` order) for ``rows`` (all when None)."""
        sel = slice(None) if rows is None else rows
        return np.column_stack([
            np.log1p(self.breadth[sel]), self.same_country[sel], np.log1p(10 * self.direct[sel]),
            np.log1p(self.shared[sel]), np.log1p(10 * self.direct_small[sel]), np.log1p(10 * self.direct_recent[sel]),
            np.log1p(self.projects[sel]), np.log1p(self.recent_activity[sel]), np.log1p(10 * self.two_hop[sel]),
            self.text[sel], self.profile[sel], np.log1p(self.coordinated[sel]), np.log1p(self.overlap[sel]),
        ]).astype(np.float32)


def _weights(history: History, mask: np.ndarray, power: float) -> np.ndarray:
    sizes = history.project_sizes
    return np.where(sizes > 1, 1.0 / np.maximum(sizes - 1, 1) ** power, 0.0) * mask


def features(history: History, known: Sequence[int], project_mask: np.ndarray, config: ScoreConfig,
             query_vector: np.ndarray | None = None, profile_scores: np.ndarray | None = None,
             ref_year: int | None = None) -> Features:
    """Per-organisation features for a consortium of ``known`` positions, history = ``project_mask``."""
    n = len(history.org_ids)
    inc, inc_t = history.incidence, history.incidence_t
    mask = project_mask.astype(np.float64)
    years = history.project_years
    ref = ref_year if ref_year is not None else int(years[project_mask & (years >= 0)].max(initial=0)) + 1
    recency = np.where(years >= 0, np.exp(-np.maximum(ref - 1 - years, 0) / config.recency_years), 0.0) * mask
    zeros = np.zeros(n, dtype=np.float64)
    if known:
        u = np.asarray(inc[list(known)].sum(axis=0)).ravel()
        w = _weights(history, mask, config.shared_weight_power)
        direct = inc @ (w * u)
        shared = inc @ (_weights(history, mask, 0.0) * u)
        direct_small = inc @ (_weights(history, mask, 1.0) * u)
        direct_recent = inc @ (w * recency * u)
        two_hop = inc @ (w * (inc_t @ direct))
        overlap = inc.multiply((u * mask)[None, :]).tocsr().max(axis=1).toarray().ravel()
        breadth = zeros.copy()
        for k in known:
            member = np.zeros(inc.shape[1])
            member[inc[k].indices] = 1.0
            breadth += (inc @ (member * mask)) > 0
        codes = [history.countries[k] for k in known if history.countries[k]]
        same = zeros.copy()
        if codes:
            values, counts = np.unique(codes, return_counts=True)
            lookup = dict(zip(values.tolist(), (counts / len(known)).tolist(), strict=True))
            same = np.array([lookup.get(c, 0.0) for c in history.countries.tolist()])
    else:
        direct = shared = direct_small = direct_recent = two_hop = breadth = same = overlap = zeros
    projects = inc @ mask
    recent_activity = inc @ recency
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
    return Features(breadth, direct, shared, direct_small, direct_recent, two_hop, same, projects, recent_activity,
                    coordinated, text, best, profile, overlap, len(known))


def score(f: Features, config: ScoreConfig, seek_coordinator: bool = False) -> np.ndarray:
    """The linear scorer: fitted weights over the feature columns."""
    weights = np.array(config.weights, dtype=np.float32)
    if seek_coordinator:
        weights[FEATURES.index("coordinated")] += config.coordinator_weight
    return f.matrix() @ weights


class FittedRanker:
    """A ranker fitted on past consortia: a listwise linear model or gradient-boosted trees,
    whichever finds more hidden partners on a held-out fifth of the training consortia.

    Each training consortium gives its hidden partner and a sample of the candidates the
    pipeline would show (everyone tied to the consortium, strong partners of partners, the
    default scorer's best). It learns only from what it is given, so the caller decides what
    is history: the evaluation gives only consortia before the test years.
    """

    def __init__(self, negatives: int = 1500, tree_negatives: int = 400, l2: float = 1e-3, seed: int = 0,
                 candidates: int = 1500, kinds: tuple[str, ...] = ("linear", "trees")) -> None:
        self.kinds = kinds
        self.negatives = negatives
        self.tree_negatives = tree_negatives
        self.l2 = l2
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.n_candidates = candidates
        self.groups: list[np.ndarray] = []
        self.orders: list[float] = []
        self.kind: str | None = None
        self.weights: np.ndarray | None = None
        self.trees: Any = None
        self.validation: dict[str, float] = {}

    def candidates(self, f: Features, linear: np.ndarray, pool: np.ndarray) -> np.ndarray:
        tied = pool[f.direct[pool] > 0]
        near = rank(f.two_hop, pool, self.n_candidates)
        best = rank(linear, pool, self.n_candidates // 3)
        return np.unique(np.concatenate([tied, near, best]))

    def add(self, f: Features, linear: np.ndarray, pool: np.ndarray, positive: int, order: float = 0.0) -> bool:
        """Add one consortium whose hidden partner is ``positive``; False when it teaches nothing.

        ``order`` (e.g. the year) decides validation: the latest fifth of the consortia is held
        out, as the future is when the ranker will be used."""
        cand = self.candidates(f, linear, pool)
        negatives = cand[cand != positive]
        if len(negatives) == 0:
            return False
        if len(negatives) > self.negatives:
            negatives = self.rng.choice(negatives, self.negatives, replace=False)
        rows = np.concatenate([[positive], negatives]).astype(np.int64)
        self.groups.append(self._x(f, linear, rows).astype(np.float32))
        self.orders.append(order + 1e-6 * float(self.rng.random()))
        return True

    @staticmethod
    def _x(f: Features, linear: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The features plus the default score, which the fitted model may lean on."""
        return np.column_stack([f.matrix(rows), linear[rows].astype(np.float32)])

    def _fit_linear(self, groups: list[np.ndarray]) -> np.ndarray:
        from scipy.optimize import minimize

        stacked = np.vstack(groups).astype(np.float64)
        mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
        standard = [(g - mean) / std for g in groups]
        dim = stacked.shape[1]

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            total, grad = 0.0, np.zeros(dim)
            for g in standard:
                s = g @ w
                top = s.max()
                e = np.exp(s - top)
                z = e.sum()
                total -= s[0] - top - np.log(z)
                grad -= g[0] - (e / z) @ g
            n = len(standard)
            return total / n + self.l2 * float(w @ w), grad / n + 2 * self.l2 * w

        result = minimize(loss, np.zeros(dim), jac=True, method="L-BFGS-B", options={"maxiter": 300})
        return (result.x / std).astype(np.float32)

    def _fit_trees(self, groups: list[np.ndarray]) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        xs, ys = [], []
        for g in groups:
            keep = np.concatenate([[0], 1 + self.rng.permutation(len(g) - 1)[: self.tree_negatives]])
            xs.append(g[keep])
            ys.append(np.eye(1, len(keep), 0, dtype=np.int8).ravel())
        model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15,
                                               min_samples_leaf=50, random_state=self.seed)
        return model.fit(np.vstack(xs), np.concatenate(ys))

    @staticmethod
    def _recall(groups: list[np.ndarray], scorer: Any, k: int = 10) -> float:
        hits = 0
        for g in groups:
            s = scorer(g)
            hits += int(np.sum(s > s[0])) < k
        return hits / max(len(groups), 1)

    def fit(self) -> str:
        """Fit both models on four fifths, keep the better on the last fifth, refit it on all."""
        if len(self.groups) < 10:
            raise ValueError(f"{len(self.groups)} training consortia are too few to fit a ranker")
        order = np.argsort(self.orders, kind="stable")
        cut = int(len(order) * 0.8)
        train = [self.groups[i] for i in order[:cut]]
        held = [self.groups[i] for i in order[cut:]]
        if "linear" in self.kinds:
            weights = self._fit_linear(train)
            self.validation["linear"] = self._recall(held, lambda g: g @ weights)
        if "trees" in self.kinds:
            trees = self._fit_trees(train)
            self.validation["trees"] = self._recall(held, lambda g: trees.predict_proba(g)[:, 1])
        self.kind = max(self.validation, key=lambda name: (self.validation[name], name == "linear"))
        if self.kind == "linear":
            self.weights = self._fit_linear(self.groups)
        else:
            self.trees = self._fit_trees(self.groups)
        self.groups, self.orders = [], []
        return self.kind

    def score(self, f: Features, linear: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """Model scores for the candidates it was trained to separate; everyone else below them,
        in the default linear order (the model never saw such organisations)."""
        if self.kind is None:
            raise ValueError("the ranker has not been fitted")
        cand = self.candidates(f, linear, pool)
        out = linear - linear.max() - 10.0
        if len(cand):
            x = self._x(f, linear, cand)
            if self.kind == "linear" and self.weights is not None:
                model = x @ self.weights
                out[cand] = model - model.min() + 1.0
            else:
                with threadpool_limits(1):  # many small predictions: OpenMP threads only contend
                    out[cand] = self.trees.predict_proba(x)[:, 1] + 1.0
        return out


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
