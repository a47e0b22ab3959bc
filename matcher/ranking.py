"""The recommendation pipeline's stages: history -> features -> default score -> rank -> fair re-rank.

Each stage is a small component with a typed config: ``FeatureConfig`` says how features are
made, ``ScoreConfig`` how the default scorer weighs them; ``COLUMNS`` defines each feature
column once, with its name and transform, for the scorer and the fitted ranker alike. The network of past collaborations
is held as a sparse organisation x project incidence matrix, so that "which projects count
as history" is just a mask over projects: the evaluation hides a test project or the
future with it, the service uses everything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from sqlalchemy.orm import Session

from embeddings.index import HalfVectors
from matcher import registry
from matcher.fairness import FairConfig, fair_rerank

T = TypeVar("T")
_KEPT = threading.Lock()  # guards the History caches' eviction (``History._kept``)


@dataclass
class History:
    """Organisations, projects and who took part in what, as arrays for fast scoring."""

    org_ids: np.ndarray  # (n_orgs,) database ids, sorted
    countries: np.ndarray  # (n_orgs,) ISO codes or ""
    sectors: np.ndarray  # (n_orgs,) sector codes
    project_ids: np.ndarray  # (n_projects,)
    project_years: np.ndarray  # (n_projects,) year or -1 when unknown
    incidence: sp.csr_matrix  # (n_orgs, n_projects) 1 where the organisation took part
    coordinated: sp.csr_matrix  # same shape, 1 where it coordinated
    project_vectors: np.ndarray | None = None  # (n_projects, d) text embeddings, zero rows when no text
    funded: sp.csr_matrix | None = None  # like incidence, only where it received support (default: incidence)
    project_families: np.ndarray | None = None  # (n_projects,) programme family (default: "other")
    org_position: dict[int, int] = field(default_factory=dict)
    project_position: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.funded is None:
            self.funded = self.incidence
        if self.project_families is None:
            self.project_families = np.full(len(self.project_ids), "other")
        self.org_position = {int(i): p for p, i in enumerate(self.org_ids.tolist())}
        self.project_position = {int(i): p for p, i in enumerate(self.project_ids.tolist())}
        # float64 once: a float32 matrix times the float64 walk vector is converted on every product
        self.incidence = sp.csr_matrix(self.incidence, dtype=np.float64)
        self.incidence.sort_indices()  # each row's projects in order: looked up by binary search (reasons)
        self.incidence_t = self.incidence.T.tocsr()
        self.incidence_t.sort_indices()
        self.entry_rows = np.repeat(np.arange(len(self.org_ids)), np.diff(self.incidence.indptr))  # row of each entry
        self.project_sizes = np.asarray(self.incidence.sum(axis=0)).ravel()
        # integer codes make "share of the consortium in my country / sector" one bincount per query
        self.country_names, self.country_codes = np.unique(self.countries, return_inverse=True)
        self.sector_names, self.sector_codes = np.unique(self.sectors, return_inverse=True)
        self._activity: dict[tuple[bytes, int, float], dict[str, np.ndarray]] = {}
        self._walk: dict[bytes, tuple[sp.csr_matrix, ...]] = {}
        self.walks: dict[tuple[Any, ...], np.ndarray] = {}  # the last consortia's walks (``walk``)
        self._weights: dict[tuple[bytes, float], np.ndarray] = {}
        self._years: dict[bytes, int] = {}
        self._texts: tuple[np.ndarray | None, np.ndarray, HalfVectors] | None = None
        self._columns: dict[tuple[bytes, int, float], dict[str, Weighed]] = {}

    def members_of(self, projects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(organisation, project) for every member of ``projects``: read from the CSR arrays of
        those projects alone, so the cost grows with them, not with the registry."""
        return _entries(self.incidence_t, projects)

    @cached_property
    def incidence32(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """The incidence and its transpose in float32, for the per-request products (the walk, partners
        of partners): 8 bytes an entry read instead of 12; made once, shared by every history mask."""
        return self.incidence.astype(np.float32), self.incidence_t.astype(np.float32)

    def to_orgs(self, values: np.ndarray) -> np.ndarray:
        """``incidence @ values`` in float32 (per organisation, the sum over its projects), reading only
        the projects where ``values`` is not zero while they are few."""
        inc, inc_t = self.incidence32
        return _product(inc, inc_t, values.astype(np.float32, copy=False), len(self.org_ids))

    def to_projects(self, values: np.ndarray) -> np.ndarray:
        """``incidence.T @ values`` in float32 (per project, the sum over its members), sparse-aware likewise."""
        inc, inc_t = self.incidence32
        return _product(inc_t, inc, values.astype(np.float32, copy=False), len(self.project_ids))

    @staticmethod
    def _kept(store: dict[Any, T], key: Any, make: Callable[[], T]) -> T:
        """``make()`` once per key, the last eight keys kept (a service has one history mask; an
        evaluation a handful at a time). Made outside the lock, kept under it: a worker with several
        threads neither waits for another's walk nor evicts while another inserts."""
        found = store.get(key)
        if found is None:
            found = make()
            with _KEPT:
                while len(store) >= 8:
                    store.pop(next(iter(store)))
                found = store.setdefault(key, found)
        return found

    def reference_year(self, mask: np.ndarray) -> int:
        """The year after the latest dated project in ``mask``: "recent" is counted back from it."""
        years = self.project_years
        return self._kept(
            self._years, np.packbits(mask).tobytes(), lambda: int(years[mask & (years >= 0)].max(initial=0)) + 1
        )

    def activity(self, mask: np.ndarray, ref: int, recency_years: float) -> dict[str, np.ndarray]:
        """What does not depend on the query (past projects, recent activity, coordinations, mean
        consortium size): computed once per history mask and reference year, the last few kept."""

        def make() -> dict[str, np.ndarray]:
            years, sizes = self.project_years, self.project_sizes
            m = mask.astype(np.float64)
            recency = np.where(years >= 0, np.exp(-np.maximum(ref - 1 - years, 0) / recency_years), 0.0) * m
            projects = self.incidence @ m
            return {
                "recency": recency,
                "projects": projects,
                "recent_activity": self.incidence @ recency,
                "coordinated": self.coordinated @ m,
                "consortium_size": (self.incidence @ (sizes * m)) / np.maximum(projects, 1),
            }

        return self._kept(self._activity, (np.packbits(mask).tobytes(), ref, recency_years), make)

    def static_columns(self, mask: np.ndarray, ref: int, recency_years: float) -> dict[str, Weighed]:
        """Where the transformed ``STATIC`` columns are kept (``Features.column`` fills it): made
        once per history mask, not per request (four passes over the registry, 2-3 ms at 286,000)."""
        return self._kept(self._columns, (np.packbits(mask).tobytes(), ref, recency_years), dict)

    def text_rows(self) -> tuple[np.ndarray, HalfVectors | None]:
        """Positions of the projects that have a text vector, and those vectors alone (float16, see
        ``HalfVectors``): the idea is compared with these only (in CORDIS data most projects carry no
        text); None when no project has a vector."""
        vectors = self.project_vectors
        if vectors is None:  # kept as float16 only (``keep_texts``), or none at all
            if self._texts is not None and self._texts[0] is None:
                return self._texts[1], self._texts[2]
            return np.zeros(0, dtype=np.int64), None
        if self._texts is None or self._texts[0] is not vectors:
            rows = np.flatnonzero(np.abs(vectors).sum(axis=1) > 0)
            self._texts = (vectors, rows, HalfVectors(vectors[rows]))
        return self._texts[1], self._texts[2]

    def keep_texts(self, rows: np.ndarray, vectors: HalfVectors | None) -> None:
        """Text vectors as a serving matcher keeps them (``text_vectors``): only the projects that have
        one, in float16, and no float32 matrix of every project beside them (386 MB at 250,000)."""
        self.project_vectors = None
        self._texts = (None, rows, vectors) if vectors is not None else None

    def walk_step(self, mask: np.ndarray, degree: np.ndarray) -> tuple[sp.csr_matrix, ...]:
        """The walk's organisation -> project step as one matrix, ``diag(mask / size) @ incidence.T @
        diag(1 / degree)``, its transpose, and the incidence and its transpose: built once per history
        mask (the last few kept), so each step of the walk is two sparse products and no dense
        rescaling. Float32: a whole-graph product reads 8 bytes an entry instead of 12 (1.5 against
        2.7 ms at 286,000 organisations), and the walk feeds float32 scores."""

        def make() -> tuple[sp.csr_matrix, ...]:
            size = np.maximum(self.project_sizes * mask, 1.0)
            down = (sp.diags(mask / size) @ self.incidence_t @ sp.diags(1.0 / np.maximum(degree, 1.0))).tocsr()
            return (down.astype(np.float32), down.T.tocsr().astype(np.float32), *self.incidence32)

        return self._kept(self._walk, np.packbits(mask > 0).tobytes(), make)

    def weights(self, mask: np.ndarray, power: float) -> np.ndarray:
        """A shared project of size s weighs 1/(s-1)**power (0 outside the mask), once per mask and power."""

        def make() -> np.ndarray:
            sizes = self.project_sizes
            return np.asarray(np.where(sizes > 1, 1.0 / np.maximum(sizes - 1, 1) ** power, 0.0) * mask)

        return self._kept(self._weights, (np.packbits(mask > 0).tobytes(), power), make)

    @classmethod
    def from_db(cls, session: Session) -> History:
        orgs, projects, parts = registry.history_rows(session)
        org_ids = np.array([o[0] for o in orgs], dtype=np.int64)
        project_ids = np.array([p[0] for p in projects], dtype=np.int64)
        opos = {int(i): n for n, i in enumerate(org_ids.tolist())}
        ppos = {int(i): n for n, i in enumerate(project_ids.tolist())}
        rows = np.array([opos[p[0]] for p in parts], dtype=np.int64)
        cols = np.array([ppos[p[1]] for p in parts], dtype=np.int64)
        coord = np.array([p[2] == "coordinator" for p in parts], dtype=bool)
        paid = np.array([bool(p[3]) for p in parts], dtype=bool)
        shape = (len(org_ids), len(project_ids))
        inc = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        cin = sp.csr_matrix((np.ones(int(coord.sum()), np.float32), (rows[coord], cols[coord])), shape=shape)
        funded = sp.csr_matrix((np.ones(int(paid.sum()), np.float32), (rows[paid], cols[paid])), shape=shape)
        return cls(
            org_ids,
            np.array([o[1] or "" for o in orgs]),
            np.array([o[2] or "other" for o in orgs]),
            project_ids,
            np.array([int(p[1]) if p[1] is not None else -1 for p in projects]),
            inc,
            cin,
            funded=funded,
            project_families=np.array([p[2] or "other" for p in projects]),
        )


def project_matrix(history: History, rows: list[tuple[int, bytes]]) -> np.ndarray | None:
    """Stored project vectors (id, float32 bytes) in the history's project order, zero rows where a
    project has none; None when there are none at all."""
    if not rows:
        return None
    vectors = [(history.project_position.get(pid), np.frombuffer(blob, dtype=np.float32)) for pid, blob in rows]
    matrix = np.zeros((len(history.project_ids), len(vectors[0][1])), dtype=np.float32)
    for position, vector in vectors:
        if position is not None:
            matrix[position] = vector
    return matrix


def text_vectors(history: History, rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, HalfVectors | None]:
    """Stored project vectors (id, float32 bytes) as a serving matcher keeps them (``History.keep_texts``):
    the positions of the projects that have a non-zero one, in the history's order, and those vectors."""
    found = sorted((p, blob) for pid, blob in rows if (p := history.project_position.get(pid)) is not None)
    if not found:
        return np.zeros(0, dtype=np.int64), None
    positions = np.array([p for p, _ in found], dtype=np.int64)
    matrix = np.frombuffer(b"".join(blob for _, blob in found), dtype=np.float32).reshape(len(found), -1)
    text = np.abs(matrix).sum(axis=1) > 0
    return positions[text], HalfVectors(matrix[text]) if text.any() else None


@dataclass(frozen=True)
class FeatureConfig:
    """How the network and text features are made from the history."""

    shared_weight_power: float = 0.5  # a shared project of size s weighs 1/(s-1)**power
    recency_years: float = 2.0  # half-life-like decay of ties and activity, in years
    damping: float = 0.85  # personalised PageRank: chance of walking on rather than restarting
    # power iterations of that walk: 5. From the third step on the walk covers most of the registry (80 %
    # of 286,000 organisations at step 3, 83 % of 37,500 at step 2) and each step is a product over the
    # whole graph (3 steps cost 10 ms at 286k, 5 cost 26), but fewer steps find fewer partners the
    # consortium does not know. Side by side (MiniLM, one code, 3 / 4 / 5 steps): run L "new to you"
    # novel recall@10 0.115 / 0.115 / 0.131; run T "new to you" novel 0.022 / - / 0.024, the groups'
    # novel 0.012 / - / 0.020, and with 3 the newcomer-share list fell under 0.9 of the unfair one
    # (0.1906 against 0.2122). The plain list gained with fewer steps (run L 0.332 / 0.330 / 0.314),
    # which the mission does not put first. Earlier, 5 steps matched 8 (run L 0.332 vs 0.330).
    walk_steps: int = 5


DEFAULT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("breadth", 2.0),
    ("same_country", 0.3),
    ("ties", 0.3),
    ("two_hop", 0.05),
    ("text", 2.0),
    ("profile", 1.5),
    ("overlap", 3.0),
)
# "New to you": nobody in the consortium has worked with them, so the network's own columns are zero
# there. What still says "worth meeting" is the idea's text and an introduction: a partner of a partner,
# reached by the walk. On run T (coordinator known, 2020+ consortia, no text) the walk and partners of
# partners find 0.020 of the novel partners in ten places against 0.014 for the default scorer and
# 0.009 for country popularity. Past activity, weighed lightly, orders whoever nothing else tells
# apart (with FA*IR on half of run T's queries: 0.0138 of the novel partners against 0.0119 without).
# A partner from a member's own country (consortia often hold two from one country) weighs 0.3, chosen
# on validation years only (history before each): run T's 2019 consortia (no text) novel recall@10
# 0.0196 without, 0.0204 / 0.0206 / 0.0210 / 0.0214 at 0.1 / 0.2 / 0.3 / 1; run C's 2011 (with text)
# 0.0094 up to 0.3 and 0.0019 at 1, where the country drowns the idea. Tried and not kept: at most two
# introductions by one intermediary in the group (T 2019: 0.0196 -> 0.0145; real novel partners often
# come through one hub).
DISCOVERY_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("walk", 1.0),
    ("two_hop", 1.0),
    ("text", 2.0),
    ("profile", 1.5),
    ("projects", 0.02),
    ("same_country", 0.3),
)


@dataclass(frozen=True)
class ScoreConfig:
    """How the default linear scorer weighs the feature columns.

    The default weights were set by hand, comparing a few settings by recall@10 on CORDIS
    consortia: a consortium re-forming (overlap) and ties to several members (breadth) first,
    the idea's text next. A ranker fitted on past consortia (``ranker.FittedRanker``) replaces
    them where there is enough history to learn from.
    """

    weights: tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS
    discovery: tuple[tuple[str, float], ...] = DISCOVERY_WEIGHTS  # the "new to you" group's weights
    coordinator_weight: float = 0.3  # added to the coordinator column when a coordinator is sought


@dataclass
class Features:
    breadth: np.ndarray  # how many known members the organisation has worked with
    direct: np.ndarray  # shared projects with known members, small consortia weigh more
    shared: np.ndarray  # plain count of shared projects with known members
    direct_small: np.ndarray  # shared projects weighted 1/(s-1): small consortia weigh much more
    direct_recent: np.ndarray  # ties, recent ones weighing more
    two_hop: np.ndarray  # partners of partners
    same_country: np.ndarray  # share of known members in the organisation's country
    projects: np.ndarray  # past projects (the history mask applied)
    recent_activity: np.ndarray  # past projects, recent ones weighing more
    coordinated: np.ndarray
    text: np.ndarray  # similarity of the idea to the best-matching past project
    project_similarity: np.ndarray  # of the idea to every past project (0 outside the mask, or no idea)
    profile: np.ndarray  # similarity of the idea to the organisation's profile
    overlap: np.ndarray  # most known members met in one past project: a consortium re-forming
    walk: np.ndarray  # personalised PageRank from the known members over past consortia
    reunion: np.ndarray  # largest share of a past consortium (with 2+ known members) now re-forming
    reunion_any: np.ndarray  # the same over any past consortium with a known member
    coordinator_ties: np.ndarray  # ties to the applicant itself, who usually picks the partners
    overlap_recent: np.ndarray  # overlap, recent consortia weighing more
    adamic_adar: np.ndarray  # shared projects weighted 1/log(size)
    same_sector: np.ndarray  # share of known members of the organisation's sector (complementarity's inverse)
    coordinator_country: np.ndarray  # in the applicant's country
    consortium_size: np.ndarray  # mean size of the organisation's past consortia
    n_known: int = 0
    # the consortium's neighbourhood: whoever shares a past project with a member (sorted positions), the
    # only organisations where a ``NEAR`` column is not zero
    near: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # the columns of the history mask alone (``STATIC``), shared by every request on that mask
    static: dict[str, Weighed] = field(default_factory=dict, repr=False)
    _columns: dict[str, Weighed] = field(default_factory=dict, init=False, repr=False)

    def column(self, column: Column) -> Weighed:
        """One transformed column for every organisation (float32), made once (the list and the "new to
        you" group weigh several of the same columns), with where it can be non-zero when that is known
        without a pass over the registry (None: anywhere), so that a score adds it there only: a network
        column is computed on the neighbourhood alone, an idea column is skipped without an idea."""
        store = self.static if column.where == STATIC else self._columns
        if column.name not in store:
            support: np.ndarray | None = None
            if column.where == NEAR:
                values = np.zeros(len(self.projects), dtype=np.float32)
                values[self.near] = column.values(self, self.near)
                support = self.near
            else:
                values = np.asarray(column.values(self, slice(None)), dtype=np.float32)
                if column.where == IDEA and not values.any():
                    support = self.near[:0]
            values.setflags(write=False)  # shared by later requests where static
            store[column.name] = Weighed(values, support)
        return store[column.name]

    def matrix(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The transformed feature columns (``FEATURES`` order) for ``rows`` (all when None)."""
        sel: slice | np.ndarray = slice(None) if rows is None else rows
        return np.column_stack([column.values(self, sel) for column in COLUMNS]).astype(np.float32)


Rows = slice | np.ndarray


@dataclass(frozen=True)
class Weighed:
    """A transformed column and the positions where it is not zero (None when it is not zero in most)."""

    values: np.ndarray
    support: np.ndarray | None


NEAR, IDEA, STATIC = "near", "idea", "static"


@dataclass(frozen=True)
class Column:
    """One feature column: its name, how it is computed from the features of some rows, and where it
    can be non-zero: ``NEAR`` the neighbourhood alone (``Features.near``), ``IDEA`` nowhere without an
    idea, ``STATIC`` anywhere but from the history mask alone (kept across requests), "" anywhere."""

    name: str
    values: Callable[[Features, Rows], np.ndarray]
    where: str = ""


def _log(values: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``log(1 + scale * values)`` in float32, as the scores are kept, taken only where ``values`` is not
    zero while those are few (most network columns: the neighbourhood). ``log`` of the float32 sum, not
    ``log1p``: its absolute error (under 1.2e-7) is the float32 score's own rounding, and numpy's float32
    ``log1p`` is vectorised on AVX-512 alone (4.9 against 0.7 ms over 286,000 values on an AVX2 machine)."""
    x = values.astype(np.float32)  # a copy (astype's default): written below
    if np.count_nonzero(x) * 8 < len(x):
        nonzero = np.flatnonzero(x != 0)
        out = np.zeros(len(x), dtype=np.float32)
        out[nonzero] = np.log(np.float32(1) + np.float32(scale) * x[nonzero])
        return out
    x *= np.float32(scale)
    x += np.float32(1)
    return np.log(x, out=x)


COLUMNS: tuple[Column, ...] = (
    Column("breadth", lambda f, s: _log(f.breadth[s]), NEAR),
    Column("same_country", lambda f, s: f.same_country[s]),
    Column("ties", lambda f, s: _log(f.direct[s], 10), NEAR),
    Column("shared_projects", lambda f, s: _log(f.shared[s]), NEAR),
    Column("ties_small", lambda f, s: _log(f.direct_small[s], 10), NEAR),
    Column("ties_recent", lambda f, s: _log(f.direct_recent[s], 10), NEAR),
    Column("projects", lambda f, s: _log(f.projects[s]), STATIC),
    Column("recent_activity", lambda f, s: _log(f.recent_activity[s]), STATIC),
    Column("two_hop", lambda f, s: _log(f.two_hop[s], 10)),
    Column("text", lambda f, s: f.text[s], IDEA),
    Column("profile", lambda f, s: f.profile[s], IDEA),
    Column("coordinated", lambda f, s: _log(f.coordinated[s]), STATIC),
    Column("overlap", lambda f, s: _log(f.overlap[s]), NEAR),
    Column("walk", lambda f, s: _log(f.walk[s], 1e3)),
    Column("reunion", lambda f, s: f.reunion[s], NEAR),
    Column("reunion_any", lambda f, s: f.reunion_any[s], NEAR),
    Column("coordinator_ties", lambda f, s: _log(f.coordinator_ties[s], 10), NEAR),
    Column("overlap_recent", lambda f, s: _log(f.overlap_recent[s]), NEAR),
    Column("adamic_adar", lambda f, s: _log(f.adamic_adar[s]), NEAR),
    Column("same_sector", lambda f, s: f.same_sector[s]),
    Column("coordinator_country", lambda f, s: f.coordinator_country[s]),
    Column("tie_share", lambda f, s: f.shared[s] / np.maximum(f.projects[s], 1), NEAR),
    Column("consortium_size", lambda f, s: _log(f.consortium_size[s]), STATIC),
    Column("known_members", lambda f, s: np.full(len(f.projects[s]), f.n_known)),
)
FEATURES = tuple(column.name for column in COLUMNS)


def _entries(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column, row) of every stored entry of ``rows`` of a CSR matrix, gathered from its arrays."""
    columns, rows_of, _ = _gather(matrix, rows)
    return columns, rows_of


def _gather(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column, row, value) of every stored entry of ``rows`` of a CSR matrix."""
    starts, lengths = matrix.indptr[rows], matrix.indptr[rows + 1] - matrix.indptr[rows]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(total)
    return matrix.indices[offsets].astype(np.int64), np.repeat(rows, lengths), matrix.data[offsets]


def _product(matrix: sp.csr_matrix, transposed: sp.csr_matrix, values: np.ndarray, size: int) -> np.ndarray:
    """``matrix @ values``: from the rows of ``transposed`` where ``values`` is not zero (scipy's row
    selection, then its CSC product) while they hold under a sixteenth of the entries (the first hops of
    a walk, a neighbourhood), else the full product. At 286,000 organisations: rows holding 2 % of the
    entries 0.95 ms against 2.7 for the full product; at about 5 % they cost the same."""
    if np.count_nonzero(values) * 16 > len(values):  # filled: the full product is the cheaper read
        return np.asarray(matrix @ values)
    support = np.flatnonzero(values != 0)  # a float array's own nonzero() is ten times slower
    if (transposed.indptr[support + 1] - transposed.indptr[support]).sum() * 16 > transposed.nnz:
        return np.asarray(matrix @ values)
    out = np.asarray(transposed[support].T @ values[support])
    return out if out.dtype == values.dtype else out.astype(values.dtype)


def _share(codes: np.ndarray, names: np.ndarray, members: Sequence[int], of: int) -> np.ndarray:
    """For every organisation, the share of ``of`` members whose code (given in ``members``; ``len(names)``
    for a value nobody has) is its own: a small table per code, then one gather over the registry."""
    counts = np.bincount(np.asarray(members, dtype=np.int64), minlength=len(names) + 1)[: len(names)]
    return np.asarray((counts / of).astype(np.float32)[codes])


def _profile(history: History, known: Sequence[int], virtual: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Who is like the consortium: the share of its members in each organisation's country and
    sector, and whether it is in the applicant's country. ``virtual`` members (an applicant not
    registered: its country and sector) count like registered ones, and the first is the applicant.
    A member without a country shares it with nobody."""
    n = len(history.org_ids)
    of = len(known) + len(virtual)
    if of == 0:
        return {k: np.zeros(n, dtype=np.float32) for k in ("same_country", "same_sector", "coordinator_country")}

    def code(names: np.ndarray, value: str) -> int:
        at = int(np.searchsorted(names, value))
        return at if at < len(names) and names[at] == value else len(names)  # len: nobody's code

    countries = [int(history.country_codes[k]) for k in known if history.countries[k]]
    countries += [code(history.country_names, c) for c, _ in virtual if c]
    sectors = [int(history.sector_codes[k]) for k in known] + [code(history.sector_names, s) for _, s in virtual]
    first = virtual[0][0] if virtual else str(history.countries[known[0]])
    return {
        "same_country": _share(history.country_codes, history.country_names, countries, of),
        "same_sector": _share(history.sector_codes, history.sector_names, sectors, of),
        "coordinator_country": _share(
            history.country_codes, history.country_names, [code(history.country_names, first)] if first else [], 1
        ),
    }


def walk(
    history: History,
    known: Sequence[int],
    mask: np.ndarray,
    damping: float,
    steps: int,
    degree: np.ndarray | None = None,
) -> np.ndarray:
    """Personalised PageRank over organisation -> past project -> organisation, restarting at the known
    members. The last few consortia's walks are kept (``History.walks``): a coordinator who changes the
    idea, the filters or the newcomer share keeps its consortium, and the walk is most of a search's
    cost on a large registry (26 of 60 ms at 286,000 organisations)."""
    key = (tuple(sorted(known)), np.packbits(mask > 0).tobytes(), damping, steps)

    def make() -> np.ndarray:
        down, up, inc, inc_t = history.walk_step(mask, history.incidence @ mask if degree is None else degree)
        restart = np.zeros(len(history.org_ids), dtype=np.float32)
        restart[list(known)] = 1.0 / len(known)
        r: np.ndarray = restart.copy()
        for _ in range(steps):  # the first steps reach few organisations: only their rows are read
            spread = _product(inc, inc_t, _product(down, up, r, down.shape[0]), inc.shape[0])
            r = np.float32(1 - damping) * restart + np.float32(damping) * spread
        r.setflags(write=False)  # shared by later searches
        return r

    return history._kept(history.walks, key, make)


NETWORK_FEATURES = (
    "breadth",
    "direct",
    "shared",
    "direct_small",
    "direct_recent",
    "two_hop",
    "overlap",
    "walk",
    "reunion",
    "reunion_any",
    "coordinator_ties",
    "overlap_recent",
    "adamic_adar",
)


def _network(
    history: History,
    known: Sequence[int],
    mask: np.ndarray,
    recency: np.ndarray,
    config: FeatureConfig,
    degree: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Ties of every organisation to the known members over the past projects in ``mask``: read from the
    known members' projects and their members only (the neighbourhood, ``near``), never the whole registry."""
    inc, sizes = history.incidence, history.project_sizes
    n = len(history.org_ids)
    if not known:
        zeros = np.zeros(n, dtype=np.float64)
        return {**dict.fromkeys(NETWORK_FEATURES, zeros), "near": np.zeros(0, dtype=np.int64)}
    known_projects, member = _entries(inc, np.asarray(known, dtype=np.int64))
    u = np.bincount(known_projects, minlength=inc.shape[1]) * mask
    touched = np.flatnonzero(u != 0)
    orgs, projs = history.members_of(touched)  # every organisation sharing a past project with a member
    # every per-project value below is taken at those entries only, never over every project
    size, kept, met_u, recent = sizes[projs], mask[projs], u[projs], recency[projs]

    def weight(power: float) -> np.ndarray:  # as _weights, at the entries
        return np.asarray(np.where(size > 1, 1.0 / np.maximum(size - 1, 1) ** power, 0.0) * kept)

    def spread(at_entries: np.ndarray) -> np.ndarray:
        return np.bincount(orgs, weights=at_entries, minlength=n)

    def most(at_entries: np.ndarray) -> np.ndarray:
        out = np.zeros(n, dtype=np.float64)
        np.maximum.at(out, orgs, at_entries)
        return out

    w = weight(config.shared_weight_power)
    direct = spread(w * met_u)
    share_known = np.where(size > 1, met_u / np.maximum(size - 1, 1), 0.0)
    coordinator = np.zeros(inc.shape[1])
    coordinator[known_projects[member == known[0]]] = 1.0
    breadth = np.zeros(n, dtype=np.float64)
    for k in known:  # how many members each organisation has met: one count per member (flags, no sort)
        mine = np.zeros(inc.shape[1], dtype=bool)
        mine[known_projects[member == k]] = True
        met = np.zeros(n, dtype=bool)
        met[orgs[mine[projs] & (kept > 0)]] = True
        breadth += met
    near = np.zeros(n, dtype=bool)
    near[orgs] = True
    return {
        "near": np.flatnonzero(near),
        "breadth": breadth,
        "direct": direct,
        "shared": spread(weight(0.0) * met_u),
        "direct_small": spread(weight(1.0) * met_u),
        "direct_recent": spread(w * recent * met_u),
        "two_hop": history.to_orgs(history.weights(mask, config.shared_weight_power) * history.to_projects(direct)),
        "overlap": most(met_u),
        "walk": walk(history, known, mask, config.damping, config.walk_steps, degree),
        "reunion": most(np.where(met_u >= 2, share_known, 0.0)),
        "reunion_any": most(share_known),
        "coordinator_ties": spread(w * coordinator[projs]),
        "overlap_recent": most(met_u * recent),
        "adamic_adar": spread(np.where(size > 1, 1.0 / np.log(np.maximum(size, 2)), 0.0) * kept * met_u),
    }


def idea_text(history: History, query_vector: np.ndarray | None, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity of the idea to each organisation's best-matching past project, and to every project
    (masked): one pass over the incidence's entries (no organisation x project matrix per query). Which
    project is an organisation's best is read from these for the few shown (``best_project``)."""
    n = len(history.org_ids)
    rows, vectors = history.text_rows()
    if query_vector is None or vectors is None:
        return np.zeros(n, dtype=np.float32), np.zeros(len(history.project_ids), dtype=np.float32)
    inc = history.incidence
    found = vectors.dot(query_vector)
    if len(rows) == len(history.project_ids):
        sims = found
    else:
        sims = np.zeros(len(history.project_ids), dtype=np.float32)
        sims[rows] = found
    if not mask.all():
        sims *= mask.astype(np.float32)
    values = sims[inc.indices]  # every entry's project similarity, read once
    text = np.zeros(n, dtype=np.float32)
    filled = np.diff(inc.indptr) > 0
    if filled.any():
        text[filled] = np.maximum.reduceat(values, inc.indptr[:-1][filled])
    np.maximum(text, 0.0, out=text)  # nothing similar (or no project): 0
    return text, sims


def best_project(history: History, f: Features, pos: int) -> int:
    """The past project of organisation ``pos`` most like the idea (the first of equals in its list), -1
    when none is: looked up for the organisations a page explains, not for all of them per request."""
    if f.text[pos] <= 0:
        return -1
    inc = history.incidence
    projects = inc.indices[inc.indptr[pos] : inc.indptr[pos + 1]]
    return int(projects[int(np.argmax(f.project_similarity[projects]))])


def features(
    history: History,
    known: Sequence[int],
    project_mask: np.ndarray,
    config: FeatureConfig,
    query_vector: np.ndarray | None = None,
    profile_scores: np.ndarray | None = None,
    ref_year: int | None = None,
    virtual: Sequence[tuple[str, str]] = (),
    similarities: tuple[np.ndarray, np.ndarray] | None = None,
) -> Features:
    """Per-organisation features for a consortium of ``known`` positions, history = ``project_mask``;
    ``virtual`` members (country, sector) are an applicant not registered, the first of them.
    ``similarities``: the idea's ``idea_text`` already computed for this mask (the same idea, another draft)."""
    mask = project_mask.astype(np.float64)
    bool_mask = project_mask.astype(bool)
    ref = ref_year if ref_year is not None else history.reference_year(bool_mask)
    static = history.activity(bool_mask, ref, config.recency_years)
    text, sims = similarities if similarities is not None else idea_text(history, query_vector, mask)
    return Features(
        **_network(history, known, mask, static["recency"], config, static["projects"]),
        **_profile(history, known, virtual),
        projects=static["projects"],
        recent_activity=static["recent_activity"],
        coordinated=static["coordinated"],
        consortium_size=static["consortium_size"],
        text=text,
        project_similarity=sims,
        profile=profile_scores if profile_scores is not None else np.zeros(len(history.org_ids), dtype=np.float32),
        n_known=len(known),
        static=history.static_columns(bool_mask, ref, config.recency_years),
    )


def default_weights(config: ScoreConfig, seek_coordinator: bool = False, discovery: bool = False) -> np.ndarray:
    weights = np.zeros(len(FEATURES), dtype=np.float32)
    for name, value in config.discovery if discovery else config.weights:
        weights[FEATURES.index(name)] = value
    if seek_coordinator:
        weights[FEATURES.index("coordinated")] += config.coordinator_weight
    return weights


def in_network(f: Features) -> np.ndarray:
    """Who is "from your network": it has worked with a member of the consortium. Everyone else is
    "new to you", partners of partners included (the consortium has not worked with them yet)."""
    return np.asarray(f.shared > 0)


def score(f: Features, config: ScoreConfig, seek_coordinator: bool = False, discovery: bool = False) -> np.ndarray:
    """The default linear scorer: hand-set weights over the feature columns (only those weighted are
    computed: no matrix of every column for every organisation per request). ``discovery`` weighs
    for the "new to you" group instead (``ScoreConfig.discovery``)."""
    weights = default_weights(config, seek_coordinator, discovery)
    total = np.zeros(len(f.projects), dtype=np.float32)
    for column, w in zip(COLUMNS, weights, strict=True):
        if w:
            values, support = f.column(column).values, f.column(column).support
            if support is None:
                total += np.float32(w) * values
            elif len(support):
                total[support] += np.float32(w) * values[support]
    return total


_SAMPLE = 2048  # scores read to guess the cut of a long candidate list


def rank(scores: np.ndarray, candidates: np.ndarray, limit: int) -> np.ndarray:
    """Candidate positions by descending score (ties by position), at most ``limit``.

    Exact: over a long list, a strided sample of the scores gives a cut that keeps a few times
    ``limit`` candidates; when at least ``limit`` clear it, the cut is no higher than the
    ``limit``-th score, so every candidate that belongs in the answer (ties included) is kept, and
    only those are sorted. A full selection over hundreds of thousands of candidates costs about
    ten times that comparison and gather."""
    sub = scores[candidates]
    limit = min(limit, len(candidates))
    if limit <= 0:
        return candidates[:0]
    keep: np.ndarray | None = None
    if len(candidates) > 16 * _SAMPLE and limit * 64 < len(candidates):
        sample = sub[:: len(sub) // _SAMPLE]
        above = min(len(sample), int(4 * limit * len(sample) / len(sub)) + 2)
        cut = np.partition(sample, len(sample) - above)[len(sample) - above]
        kept = np.flatnonzero(sub >= cut)
        if len(kept) >= limit:
            keep = kept
    if keep is None:
        keep = np.arange(len(candidates))
    if len(keep) > limit:  # the limit-th score, then every candidate at or above it (ties by position below)
        value = np.partition(sub[keep], len(keep) - limit)[len(keep) - limit]
        keep = keep[sub[keep] >= value]
    order = np.lexsort((candidates[keep], -sub[keep]))[:limit]
    return candidates[keep][order]


def fair_top(
    ranked: np.ndarray,
    newcomer: np.ndarray,
    k: int,
    fair: FairConfig,
    scores: np.ndarray,
    pool: np.ndarray,
    newcomers: np.ndarray | None = None,
) -> np.ndarray:
    """FA*IR over ``ranked`` (the head of ``pool`` in ``rank``'s order), drawing newcomers from the whole
    pool in score order. ``newcomers``: every newcomer's position, sorted (the matcher keeps them), so
    that few of them are found in the pool without a pass over it."""
    if fair.share <= 0:
        return ranked[:k]
    flags = newcomer[ranked]
    if flags.sum() >= k or len(ranked) == len(pool):  # the pool's first k newcomers in that order are here
        best_new = ranked[flags][:k]
    else:
        if newcomers is not None and len(newcomers) * 16 < len(pool):  # pool is sorted (the candidates)
            at = np.minimum(np.searchsorted(pool, newcomers), len(pool) - 1)
            pool_new = newcomers[pool[at] == newcomers]
        else:
            pool_new = pool[newcomer[pool]]
        best_new = rank(scores, pool_new, k) if len(pool_new) else np.zeros(0, dtype=np.int64)
    merged = list(dict.fromkeys([*ranked[:k].tolist(), *best_new.tolist()]))
    merged.sort(key=lambda p: (-scores[p], p))
    return np.array(fair_rerank(merged, [bool(newcomer[p]) for p in merged], k, fair), dtype=np.int64)
