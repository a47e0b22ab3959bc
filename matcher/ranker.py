"""The fitted ranker: training examples from past consortia, LambdaMART, and where it is kept.

Training lives here, not in the evaluation: the service's ``partner-match ranker fit`` and
the offline evaluation both build examples with ``build_queries`` and fit ``FittedRanker``;
``RankerStore`` alone knows the files a fitted ranker is saved in.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from matcher import registry
from matcher.db import Database
from matcher.ranking import (
    FEATURES,
    FeatureConfig,
    Features,
    History,
    ScoreConfig,
    features,
    project_matrix,
    rank,
    score,
)


@dataclass(frozen=True)
class RankerConfig:
    """The fitted ranker: LambdaMART (LightGBM) over the strongest candidates of the network walk."""

    candidates: int = 300  # re-ranked per query: the walk's best, plus the best by text and by profile
    learning_rate: float = 0.03
    trees: int = 500
    leaves: int = 15
    min_leaf: int = 50
    truncation: int = 30  # lambdarank attends to the top of each list, where users look
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
        # the model whose project vectors gave the text column in training (None: no text was learnt,
        # the service adds the idea's text at its default weight instead)
        self.text_model: str | None = None
        self._rng = np.random.default_rng(self.config.seed)

    def candidates(self, f: Features, pool: np.ndarray) -> np.ndarray:
        """The walk's best, and the best by text and by profile: every organisation at or above the
        last one's value, so equals (the members of one past project often share a walk value) are
        all in or all out, never cut by their order in the registry."""
        k = self.config.candidates
        parts = []
        for values, n in ((f.walk, k), (f.text, k // 3), (f.profile, k // 3)):
            related = pool[values[pool] > 0]
            best = rank(values, related, n)
            if n and len(best) == n:
                best = related[values[related] >= values[best[-1]]]
            parts.append(best)
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
            objective="lambdarank",
            learning_rate=c.learning_rate,
            n_estimators=c.trees,
            num_leaves=c.leaves,
            min_child_samples=c.min_leaf,
            lambdarank_truncation_level=c.truncation,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=c.seed,
            n_jobs=c.threads,
            deterministic=True,
            force_col_wise=True,
            verbose=-1,
        )
        with tqdm(
            total=c.trees,
            desc=f"fitting LambdaMART ({what}, {len(usable)} consortia)",
            unit=" trees",
            disable=not progress,
            leave=False,
        ) as bar:
            model.fit(
                np.vstack([x for x, _ in usable]),
                np.concatenate(labels),
                group=[len(x) for x, _ in usable],
                callbacks=[lambda _env: bar.update(1)],
            )
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
            raise ValueError(
                f"{usable} training consortia with the partner among the candidates are too few to fit a ranker"
            )
        order = np.argsort(self.orders, kind="stable")
        cut = int(len(order) * 0.8)
        train = [self.groups[i] for i in order[:cut]]
        held = [self.groups[i] for i in order[cut:]]
        model = self._fit(train, progress, "four fifths")
        self.validation = {
            "lambdamart": round(self._model_recall(model, held), 4),
            "default": round(float(np.mean([r <= 10 for _, _, r in held])), 4),
        }
        self.kind = "lambdamart" if self.validation["lambdamart"] > self.validation["default"] else "default"
        self.consortia = len(self.groups)
        if self.kind == "lambdamart":
            self.model = self._fit(self.groups, progress, "all")
        self.groups, self.orders = [], []
        return self.kind

    def score(
        self, f: Features, linear: np.ndarray, pool: np.ndarray, added_weights: np.ndarray | None = None
    ) -> np.ndarray:
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
        return np.asarray(out)


class RankerStore:
    """A folder holding at most one fitted ranker: ``ranker.json`` (what it is) and ``model.txt``.

    Files are replaced atomically, so a serving process reads the old ranker or the new one.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.meta = self.directory / "ranker.json"
        self.model = self.directory / "model.txt"

    def stamp(self) -> float | None:
        """When the saved ranker last changed (None: none saved): a cheap staleness check."""
        try:
            return self.meta.stat().st_mtime
        except FileNotFoundError:
            return None

    def save(self, ranker: FittedRanker) -> None:
        """Write the model and what it was fitted on; a new file replaces the old one atomically."""
        if ranker.kind is None:
            raise ValueError("the ranker has not been fitted")
        self.directory.mkdir(parents=True, exist_ok=True)
        if ranker.model is not None:
            ranker.model.save_model(str(self.model) + ".tmp")
            os.replace(str(self.model) + ".tmp", self.model)
        else:  # the default won: no model of an earlier fit may linger
            self.model.unlink(missing_ok=True)
        meta = {
            "kind": ranker.kind,
            "features": list(FEATURES),
            "validation_recall@10": ranker.validation,
            "consortia": ranker.consortia,
            "text_model": ranker.text_model,
            "config": asdict(ranker.config),
            "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp = self.directory / "ranker.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, self.meta)

    def load(self, model_id: str | None = None) -> FittedRanker | None:
        """The saved ranker, None when there is none; ValueError for one fitted on other feature columns
        or on the text of another model than ``model_id`` (its similarities are on another scale)."""
        import lightgbm

        if self.stamp() is None:
            return None
        meta = json.loads(self.meta.read_text())
        if meta.get("features") != list(FEATURES):
            raise ValueError(
                "the saved ranker was fitted on other features than this version computes; "
                "fit it again with `partner-match ranker fit`"
            )
        ranker = FittedRanker(RankerConfig(**meta["config"]))
        ranker.kind, ranker.validation, ranker.consortia = meta["kind"], meta["validation_recall@10"], meta["consortia"]
        ranker.fitted_at, ranker.text_model = meta.get("fitted_at"), meta.get("text_model")
        if ranker.text_model is not None and ranker.text_model != model_id:
            raise ValueError(
                f"the saved ranker learnt the idea's text with {ranker.text_model!r}, but the service embeds with "
                f"{model_id!r}; fit it again with `partner-match ranker fit`"
            )
        if ranker.kind == "lambdamart":
            ranker.model = lightgbm.Booster(model_file=str(self.model))
        return ranker

    def remove(self) -> bool:
        """Forget the saved ranker (the default scorer serves again); False when there was none."""
        removed = [p for p in (self.meta, self.model) if p.exists()]
        for p in removed:
            p.unlink()
        return bool(removed)


KNOWN_MODES = ("all", "coordinator", "none")


@dataclass
class Query:
    """One consortium with members hidden: what a query knows, and whom it should find.

    ``known`` is what the query is told: every other member (``all``), the coordinator alone
    (``coordinator``, the question a coordinator with an idea brings) or nobody (``none``: an
    unregistered applicant with an idea). ``targets`` are the hidden members to find; ``hidden`` is
    the first of them, the one a ranker is trained to put first."""

    project: int  # position in History
    identifier: str
    year: int
    text: str
    known: list[int]  # positions: coordinator first
    hidden: int
    targets: list[int] = field(default_factory=list)
    coordinator: int = -1  # position of the real coordinator (the applicant), known or not

    def __post_init__(self) -> None:
        self.targets = self.targets or [self.hidden]
        if self.coordinator < 0:
            self.coordinator = self.known[0] if self.known else self.hidden


def project_texts(db: Database, history: History) -> list[str]:
    """Project texts in History order (empty where a project has none)."""
    with db.session() as session:
        by_id = registry.project_texts(session)
    texts = [""] * len(history.project_ids)
    for pid, text in by_id.items():
        texts[history.project_position[pid]] = text
    return texts


def build_queries(
    db: Database,
    history: History,
    protocol: str,
    test_from_year: int | None,
    until_year: int | None = None,
    every_member: bool = False,
    known: str = "all",
) -> list[Query]:
    """Queries for projects starting from ``test_from_year`` (time; before ``until_year`` if given) or all (loo).

    ``known="all"`` hides one non-coordinator member (each in turn with ``every_member``, for
    training); ``coordinator`` and ``none`` hide every non-coordinator member at once (each a target),
    telling the query the coordinator alone or nobody."""
    if known not in KNOWN_MODES:
        raise ValueError(f"unknown --known {known!r}; expected one of {', '.join(KNOWN_MODES)}")
    with db.session() as session:
        members, identifiers, pics = registry.consortia(session)
    texts = project_texts(db, history)
    pos = history.org_position
    queries = []
    for pid in sorted(members, key=lambda p: identifiers[p]):
        team = members[pid]
        coordinators = [o for o, r in team if r == "coordinator"]
        if not 3 <= len(team) <= 20 or len(coordinators) != 1:
            continue
        ppos = history.project_position[pid]
        year = int(history.project_years[ppos])
        if protocol == "time" and (year < 0 or test_from_year is None or year < test_from_year):
            continue
        if until_year is not None and year >= until_year:
            continue
        ident = identifiers[pid]
        seed: int | str = int(ident) if ident.isdigit() else ident
        others = sorted((o for o, r in team if r != "coordinator"), key=lambda o: _pic_key(pics.get(o), o))
        if protocol == "loo":  # a hidden member with no other project would give the answer away
            others_ok = [o for o in others if history.incidence[pos[o]].nnz >= 2]
        else:
            others_ok = others
        coordinator = pos[coordinators[0]]
        if known != "all" and not every_member:
            if others_ok:
                told = [coordinator] if known == "coordinator" else []
                targets = [pos[o] for o in others_ok]
                queries.append(Query(ppos, ident, year, texts[ppos], told, targets[0], targets, coordinator))
            continue
        # the test protocol hides one member; training may hide each member in turn
        for hidden in others if every_member else [random.Random(seed).choice(others)]:
            if hidden not in others_ok:
                continue
            told = [coordinators[0]] + [o for o in others if o != hidden] if known == "all" else [coordinators[0]]
            told_pos = [pos[o] for o in told] if known != "none" else []
            queries.append(Query(ppos, ident, year, texts[ppos], told_pos, pos[hidden], [], coordinator))
    return queries


def _pic_key(pic: str | None, fallback: int) -> tuple[int, str]:
    return (0, f"{int(pic):015d}") if pic and pic.isdigit() else (1, f"{fallback:015d}")


def fit_ranker(
    db: Database,
    years: int = 3,
    max_consortia: int = 8000,
    progress: bool = True,
    config: FeatureConfig | None = None,
    weights: ScoreConfig | None = None,
    ranker: RankerConfig | None = None,
    model_id: str | None = None,
    encode_ideas: Callable[[list[str]], np.ndarray] | None = None,
) -> FittedRanker:
    """A ranker for the service, fitted on the registry's own consortia of the latest ``years``.

    The same protocol as the ``time`` evaluation, aimed at today: each consortium hides each
    non-coordinator member in turn and sees only projects that started before its year. With
    ``model_id``, a consortium whose project has a stored vector of that model is also its idea:
    the text column (similarity to each organisation's past projects, all older than the
    consortium, so no title gives the answer away) is learnt with the network. Profiles are not:
    they are made from every project, the held-out one included, so they stay at the default weight.
    ``encode_ideas`` encodes the consortia's texts as the service encodes an idea, for an encoder
    whose queries differ from its documents (e5's ``query:`` prefix and the cross-lingual alignment):
    the ranker then learns the similarity a user's idea will have, not a passage's to a passage.
    """
    config = config or FeatureConfig()
    weights = weights or ScoreConfig()
    with db.session() as session:
        history = History.from_db(session)
        stored = registry.project_vectors(session, model_id) if model_id else []
    vectors = project_matrix(history, stored)
    history.project_vectors = vectors
    dated = history.project_years[history.project_years >= 0]
    if not len(dated):
        raise ValueError("no project in the registry has a start or call year: nothing to learn the order of")
    latest = int(dated.max())
    queries = build_queries(db, history, "time", latest - years + 1, every_member=True)
    if len(queries) > max_consortia:
        queries = random.Random(0).sample(queries, max_consortia)
    ideas: dict[int, np.ndarray] = {}
    if encode_ideas is not None and vectors is not None:
        text_of = {q.project: q.text for q in queries if q.text and vectors[q.project].any()}
        projects, texts = list(text_of), list(text_of.values())
        with tqdm(total=len(texts), desc="encoding ideas", unit=" texts", disable=not progress, leave=False) as bar:
            for start in range(0, len(texts), 64):  # in chunks, so the bar moves
                chunk = projects[start : start + 64]
                ideas.update(zip(chunk, encode_ideas(texts[start : start + 64]), strict=True))
                bar.update(len(chunk))
    fitted = FittedRanker(ranker)
    years_of = history.project_years
    with_text = 0
    for q in tqdm(
        queries,
        desc=f"collecting consortia {latest - years + 1}-{latest}",
        unit=" queries",
        disable=not progress,
        leave=False,
    ):
        mask = (years_of >= 0) & (years_of < q.year)
        pool_mask = np.ones(len(history.org_ids), dtype=bool)
        pool_mask[q.known] = False
        idea = ideas.get(q.project)
        if idea is None and vectors is not None and vectors[q.project].any():
            idea = vectors[q.project]
        with_text += idea is not None
        f = features(history, q.known, mask, config, idea, ref_year=q.year)
        fitted.add(f, score(f, weights), np.flatnonzero(pool_mask), q.hidden, order=q.year)
    fitted.fit(progress)
    fitted.text_model = model_id if with_text else None
    return fitted
