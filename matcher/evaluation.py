"""Offline evaluation on real consortia: how often is the partner a consortium really chose found?

Protocol (see README): hide non-coordinator members of each test project (one, with the other
members known: ``known="all"``; all of them, with the coordinator alone or nobody known:
``coordinator``, ``none``), query with the project's text, and rank every other organisation.
``time`` uses only projects that started before the test project's year; ``loo`` uses every other
project and scores repeat participants only.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from embeddings.encoders import Encoder, align
from matcher import importers, registry
from matcher.db import Database
from matcher.fairness import FairConfig
from matcher.indexing import fit_query_alignment
from matcher.newcomer import NewcomerRule
from matcher.ranker import FittedRanker, Query, RankerConfig, build_queries, project_texts
from matcher.ranking import (
    FeatureConfig,
    Features,
    History,
    ScoreConfig,
    fair_top,
    features,
    in_network,
    rank,
    score,
)

METHODS = (
    "random",
    "popularity",
    "country_popularity",
    "tfidf",
    "embedding",
    "matcher_default",
    "matcher_no_fairness",
    "matcher",
    "matcher_groups",
    "matcher_new_to_you",
)
CUTOFF = 1000
ATTENTION = 1.0 / np.log2(np.arange(2, 12))  # the attention a user gives ranks 1..10 (DCG discount)


@dataclass
class MethodResult:
    """Per (query, hidden member) pair: its rank, whether it is a newcomer and whether it is in the
    query's network (it had worked with the coordinator or a known member before); per query: the
    newcomer share of the top 10."""

    ranks: list[int] = field(default_factory=list)  # 0 when not in the top CUTOFF
    newcomer_flags: list[bool] = field(default_factory=list)
    network_flags: list[bool] = field(default_factory=list)
    pair_query: list[int] = field(default_factory=list)  # which query each pair belongs to
    exposure: list[float] = field(default_factory=list)  # share of newcomers in the top 10
    attention: list[float] = field(default_factory=list)  # their share of position-weighted (DCG) attention
    shown: set[int] = field(default_factory=set)

    def metrics(self, pool_size: int, with_exposure: bool) -> dict[str, Any]:
        ranks = np.array(self.ranks, dtype=np.int64)
        new = np.array(self.newcomer_flags, dtype=bool)
        net = np.array(self.network_flags, dtype=bool)
        query = np.array(self.pair_query, dtype=np.int64)

        def recall(sel: np.ndarray, k: int) -> float | None:
            """Share of the hidden members (in ``sel``) found in the top k; None, "–", for none."""
            return round(float(np.mean((ranks[sel] > 0) & (ranks[sel] <= k))), 4) if sel.any() else None

        def hit(sel: np.ndarray, k: int) -> float | None:
            """Share of queries (with a member in ``sel``) that find at least one of them in the top k."""
            if not sel.any():
                return None
            found = np.zeros(query.max() + 1, dtype=bool)
            found[query[sel & (ranks > 0) & (ranks <= k)]] = True
            return round(float(found[np.unique(query[sel])].mean()), 4)

        def mrr(sel: np.ndarray) -> float | None:
            r = ranks[sel]
            return round(float(np.mean(np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0))), 4) if sel.any() else None

        everyone = np.ones(len(ranks), dtype=bool)
        out: dict[str, Any] = {}
        for suffix, sel in (("", everyone), ("_network", net), ("_novel", ~net)):
            out[f"recall@10{suffix}"] = recall(sel, 10)
            out[f"recall@20{suffix}"] = recall(sel, 20)
            out[f"recall@50{suffix}"] = recall(sel, 50)
            out[f"hit@10{suffix}"] = hit(sel, 10)
            out[f"mrr@{CUTOFF}{suffix}"] = mrr(sel)
        return {
            **out,
            "recall@10_newcomer": recall(new, 10),
            "recall@10_repeat": recall(~new, 10),
            "hidden": len(ranks),
            "network": int(net.sum()),
            "novel": int((~net).sum()),
            "newcomers": int(new.sum()),
            "repeats": int((~new).sum()),
            "newcomer_exposure@10": round(float(np.mean(self.exposure)), 4) if with_exposure else None,
            "newcomer_attention@10": round(float(np.mean(self.attention)), 4) if with_exposure else None,
            "coverage@10": round(len(self.shown) / max(pool_size, 1), 4),
        }


def load_data(paths: Sequence[Path], db: Database, progress: bool) -> None:
    """Import the evaluation's data into a fresh database: any format ``partner-match import`` reads."""
    for path in paths:
        with db.session() as session:
            importers.import_path(session, Path(path), progress=progress)


def _rank_of(scores: np.ndarray, pool_mask: np.ndarray, target: int) -> int:
    """1-based rank of ``target`` among the pool, ties broken by position; 0 beyond CUTOFF."""
    s = scores[target]
    better = np.count_nonzero(pool_mask & (scores > s))
    if better >= CUTOFF:
        return 0
    tied_before = np.count_nonzero(pool_mask[:target] & (scores[:target] == s))
    r = better + tied_before + 1
    return int(r) if r <= CUTOFF else 0


@dataclass
class TfidfBaseline:
    """The TF-IDF baseline: project texts as sparse vectors, rows in History's project order."""

    vectorizer: Any
    matrix: sp.csr_matrix
    rows: np.ndarray  # project position -> row of ``matrix`` (-1: no text)

    def sims(self, text: str, n_projects: int) -> np.ndarray | None:
        if not text:
            return None
        q = self.vectorizer.transform([text])
        sims_rows = np.asarray((self.matrix @ q.T).todense()).ravel()
        sims = np.zeros(n_projects, dtype=np.float64)
        valid = self.rows >= 0
        sims[valid] = sims_rows[self.rows[valid]]
        return sims


@dataclass
class Setup:
    """Everything one evaluation run computes once: history, queries, texts, vectors, baselines."""

    protocol: str
    history: History
    ec: sp.csr_matrix
    queries: list[Query]
    train: list[Query]
    texts: list[str]
    config: FeatureConfig
    query_vectors: dict[int, np.ndarray] = field(default_factory=dict)
    tfidf: TfidfBaseline | None = None

    def mask_for(self, q: Query) -> np.ndarray:
        """Which projects count as history for ``q``: the past (time), or all but its own (loo)."""
        years = self.history.project_years
        if self.protocol == "time":
            return np.asarray((years >= 0) & (years < q.year))
        mask = np.ones(len(years), dtype=bool)
        mask[q.project] = False
        return mask

    def network_of(self, q: Query, mask: np.ndarray) -> np.ndarray:
        """For each target: had it worked with the coordinator or a known member in the history?"""
        inc = self.history.incidence
        team = sorted({q.coordinator, *q.known})
        projects = (np.asarray(inc[team].sum(axis=0)).ravel() > 0) & mask
        return np.asarray(inc[q.targets] @ projects.astype(np.float64)).ravel() > 0

    def features_for(self, q: Query) -> tuple[Features, np.ndarray, np.ndarray, np.ndarray]:
        """Features of every organisation for ``q``; with nobody known (``--known none``) the applicant
        is as an unregistered one: its country and sector only, and never its own suggestion."""
        h = self.history
        mask = self.mask_for(q)
        pool_mask = np.ones(len(h.org_ids), dtype=bool)
        pool_mask[q.known] = False
        virtual = [] if q.known else [(str(h.countries[q.coordinator]), str(h.sectors[q.coordinator]))]
        if virtual:
            pool_mask[q.coordinator] = False
        vector = self.query_vectors.get(q.project)
        f = features(h, q.known, mask, self.config, vector, ref_year=q.year, virtual=virtual)
        return f, mask, pool_mask, np.flatnonzero(pool_mask)


def _load(
    paths: Sequence[Path],
    protocol: str,
    test_from_year: int | None,
    limit: int | None,
    train_years: int,
    max_train: int,
    config: FeatureConfig,
    progress: bool,
    known: str = "all",
) -> Setup:
    with tempfile.TemporaryDirectory(prefix="partner-match-eval-") as tmp:
        db = Database(f"sqlite:///{tmp}/eval.sqlite").upgrade()
        load_data(paths, db, progress)
        with db.session() as session:
            history = History.from_db(session)
            ec_rows = registry.contributions(session)
        queries = build_queries(db, history, protocol, test_from_year, known=known)[: limit or None]
        train: list[Query] = []
        if protocol == "time" and test_from_year is not None:
            train = build_queries(
                db,
                history,
                "time",
                test_from_year - train_years,
                until_year=test_from_year,
                every_member=True,
                known=known,
            )
        elif protocol == "loo":
            train = build_queries(db, history, "loo", None, every_member=True, known=known)
        if len(train) > max_train:
            train = random.Random(0).sample(train, max_train)
        texts = project_texts(db, history)
        db.dispose()
    ec = sp.csr_matrix(
        (
            [e or 0.0 for _, _, e in ec_rows],
            ([history.org_position[o] for o, _, _ in ec_rows], [history.project_position[p] for _, p, _ in ec_rows]),
        ),
        shape=history.incidence.shape,
    )
    return Setup(protocol, history, ec, queries, train, texts, config)


def _tfidf(texts: list[str]) -> TfidfBaseline | None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    with_text = [i for i, t in enumerate(texts) if t]
    if not with_text:
        return None
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=1, stop_words="english")
    matrix = sp.csr_matrix(vectorizer.fit_transform([texts[i] for i in with_text]))
    rows = np.full(len(texts), -1)
    rows[with_text] = np.arange(len(with_text))
    return TfidfBaseline(vectorizer, matrix, rows)


def _encode(setup: Setup, encoder: Encoder, progress: bool) -> None:
    """Project vectors into the history and query vectors into the setup, each distinct text encoded once."""
    with_text = [i for i, t in enumerate(setup.texts) if t]
    if with_text:
        vectors = np.zeros((len(setup.texts), encoder.dimension), dtype=np.float32)
        unique = sorted({setup.texts[i] for i in with_text})
        encoded = encoder.encode_documents(unique, progress=progress)
        lookup = {t: encoded[j] for j, t in enumerate(unique)}
        for i in with_text:
            vectors[i] = lookup[setup.texts[i]]
        setup.history.project_vectors = vectors
    everything = setup.queries + setup.train
    texts_q = sorted({q.text for q in everything if q.text})
    if texts_q:
        fitted = fit_query_alignment(None, encoder, progress)  # the project's own ideas only, never the data's
        if fitted is not None:  # a multilingual model: ideas as the service encodes them (query prefix, aligned)
            enc = align(encoder.encode_queries(texts_q), fitted[0])
        else:  # one encoding for both (MiniLM has no prefixes); the documents' call sorts by length, faster
            enc = encoder.encode_documents(texts_q)
        by_text = {t: enc[j] for j, t in enumerate(texts_q)}
        setup.query_vectors = {q.project: by_text[q.text] for q in everything if q.text}


def _fit_rankers(
    setup: Setup, weights: ScoreConfig, ranker: RankerConfig | None, max_train: int, progress: bool
) -> tuple[dict[int, FittedRanker], dict[str, Any]]:
    """Rankers learnt only from consortia the protocol allows: before the test years (time), or the
    other half of the projects (loo, two-fold cross-fitting)."""
    if setup.protocol == "time":
        folds = {0: setup.train}
    else:
        folds = {k: [q for q in setup.train if _fold(q) != k] for k in (0, 1)}
        folds = {k: random.Random(k).sample(v, max_train) if len(v) > max_train else v for k, v in folds.items()}
    rankers: dict[int, FittedRanker] = {}
    kinds: dict[str, Any] = {}
    for key, train in folds.items():
        learner = FittedRanker(ranker)
        for q in tqdm(
            train, desc=f"fitting ranker ({len(train)} consortia)", unit=" queries", disable=not progress, leave=False
        ):
            f, _, _, pool = setup.features_for(q)
            order = q.year if setup.protocol == "time" else _fold(q, 1000) / 1000
            learner.add(f, score(f, weights), pool, q.hidden, order=order)
        try:
            kind = learner.fit(progress)
        except ValueError as too_few:  # too little history: the default scorer stands in, visibly
            kinds[f"fold{key}"] = {"kind": "default", "reason": str(too_few)}
            continue
        rankers[key] = learner
        kinds[f"fold{key}"] = {"kind": kind, "consortia": len(train), "validation_recall@10": learner.validation}
    return rankers, kinds


def _method_scores(
    method: str, setup: Setup, q: Query, f: Features, mask: np.ndarray, linear: np.ndarray, fitted: np.ndarray
) -> np.ndarray:
    """One method's score for every organisation on query ``q``."""
    h = setup.history
    if method == "random":
        return np.random.default_rng(_seed(q.identifier, "random")).random(len(h.org_ids))
    if method == "popularity":
        return f.projects.astype(np.float64)
    if method == "country_popularity":
        return _country_popularity(h, setup.ec, mask, q.coordinator)
    if method == "tfidf":
        sims = setup.tfidf.sims(q.text, len(h.project_ids)) if setup.tfidf is not None else None
        return _max_project_sim(h, mask, sims)
    if method == "embedding":
        return f.text.astype(np.float64)
    if method == "matcher_default":
        return linear
    if method in ("matcher_no_fairness", "matcher", "matcher_groups", "matcher_new_to_you"):
        return fitted
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def evaluate(
    paths: Sequence[Path],
    protocol: str = "time",
    test_from_year: int | None = None,
    encoder: Encoder | None = None,
    progress: bool = True,
    fair: FairConfig | None = None,
    config: FeatureConfig | None = None,
    weights: ScoreConfig | None = None,
    methods: Sequence[str] = METHODS,
    limit: int | None = None,
    train_years: int = 3,
    max_train: int = 8000,
    ranker: RankerConfig | None = None,
    rule: NewcomerRule | None = None,
    known: str = "all",
) -> dict[str, Any]:
    """Run every method on the protocol's queries and report their metrics side by side."""
    if protocol not in ("time", "loo"):
        raise ValueError(f"unknown protocol {protocol!r}; expected 'time' or 'loo'")
    if protocol == "time" and test_from_year is None:
        raise ValueError("--test-from-year is required for the time protocol")
    # CORDIS consortia hold no Erasmus+ project: a newcomer here is new to the loaded data
    fair, weights, rule = fair or FairConfig(), weights or ScoreConfig(), rule or NewcomerRule(programmes=None)
    setup = _load(
        paths, protocol, test_from_year, limit, train_years, max_train, config or FeatureConfig(), progress, known
    )
    if "tfidf" in methods:
        setup.tfidf = _tfidf(setup.texts)
    if encoder is not None:
        _encode(setup, encoder, progress)
    rankers: dict[int, FittedRanker] = {}
    kinds: dict[str, Any] = {}
    if {"matcher", "matcher_no_fairness"} & set(methods):
        rankers, kinds = _fit_rankers(setup, weights, ranker, max_train, progress)
    results = {m: MethodResult() for m in methods}
    for i, q in enumerate(tqdm(setup.queries, desc=f"evaluating ({protocol})", unit=" queries", disable=not progress)):
        f, mask, pool_mask, pool = setup.features_for(q)
        network = setup.network_of(q, mask)
        newcomer = rule.flags(f.projects)
        fold_ranker = rankers.get(0 if protocol == "time" else _fold(q))
        linear = score(f, weights)  # the service's own scorer
        fitted = fold_ranker.score(f, linear, pool) if fold_ranker is not None else linear
        # ties (e.g. all-zero text scores when a project has no text) are broken at random, per query
        jitter = np.random.default_rng(_seed(q.identifier)).random(len(setup.history.org_ids))
        tied = in_network(f)  # what the service shows "from your network"; the rest is "new to you"
        # the "new to you" group's scorer: a kept fitted ranker (it learns who joins beyond old partners),
        # else the discovery weights; as the service does
        kept = fold_ranker is not None and fold_ranker.kind == "lambdamart"
        found = (fitted if kept else score(f, weights, discovery=True)) + 1e-9 * jitter
        far = pool[~tied[pool]]
        fresh = far[:0]  # the "new to you" group as the service orders it (FA*IR within the group)
        if {"matcher_groups", "matcher_new_to_you"} & set(methods) and len(far):
            fresh = fair_top(rank(found, far, CUTOFF), newcomer, CUTOFF, fair, found, far)
        for method in methods:
            scores = _method_scores(method, setup, q, f, mask, linear, fitted) + 1e-9 * jitter
            ordered = None  # plain score order, counted without sorting the pool
            if method == "matcher":
                ordered = fair_top(rank(scores, pool, CUTOFF), newcomer, CUTOFF, fair, scores, pool)
            elif method == "matcher_groups":
                ordered = _groups_order(scores, pool, tied, fresh)
            elif method == "matcher_new_to_you":
                ordered = fresh
            _record(results[method], ordered, scores, pool, pool_mask, newcomer, q, network, i)
    return {
        "protocol": protocol,
        "known": known,
        "queries": len(setup.queries),
        "test_from_year": test_from_year,
        "data": [str(p) for p in paths],
        "ranker": kinds,
        "newcomer_rule": rule.describe(),
        "methods": {m: results[m].metrics(len(setup.history.org_ids), protocol == "time") for m in methods},
    }


def _groups_order(scores: np.ndarray, pool: np.ndarray, tied: np.ndarray, far: np.ndarray, per: int = 5) -> np.ndarray:
    """The service's two groups as one list a user reads: in every ten, the best ``per`` "from your
    network" (the matcher's order, ``scores``) then the "new to you" group's ``far`` (its own order,
    newcomer share held there); a group that runs out leaves its places to the other."""
    near = rank(scores, pool[tied[pool]], CUTOFF)
    out: list[int] = []
    a, b = near.tolist(), far.tolist()
    while (a or b) and len(out) < CUTOFF:
        take_a, take_b = a[:per], b[: 10 - per]
        a, b = a[per:], b[10 - per :]
        if len(take_a) < per:
            take_b += b[: per - len(take_a)]
            b = b[per - len(take_a) :]
        if len(take_b) < 10 - per:
            take_a += a[: 10 - per - len(take_b)]
            a = a[10 - per - len(take_b) :]
        out += take_a + take_b
    return np.array(out[:CUTOFF], dtype=np.int64)


def _record(
    res: MethodResult,
    ordered: np.ndarray | None,
    scores: np.ndarray,
    pool: np.ndarray,
    pool_mask: np.ndarray,
    newcomer: np.ndarray,
    q: Query,
    network: np.ndarray,
    index: int,
) -> None:
    """Each hidden member's rank and the top 10's newcomer share, in the ``ordered`` list a method shows
    (the matcher's FA*IR list, the groups' list) or, when None, in plain score order."""
    if ordered is not None:
        where = {int(p): r + 1 for r, p in enumerate(ordered.tolist())}
        ranks = [where.get(t, 0) for t in q.targets]
        top10 = ordered[:10]
    else:
        ranks = [_rank_of(scores, pool_mask, t) for t in q.targets]
        top10 = rank(scores, pool, 10)
    res.ranks.extend(ranks)
    res.newcomer_flags.extend(bool(newcomer[t]) for t in q.targets)
    res.network_flags.extend(bool(n) for n in network)
    res.pair_query.extend([index] * len(q.targets))
    res.exposure.append(float(np.mean(newcomer[top10])) if len(top10) else 0.0)
    res.attention.append(
        float(np.dot(newcomer[top10], ATTENTION[: len(top10)]) / ATTENTION[: len(top10)].sum()) if len(top10) else 0.0
    )
    res.shown.update(top10.tolist())


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
    return np.asarray(total + same * (total.max() + 1.0))


def _max_project_sim(history: History, mask: np.ndarray, sims: np.ndarray | None) -> np.ndarray:
    n = history.incidence.shape[0]
    if sims is None:
        return np.zeros(n)
    weighted = history.incidence.multiply((sims * mask)[None, :]).tocsr()
    return np.asarray(weighted.max(axis=1).toarray().ravel())


def format_table(report: dict[str, Any]) -> str:
    cols = (
        "recall@10",
        "recall@20",
        "hit@10",
        "mrr@1000",
        "recall@10_network",
        "recall@10_novel",
        "recall@10_newcomer",
        "recall@10_repeat",
        "newcomer_exposure@10",
        "newcomer_attention@10",
        "coverage@10",
    )
    first = next(iter(report["methods"].values()))
    rule = report.get("newcomer_rule", "no past project in the loaded data")
    lines = [
        f"protocol {report['protocol']}, known: {report.get('known', 'all')}, {report['queries']} queries, "
        f"{first['hidden']} hidden members ({first['network']} from the query's network, {first['novel']} novel; "
        f"{first['newcomers']} newcomers; newcomer: {rule})",
        "| method | " + " | ".join(cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for name, m in report["methods"].items():
        cells = ["–" if m[c] is None else f"{m[c]:.3f}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
