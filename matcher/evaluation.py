"""Offline evaluation on real consortia: how often is the partner a consortium really chose found?

Protocol (see README): hide one non-coordinator member of each test project, query with the
project's text, its coordinator as applicant and the other members as chosen partners, and
rank every other organisation. ``time`` uses only projects that started before the test
project's year; ``loo`` uses every other project and scores repeat participants only.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from embeddings.encoders import Encoder
from matcher import importers, registry
from matcher.db import Database
from matcher.fairness import FairConfig
from matcher.newcomer import NewcomerRule
from matcher.ranker import FittedRanker, Query, RankerConfig, build_queries, project_texts
from matcher.ranking import FeatureConfig, Features, History, ScoreConfig, fair_top, features, rank, score

METHODS = ("random", "popularity", "country_popularity", "tfidf", "embedding", "matcher_default", "matcher_no_fairness",
           "matcher")
CUTOFF = 1000


@dataclass
class MethodResult:
    ranks: list[int] = field(default_factory=list)        # 0 when not in the top CUTOFF
    newcomer_flags: list[bool] = field(default_factory=list)
    exposure: list[float] = field(default_factory=list)
    shown: set[int] = field(default_factory=set)

    def metrics(self, pool_size: int, with_exposure: bool) -> dict[str, Any]:
        ranks = np.array(self.ranks)
        new = np.array(self.newcomer_flags, dtype=bool)

        def recall(sel: np.ndarray, k: int) -> float:
            return float(np.mean((ranks[sel] > 0) & (ranks[sel] <= k))) if sel.any() else 0.0

        everyone = np.ones(len(ranks), dtype=bool)
        mrr = float(np.mean(np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0))) if len(ranks) else 0.0
        return {
            "recall@10": round(recall(everyone, 10), 4), "recall@50": round(recall(everyone, 50), 4),
            "mrr": round(mrr, 4), "recall@10_newcomer": round(recall(new, 10), 4),
            "recall@10_repeat": round(recall(~new, 10), 4), "newcomers": int(new.sum()),
            "repeats": int((~new).sum()),
            "newcomer_exposure@10": round(float(np.mean(self.exposure)), 4) if with_exposure else None,
            "coverage@10": round(len(self.shown) / max(pool_size, 1), 4),
        }


def load_data(paths: Sequence[Path], db: Database, progress: bool) -> None:
    """Import the evaluation's data into a fresh database (CORDIS layout)."""
    for path in paths:
        with db.session() as session:
            importers.import_path(session, Path(path), "cordis", progress=progress)


def _rank_of(scores: np.ndarray, pool_mask: np.ndarray, target: int) -> int:
    """1-based rank of ``target`` among the pool, ties broken by position; 0 beyond CUTOFF."""
    s = scores[target]
    better = np.count_nonzero(pool_mask & (scores > s))
    if better >= CUTOFF:
        return 0
    tied_before = np.count_nonzero(pool_mask[:target] & (scores[:target] == s))
    r = better + tied_before + 1
    return r if r <= CUTOFF else 0


def evaluate(paths: Sequence[Path], protocol: str = "time", test_from_year: int | None = None,
             encoder: Encoder | None = None, progress: bool = True, fair: FairConfig | None = None,
             config: FeatureConfig | None = None, weights: ScoreConfig | None = None,
             methods: Sequence[str] = METHODS, limit: int | None = None, train_years: int = 3,
             max_train: int = 8000, ranker: RankerConfig | None = None,
             rule: NewcomerRule | None = None) -> dict[str, Any]:
    if protocol not in ("time", "loo"):
        raise ValueError(f"unknown protocol {protocol!r}; expected 'time' or 'loo'")
    if protocol == "time" and test_from_year is None:
        raise ValueError("--test-from-year is required for the time protocol")
    fair = fair or FairConfig()
    config = config or FeatureConfig()
    weights = weights or ScoreConfig()
    rule = rule or NewcomerRule()
    with tempfile.TemporaryDirectory(prefix="partner-match-eval-") as tmp:
        db = Database(f"sqlite:///{tmp}/eval.sqlite").upgrade()
        load_data(paths, db, progress)
        with db.session() as session:
            history = History.from_db(session)
            ec_rows = registry.contributions(session)
        queries = build_queries(db, history, protocol, test_from_year)
        if limit:
            queries = queries[:limit]
        train_queries: list[Query] = []
        if protocol == "time" and test_from_year is not None:
            train_queries = build_queries(db, history, "time", test_from_year - train_years, until_year=test_from_year,
                                          every_member=True)
        elif protocol == "loo":
            train_queries = build_queries(db, history, "loo", None, every_member=True)
        if len(train_queries) > max_train:
            train_queries = random.Random(0).sample(train_queries, max_train)
        texts = project_texts(db, history)
        db.dispose()
    shape = history.incidence.shape
    ec = sp.csr_matrix(([e or 0.0 for _, _, e in ec_rows],
                        ([history.org_position[o] for o, _, _ in ec_rows],
                         [history.project_position[p] for _, p, _ in ec_rows])), shape=shape)

    with_text = [i for i, t in enumerate(texts) if t]
    tfidf_matrix = tfidf_vectorizer = None
    if "tfidf" in methods and with_text:
        from sklearn.feature_extraction.text import TfidfVectorizer

        tfidf_vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=1, stop_words="english")
        tfidf_matrix = sp.csr_matrix(tfidf_vectorizer.fit_transform([texts[i] for i in with_text]))
        order = np.full(shape[1], -1)
        order[with_text] = np.arange(len(with_text))
        tfidf_rows = order
    if encoder is not None and with_text:
        vectors = np.zeros((shape[1], encoder.dimension), dtype=np.float32)
        unique = sorted({texts[i] for i in with_text})
        encoded = encoder.encode_documents(unique, progress=progress)
        lookup = {t: encoded[j] for j, t in enumerate(unique)}
        for i in with_text:
            vectors[i] = lookup[texts[i]]
        history.project_vectors = vectors
    query_vectors: dict[int, np.ndarray] = {}
    if encoder is not None:
        everything = queries + train_queries
        texts_q = sorted({q.text for q in everything if q.text})
        if texts_q:
            enc = encoder.encode_documents(texts_q)
            by_text = {t: enc[j] for j, t in enumerate(texts_q)}
            query_vectors = {q.project: by_text[q.text] for q in everything if q.text}

    n = shape[0]
    years = history.project_years

    def mask_for(q: Query) -> np.ndarray:
        if protocol == "time":
            return (years >= 0) & (years < q.year)
        mask = np.ones(shape[1], dtype=bool)
        mask[q.project] = False
        return mask

    def features_for(q: Query, vector: np.ndarray | None) -> tuple[Features, np.ndarray, np.ndarray, np.ndarray]:
        mask = mask_for(q)
        pool_mask = np.ones(n, dtype=bool)
        pool_mask[q.known] = False
        f = features(history, q.known, mask, config, vector, ref_year=q.year)
        return f, mask, pool_mask, np.flatnonzero(pool_mask)

    # the fitted ranker learns only from consortia the protocol allows: before the test years (time),
    # or the other half of the projects (loo, two-fold cross-fitting)
    rankers: dict[int, FittedRanker] = {}
    fitted_kinds: dict[str, Any] = {}
    if {"matcher", "matcher_no_fairness"} & set(methods):
        if protocol == "time":
            folds = {0: train_queries}
        else:
            folds = {k: [q for q in train_queries if _fold(q) != k] for k in (0, 1)}
            for key in folds:
                if len(folds[key]) > max_train:
                    folds[key] = random.Random(key).sample(folds[key], max_train)
        for key, train in folds.items():
            learner = FittedRanker(ranker)
            for q in tqdm(train, desc=f"fitting ranker ({len(train)} consortia)", unit=" queries",
                          disable=not progress, leave=False):
                f, _, _, pool = features_for(q, query_vectors.get(q.project))
                learner.add(f, score(f, weights), pool, q.hidden,
                           order=q.year if protocol == "time" else _fold(q, 1000) / 1000)
            try:
                kind = learner.fit(progress)
            except ValueError as too_few:  # too little history: the default scorer stands in, visibly
                fitted_kinds[f"fold{key}"] = {"kind": "default", "reason": str(too_few)}
                continue
            rankers[key] = learner
            fitted_kinds[f"fold{key}"] = {"kind": kind, "consortia": len(train),
                                          "validation_recall@10": learner.validation}

    results = {m: MethodResult() for m in methods}
    iterator = tqdm(queries, desc=f"evaluating ({protocol})", unit=" queries", disable=not progress)
    for q in iterator:
        f, mask, pool_mask, pool = features_for(q, query_vectors.get(q.project))
        newcomer = rule.flags(f.projects)
        hidden_new = bool(newcomer[q.hidden])
        fold_ranker = rankers.get(0 if protocol == "time" else _fold(q))
        linear = score(f, weights)  # the service's own scorer
        fitted = fold_ranker.score(f, linear, pool) if fold_ranker is not None else linear
        per_method: dict[str, Callable[[], np.ndarray]] = {
            "random": lambda q=q: np.random.default_rng(_seed(q.identifier, "random")).random(n),
            "popularity": lambda f=f: f.projects.astype(np.float64),
            "country_popularity": lambda q=q, mask=mask: _country_popularity(history, ec, mask, q.known[0]),
            "tfidf": lambda q=q, mask=mask: _max_project_sim(history, mask, _tfidf_sims(
                tfidf_vectorizer, tfidf_matrix, tfidf_rows, q.text, shape[1]) if tfidf_matrix is not None else None),
            "embedding": lambda f=f: f.text.astype(np.float64),
            "matcher_default": lambda linear=linear: linear,
            "matcher_no_fairness": lambda fitted=fitted: fitted,
            "matcher": lambda fitted=fitted: fitted,
        }
        # ties (e.g. all-zero text scores when a project has no text) are broken at random, per query
        jitter = np.random.default_rng(_seed(q.identifier)).random(n)
        for method in methods:
            scores = per_method[method]() + 1e-9 * jitter
            res = results[method]
            if method == "matcher":
                top = rank(scores, pool, CUTOFF)
                fair_list = fair_top(top, newcomer, CUTOFF, fair, scores, pool)
                hit = np.flatnonzero(fair_list == q.hidden)
                res.ranks.append(int(hit[0]) + 1 if len(hit) else 0)
                top10 = fair_list[:10]
            else:
                res.ranks.append(_rank_of(scores, pool_mask, q.hidden))
                top10 = rank(scores, pool, 10)
            res.newcomer_flags.append(hidden_new)
            res.exposure.append(float(np.mean(newcomer[top10])) if len(top10) else 0.0)
            res.shown.update(top10.tolist())
    pool_size = n
    return {
        "protocol": protocol, "queries": len(queries), "test_from_year": test_from_year,
        "data": [str(p) for p in paths], "ranker": fitted_kinds, "newcomer_rule": rule.describe(),
        "methods": {m: results[m].metrics(pool_size, protocol == "time") for m in methods},
    }


def _seed(identifier: str, salt: str = "") -> int:
    """A per-query seed that is the same in every process (``hash`` of a str is not)."""
    return int(hashlib.sha256((salt + identifier).encode()).hexdigest()[:8], 16)


def _fold(q: Query, folds: int = 2) -> int:
    """A stable split of projects by identifier: cross-fitting folds in leave-one-out."""
    return int(hashlib.sha256(q.identifier.encode()).hexdigest(), 16) % folds


def _country_popularity(history: History, ec: sp.csr_matrix, mask: np.ndarray, applicant: int) -> np.ndarray:
    total = np.asarray(ec @ mask.astype(np.float64)).ravel()
    country = history.countries[applicant]
    same = (history.countries == country) if country else np.zeros(len(total), dtype=bool)
    return total + same * (total.max() + 1.0)


def _tfidf_sims(vectorizer, matrix, rows, text: str, n_projects: int) -> np.ndarray | None:  # type: ignore[no-untyped-def]
    if not text or vectorizer is None:
        return None
    q = vectorizer.transform([text])
    sims_rows = np.asarray((matrix @ q.T).todense()).ravel()
    sims = np.zeros(n_projects, dtype=np.float64)
    valid = rows >= 0
    sims[valid] = sims_rows[rows[valid]]
    return sims


def _max_project_sim(history: History, mask: np.ndarray, sims: np.ndarray | None) -> np.ndarray:
    n = history.incidence.shape[0]
    if sims is None:
        return np.zeros(n)
    weighted = history.incidence.multiply((sims * mask)[None, :]).tocsr()
    return weighted.max(axis=1).toarray().ravel()


def format_table(report: dict[str, Any]) -> str:
    cols = ("recall@10", "recall@50", "mrr", "recall@10_newcomer", "recall@10_repeat", "newcomer_exposure@10",
            "coverage@10")
    lines = [f"protocol {report['protocol']}, {report['queries']} queries "
             f"({next(iter(report['methods'].values()))['newcomers']} with a newcomer hidden)",
             "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, m in report["methods"].items():
        cells = ["–" if m[c] is None else f"{m[c]:.3f}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
