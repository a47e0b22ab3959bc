"""The recommendation pipeline: candidates -> features -> score -> newcomer-fair re-rank.

Each stage is a small component with a typed config. The network of past collaborations
is held as a sparse organisation x project incidence matrix, so that "which projects count
as history" is just a mask over projects: the evaluation hides a test project or the
future with it, the service uses everything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
        # integer codes make "share of the consortium in my country / sector" one bincount per query
        self.country_names, self.country_codes = np.unique(self.countries, return_inverse=True)
        self.sector_names, self.sector_codes = np.unique(self.sectors, return_inverse=True)

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


DEFAULT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("breadth", 2.0), ("same_country", 0.3), ("ties", 0.3), ("two_hop", 0.05), ("text", 2.0), ("profile", 1.5),
    ("overlap", 3.0),
)


@dataclass(frozen=True)
class ScoreConfig:
    """How features are made and weighed by the default linear scorer.

    The default weights were set by hand, comparing a few settings by recall@10 on CORDIS
    consortia: a consortium re-forming (overlap) and ties to several members (breadth) first,
    the idea's text next. A ranker fitted on past consortia (``FittedRanker``) replaces them
    where there is enough history to learn from.
    """

    shared_weight_power: float = 0.5   # a shared project of size s weighs 1/(s-1)**power
    recency_years: float = 2.0         # half-life-like decay of ties and activity, in years
    damping: float = 0.85              # personalised PageRank: chance of walking on rather than restarting
    walk_steps: int = 8                # power iterations of that walk (enough to settle the top of the ranking)
    weights: tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS
    coordinator_weight: float = 0.3    # added to the coordinator column when a coordinator is sought


FEATURES = ("breadth", "same_country", "ties", "shared_projects", "ties_small", "ties_recent", "projects",
            "recent_activity", "two_hop", "text", "profile", "coordinated", "overlap", "walk", "reunion",
            "reunion_any", "coordinator_ties", "overlap_recent", "adamic_adar", "same_sector", "coordinator_country",
            "tie_share", "consortium_size", "known_members")


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
    walk: np.ndarray             # personalised PageRank from the known members over past consortia
    reunion: np.ndarray          # largest share of a past consortium (with 2+ known members) now re-forming
    reunion_any: np.ndarray      # the same over any past consortium with a known member
    coordinator_ties: np.ndarray  # ties to the applicant itself, who usually picks the partners
    overlap_recent: np.ndarray   # overlap, recent consortia weighing more
    adamic_adar: np.ndarray      # shared projects weighted 1/log(size)
    same_sector: np.ndarray      # share of known members of the organisation's sector (complementarity's inverse)
    coordinator_country: np.ndarray  # in the applicant's country
    consortium_size: np.ndarray  # mean size of the organisation's past consortia
    n_known: int = 0

    def matrix(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The transformed feature columns (``FEATURES`` order) for ``rows`` (all when None)."""
        sel = slice(None) if rows is None else rows
        projects = self.projects[sel]
        return np.column_stack([
            np.log1p(self.breadth[sel]), self.same_country[sel], np.log1p(10 * self.direct[sel]),
            np.log1p(self.shared[sel]), np.log1p(10 * self.direct_small[sel]), np.log1p(10 * self.direct_recent[sel]),
            np.log1p(projects), np.log1p(self.recent_activity[sel]), np.log1p(10 * self.two_hop[sel]),
            self.text[sel], self.profile[sel], np.log1p(self.coordinated[sel]), np.log1p(self.overlap[sel]),
            np.log1p(1e3 * self.walk[sel]), self.reunion[sel], self.reunion_any[sel],
            np.log1p(10 * self.coordinator_ties[sel]), np.log1p(self.overlap_recent[sel]),
            np.log1p(self.adamic_adar[sel]), self.same_sector[sel], self.coordinator_country[sel],
            self.shared[sel] / np.maximum(projects, 1), np.log1p(self.consortium_size[sel]),
            np.full(len(projects), self.n_known),
        ]).astype(np.float32)


def _weights(history: History, mask: np.ndarray, power: float) -> np.ndarray:
    sizes = history.project_sizes
    return np.where(sizes > 1, 1.0 / np.maximum(sizes - 1, 1) ** power, 0.0) * mask


def _row_max(matrix: sp.csr_matrix, values: np.ndarray) -> np.ndarray:
    """Per row, the largest of ``values`` over the row's columns (0 for empty rows, never below 0)."""
    out = np.zeros(matrix.shape[0], dtype=np.float64)
    filled = np.diff(matrix.indptr) > 0
    if filled.any():
        out[filled] = np.maximum.reduceat(values[matrix.indices], matrix.indptr[:-1][filled])
    return np.maximum(out, 0.0)


def _share(codes: np.ndarray, known: Sequence[int]) -> np.ndarray:
    """For every organisation, the share of the known members with the same code."""
    counts = np.bincount(codes[list(known)], minlength=int(codes.max(initial=0)) + 1)
    return counts[codes] / len(known)


def walk(history: History, known: Sequence[int], mask: np.ndarray, damping: float, steps: int) -> np.ndarray:
    """Personalised PageRank over organisation -> past project -> organisation, restarting at the known members."""
    inc, inc_t = history.incidence, history.incidence_t
    org_degree = np.maximum(inc @ mask, 1.0)
    project_size = np.maximum(history.project_sizes * mask, 1.0)
    restart = np.zeros(inc.shape[0])
    restart[list(known)] = 1.0 / len(known)
    r = restart.copy()
    for _ in range(steps):
        r = (1 - damping) * restart + damping * (inc @ (mask * (inc_t @ (r / org_degree)) / project_size))
    return r


def features(history: History, known: Sequence[int], project_mask: np.ndarray, config: ScoreConfig,
             query_vector: np.ndarray | None = None, profile_scores: np.ndarray | None = None,
             ref_year: int | None = None) -> Features:
    """Per-organisation features for a consortium of ``known`` positions, history = ``project_mask``."""
    n = len(history.org_ids)
    inc, inc_t = history.incidence, history.incidence_t
    mask = project_mask.astype(np.float64)
    years = history.project_years
    sizes = history.project_sizes
    ref = ref_year if ref_year is not None else int(years[project_mask & (years >= 0)].max(initial=0)) + 1
    recency = np.where(years >= 0, np.exp(-np.maximum(ref - 1 - years, 0) / config.recency_years), 0.0) * mask
    zeros = np.zeros(n, dtype=np.float64)
    projects = inc @ mask
    if known:
        u = np.asarray(inc[list(known)].sum(axis=0)).ravel() * mask
        w = _weights(history, mask, config.shared_weight_power)
        direct = inc @ (w * u)
        shared = inc @ (_weights(history, mask, 0.0) * u)
        direct_small = inc @ (_weights(history, mask, 1.0) * u)
        direct_recent = inc @ (w * recency * u)
        two_hop = inc @ (w * (inc_t @ direct))
        overlap = _row_max(inc, u)
        overlap_recent = _row_max(inc, u * recency)
        share_known = np.where(sizes > 1, u / np.maximum(sizes - 1, 1), 0.0)
        reunion_any = _row_max(inc, share_known)
        reunion = _row_max(inc, np.where(u >= 2, share_known, 0.0))
        adamic_adar = inc @ (np.where(sizes > 1, 1.0 / np.log(np.maximum(sizes, 2)), 0.0) * mask * u)
        coordinator = np.zeros(inc.shape[1])
        coordinator[inc[known[0]].indices] = 1.0
        coordinator_ties = inc @ (w * coordinator)
        breadth = zeros.copy()
        for k in known:
            member = np.zeros(inc.shape[1])
            member[inc[k].indices] = 1.0
            breadth += (inc @ (member * mask)) > 0
        with_country = [k for k in known if history.countries[k]]
        same = _share(history.country_codes, with_country) * (history.countries != "") if with_country else zeros
        same = same * len(with_country) / len(known)
        same_sector = _share(history.sector_codes, known)
        coord_country = (history.country_codes == history.country_codes[known[0]]) & (history.countries != "")
        walked = walk(history, known, mask, config.damping, config.walk_steps)
    else:
        direct = shared = direct_small = direct_recent = two_hop = breadth = same = overlap = zeros
        overlap_recent = reunion = reunion_any = adamic_adar = coordinator_ties = same_sector = walked = zeros
        coord_country = np.zeros(n, dtype=bool)
    recent_activity = inc @ recency
    coordinated = history.coordinated @ mask
    consortium_size = (inc @ (sizes * mask)) / np.maximum(projects, 1)
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
                    coordinated, text, best, profile, overlap, walked, reunion, reunion_any, coordinator_ties,
                    overlap_recent, adamic_adar, same_sector, coord_country.astype(np.float64), consortium_size,
                    len(known))


def default_weights(config: ScoreConfig, seek_coordinator: bool = False) -> np.ndarray:
    weights = np.zeros(len(FEATURES), dtype=np.float32)
    for name, value in config.weights:
        weights[FEATURES.index(name)] = value
    if seek_coordinator:
        weights[FEATURES.index("coordinated")] += config.coordinator_weight
    return weights


def score(f: Features, config: ScoreConfig, seek_coordinator: bool = False) -> np.ndarray:
    """The default linear scorer: hand-set weights over the feature columns."""
    return f.matrix() @ default_weights(config, seek_coordinator)


@dataclass(frozen=True)
class RankerConfig:
    """The fitted ranker: LambdaMART (LightGBM) over the strongest candidates of the network walk."""

    candidates: int = 300          # re-ranked per query: the walk's best, plus the best by text and by profile
    learning_rate: float = 0.03
    trees: int = 500
    leaves: int = 15
    min_leaf: int = 50
    truncation: int = 30           # lambdarank attends to the top of each list, where users look
    seed: int = 0
    threads: int = 2


class FittedRanker:
    """A ranker fitted on past consortia, used only where it beats the default scorer.

    Each training consortium gives its hidden partner and the candidates the pipeline would
    re-rank (the walk's best, plus the best by text). LambdaMART learns to put the hidden
    partner first; on the latest fifth of the consortia (the future, as in use) its recall@10
    is compared with the default scorer's, and the better is kept. It learns only from what it
    is given, so the caller decides what is history: the evaluation gives only the past.
    """

    def __init__(self, config: RankerConfig | None = None) -> None:
        self.config = config or RankerConfig()
        # per consortium: candidate features, row of the hidden partner (-1: missed), its default rank
        self.groups: list[tuple[np.ndarray, int, int]] = []
        self.orders: list[float] = []
        self.kind: str | None = None
        self.model: Any = None
        self.validation: dict[str, float] = {}
        self.consortia = 0
        self.fitted_at: str | None = None
        self._rng = np.random.default_rng(self.config.seed)

    def candidates(self, f: Features, pool: np.ndarray) -> np.ndarray:
        k = self.config.candidates
        parts = [rank(f.walk, pool[f.walk[pool] > 0], k)]
        for relevance in (f.text, f.profile):
            related = pool[relevance[pool] > 0]
            if len(related):
                parts.append(rank(relevance, related, k // 3))
        return np.unique(np.concatenate(parts)).astype(np.int64)

    def add(self, f: Features, linear: np.ndarray, pool: np.ndarray, positive: int, order: float = 0.0) -> bool:
        """Add one consortium whose hidden partner is ``positive``; False when the candidates miss it.

        ``order`` (e.g. the year) decides validation: the latest fifth is held out."""
        cand = self.candidates(f, pool)
        hit = np.flatnonzero(cand == positive)
        default_rank = int(np.count_nonzero(linear[pool] > linear[positive])) + 1
        self.groups.append((f.matrix(cand), int(hit[0]) if len(hit) else -1, default_rank))
        self.orders.append(order + 1e-6 * float(self._rng.random()))
        return len(hit) > 0

    def _fit(self, groups: list[tuple[np.ndarray, int, int]], progress: bool, what: str) -> Any:
        import lightgbm
        from tqdm import tqdm

        c = self.config
        usable = [(x, p) for x, p, _ in groups if p >= 0 and len(x) > 1]
        labels = [np.eye(1, len(x), p, dtype=np.int8).ravel() for x, p in usable]
        model = lightgbm.LGBMRanker(
            objective="lambdarank", learning_rate=c.learning_rate, n_estimators=c.trees, num_leaves=c.leaves,
            min_child_samples=c.min_leaf, lambdarank_truncation_level=c.truncation, subsample=0.8,
            subsample_freq=1, colsample_bytree=0.8, random_state=c.seed, n_jobs=c.threads, deterministic=True,
            force_col_wise=True, verbose=-1)
        with tqdm(total=c.trees, desc=f"fitting LambdaMART ({what}, {len(usable)} consortia)", unit=" trees",
                  disable=not progress, leave=False) as bar:
            model.fit(np.vstack([x for x, _ in usable]), np.concatenate(labels),
                      group=[len(x) for x, _ in usable], callbacks=[lambda _env: bar.update(1)])
        return model.booster_

    @staticmethod
    def _model_recall(model: Any, groups: list[tuple[np.ndarray, int, int]], k: int = 10) -> float:
        hits = 0
        for x, p, _ in groups:
            if p >= 0:
                s = model.predict(x, num_threads=1)
                hits += int(np.sum(s > s[p])) < k
        return hits / max(len(groups), 1)

    def fit(self, progress: bool = False) -> str:
        """Fit on four fifths, compare with the default scorer on the last fifth, refit the winner on all."""
        usable = sum(p >= 0 for _, p, _ in self.groups)
        if usable < 50:
            raise ValueError(f"{usable} training consortia with the partner among the candidates are too few "
                             "to fit a ranker")
        order = np.argsort(self.orders, kind="stable")
        cut = int(len(order) * 0.8)
        train = [self.groups[i] for i in order[:cut]]
        held = [self.groups[i] for i in order[cut:]]
        model = self._fit(train, progress, "four fifths")
        self.validation = {"lambdamart": round(self._model_recall(model, held), 4),
                           "default": round(float(np.mean([r <= 10 for _, _, r in held])), 4)}
        self.kind = "lambdamart" if self.validation["lambdamart"] > self.validation["default"] else "default"
        self.consortia = len(self.groups)
        if self.kind == "lambdamart":
            self.model = self._fit(self.groups, progress, "all")
        self.groups, self.orders = [], []
        return self.kind

    def save(self, directory: Path) -> None:
        """Write the model and what it was fitted on; a new file replaces the old one atomically."""
        if self.kind is None:
            raise ValueError("the ranker has not been fitted")
        directory.mkdir(parents=True, exist_ok=True)
        if self.model is not None:
            self.model.save_model(str(directory / "model.txt.tmp"))
            os.replace(directory / "model.txt.tmp", directory / "model.txt")
        else:  # the default won: no model of an earlier fit may linger
            (directory / "model.txt").unlink(missing_ok=True)
        meta = {"kind": self.kind, "features": list(FEATURES), "validation_recall@10": self.validation,
                "consortia": self.consortia, "config": asdict(self.config),
                "fitted_at": datetime.now(UTC).isoformat(timespec="seconds")}
        (directory / "ranker.json.tmp").write_text(json.dumps(meta, indent=2))
        os.replace(directory / "ranker.json.tmp", directory / "ranker.json")

    @classmethod
    def load(cls, directory: Path) -> FittedRanker:
        """A saved ranker; refuses one fitted on other feature columns than this version computes."""
        import lightgbm

        meta = json.loads((directory / "ranker.json").read_text())
        if meta.get("features") != list(FEATURES):
            raise ValueError(f"the ranker in {directory} was fitted on other features than this version computes; "
                             "fit it again with `partner-match ranker fit`")
        ranker = cls(RankerConfig(**meta["config"]))
        ranker.kind, ranker.validation, ranker.consortia = meta["kind"], meta["validation_recall@10"], meta["consortia"]
        ranker.fitted_at = meta.get("fitted_at")
        if ranker.kind == "lambdamart":
            ranker.model = lightgbm.Booster(model_file=str(directory / "model.txt"))
        return ranker

    def score(self, f: Features, linear: np.ndarray, pool: np.ndarray,
              added_weights: np.ndarray | None = None) -> np.ndarray:
        """Model scores for the candidates it re-ranks; everyone else below them, in the default order.

        ``added_weights`` (over ``FEATURES``) adds a linear term to the candidates' model scores:
        the service keeps the idea's text at its default weight this way."""
        if self.kind is None:
            raise ValueError("the ranker has not been fitted")
        if self.kind == "default":
            return linear
        cand = self.candidates(f, pool)
        out = linear - linear.max() - 10.0
        if len(cand):
            x = f.matrix(cand)
            model = self.model.predict(x, num_threads=1)
            out[cand] = model - model.min() + 1.0 + (x @ added_weights if added_weights is not None else 0.0)
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
