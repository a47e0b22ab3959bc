"""Vector search with filters, and index versions on disk with atomic swaps.

Exact search is a numpy matrix-vector product with argpartition: on this class of machine
it runs at the memory-bandwidth floor and beat faiss ``IndexFlatIP`` for single queries
(see ``bench/``). Above ``exact_max`` rows an IVF index answers instead, its ``nprobe``
tuned at build time until recall@10 against exact search reaches the target. Filters are
row masks applied inside the search, never an over-fetch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.encoders import align

DEFAULT_EXACT_MAX = 200_000
RECALL_TARGET = 0.97
KEEP_VERSIONS = 4


class IndexRefused(Exception):
    """A version that must not serve: its manifest disagrees with its files or the model."""


@dataclass(frozen=True)
class Hit:
    id: int
    score: float


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
    return part[np.argsort(-scores[part], kind="stable")]


class ExactSearch:
    """Brute-force inner product over L2-normalised rows."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)

    def search(self, query: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(row positions, scores) of the ``k`` best rows, only among ``rows`` when given."""
        if rows is None:
            scores = self.vectors @ query
            top = _topk(scores, k)
            return top, scores[top]
        if rows.size == 0:
            return rows.astype(np.int64), np.zeros(0, dtype=np.float32)
        scores = self.vectors[rows] @ query
        top = _topk(scores, k)
        return rows[top].astype(np.int64), scores[top]


class HalfVectors:
    """Rows kept in float16 to compare one query with all of them (an idea against every profile or
    past project): half the memory of float32, and torch's float16 matrix-vector kernel, which sums in
    float32, reads them in a third of numpy's float32 time (3.2 against 9.2 ms for 67,000 x 384 on one
    thread of this machine). Scores come back rounded to float16: for unit vectors within 5e-4 of the
    float32 product, finer than any difference between two texts that means something."""

    def __init__(self, vectors: np.ndarray) -> None:
        import torch  # installed with sentence-transformers; loaded only where vectors are compared

        self._torch = torch
        self.matrix = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float16))

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def dot(self, query: np.ndarray) -> np.ndarray:
        """``vectors @ query``, float32, on this thread alone: a product that started OpenMP threads
        before a fork leaves the forked process (a gunicorn worker) hanging in its next one, and a
        memory-bound product gains little from a second thread."""
        torch = self._torch
        q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float16).reshape(-1))
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                return np.asarray((self.matrix @ q).float().numpy())
        finally:
            if threads != 1:
                torch.set_num_threads(threads)


class IVFSearch:
    """faiss IVF-Flat with an ``IDSelector`` for filters, so filtering happens inside the search."""

    def __init__(
        self,
        vectors: np.ndarray,
        nlist: int | None = None,
        nprobe: int | None = None,
        train_max: int = 100_000,
        seed: int = 0,
    ) -> None:
        import faiss

        self.faiss = faiss
        n, dim = vectors.shape
        self.nlist = nlist or max(8, int(4 * np.sqrt(n)))
        quantizer = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train_max = max(train_max, 40 * self.nlist)  # faiss wants about 39 points per list
        sample = vectors if n <= train_max else vectors[rng.choice(n, train_max, replace=False)]
        self.index.train(np.ascontiguousarray(sample, dtype=np.float32))
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.nprobe = nprobe or 1
        self._exact = ExactSearch(vectors)

    def tune(self, queries: np.ndarray, k: int = 10, target: float = RECALL_TARGET) -> float:
        """Raise nprobe until recall@k against exact search on ``queries`` reaches ``target``."""
        truth = [set(self._exact.search(q, k)[0].tolist()) for q in queries]
        nprobe = 1
        while True:
            self.nprobe = nprobe
            recall = float(
                np.mean([len(truth[i] & set(self.search(q, k)[0].tolist())) / k for i, q in enumerate(queries)])
            )
            if recall >= target or nprobe >= self.nlist:
                return recall
            nprobe = min(self.nlist, nprobe * 2)

    def search(self, query: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        faiss = self.faiss
        if rows is not None and rows.size < 50 * k:
            return self._exact.search(query, k, rows)  # too selective for probing a few lists
        params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        if rows is not None:
            params.sel = faiss.IDSelectorBatch(rows.astype(np.int64))
        scores, positions = self.index.search(query.reshape(1, -1).astype(np.float32), k, params=params)
        keep = positions[0] >= 0
        return positions[0][keep].astype(np.int64), scores[0][keep]


@dataclass
class Manifest:
    version: str
    model_id: str
    dimension: int
    count: int
    text_version: str
    data_checksum: str
    vectors_sha256: str
    built_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise IndexRefused(
                f"index version {path.parent.name}: unreadable manifest ({exc.__class__.__name__})"
            ) from exc


@dataclass
class LoadedIndex:
    """One version in memory: ids, vectors and the searcher that fits their number."""

    manifest: Manifest
    ids: np.ndarray
    vectors: np.ndarray
    exact_max: int = DEFAULT_EXACT_MAX
    alignment: np.ndarray | None = None  # (d, d): an idea in another language mapped next to its English
    searcher: ExactSearch | IVFSearch = field(init=False)
    positions: dict[int, int] = field(init=False)
    _half: HalfVectors | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.positions = {int(i): p for p, i in enumerate(self.ids.tolist())}
        if len(self.ids) > self.exact_max:
            ivf = IVFSearch(self.vectors, nprobe=int(self.manifest.extra.get("nprobe", 0)) or None)
            if not self.manifest.extra.get("nprobe"):
                rng = np.random.default_rng(1)
                ivf.tune(self.vectors[rng.choice(len(self.ids), min(200, len(self.ids)), replace=False)])
            self.searcher = ivf
        else:
            self.searcher = ExactSearch(self.vectors)

    @property
    def version(self) -> str:
        return self.manifest.version

    def rows_for(self, allowed_ids: Sequence[int] | np.ndarray | set[int]) -> np.ndarray:
        pos = self.positions
        return np.fromiter((pos[i] for i in allowed_ids if i in pos), dtype=np.int64)

    def search(self, query: np.ndarray, k: int = 10, allowed_ids: Sequence[int] | set[int] | None = None) -> list[Hit]:
        """The ``k`` nearest organisations; only those in ``allowed_ids`` when given."""
        rows = None if allowed_ids is None else np.sort(self.rows_for(allowed_ids))
        positions, scores = self.searcher.search(np.asarray(query, dtype=np.float32).reshape(-1), k, rows)
        return [Hit(int(self.ids[p]), float(s)) for p, s in zip(positions, scores, strict=True)]

    def similarities(self, query: np.ndarray) -> np.ndarray:
        """The query's similarity to every row (in ``ids`` order), from a float16 copy made on first use."""
        if self._half is None:
            self._half = HalfVectors(self.vectors)
        return self._half.dot(query)

    def vector(self, organisation_id: int) -> np.ndarray | None:
        pos = self.positions.get(organisation_id)
        return None if pos is None else self.vectors[pos]

    def extended(self, extra: Sequence[tuple[int, np.ndarray]]) -> LoadedIndex:
        """This version plus vectors for ids it lacks (added since the build); ``self`` when none are new.

        Lets an organisation registered a second ago be found without rebuilding the index.
        """
        new = [(i, v) for i, v in extra if int(i) not in self.positions]
        if not new:
            return self
        ids = np.concatenate([self.ids, np.array([i for i, _ in new], dtype=np.int64)])
        vectors = np.vstack([self.vectors, np.vstack([np.asarray(v, dtype=np.float32) for _, v in new])])
        return LoadedIndex(self.manifest, ids, vectors, exact_max=self.exact_max, alignment=self.alignment)

    def align(self, query: np.ndarray) -> np.ndarray:
        """A query vector as this version compares it: through the cross-lingual alignment when the version
        has one (``encoders.fit_alignment``), unchanged otherwise."""
        return query if self.alignment is None else align(query[None, :], self.alignment)[0]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class IndexStore:
    """Versions under ``root/versions/``; ``root/CURRENT`` names the one that serves.

    A build writes a whole new folder, then replaces CURRENT with an atomic rename, so a
    reader sees either the old version or the new one, never half of one.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self._verified: dict[tuple[str, str | None, int, int], Manifest] = {}

    @property
    def pointer(self) -> Path:
        return self.root / "CURRENT"

    def current_name(self) -> str | None:
        try:
            return self.pointer.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def versions(self) -> list[str]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if (p / "manifest.json").is_file())

    def write(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        model_id: str,
        text_version: str,
        data_checksum: str,
        extra: dict[str, Any] | None = None,
        alignment: np.ndarray | None = None,
    ) -> Manifest:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for a vector matrix of shape {vectors.shape}")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{data_checksum[:8]}"
        tmp = self.versions_dir / f".tmp-{name}"
        tmp.mkdir(parents=True)
        np.save(tmp / "vectors.npy", vectors)
        np.save(tmp / "ids.npy", ids)
        extra = dict(extra or {})
        if alignment is not None:
            np.save(tmp / "alignment.npy", np.asarray(alignment, dtype=np.float32))
            extra["alignment_sha256"] = _sha256(tmp / "alignment.npy")
        manifest = Manifest(
            version=name,
            model_id=model_id,
            dimension=int(vectors.shape[1]),
            count=int(len(ids)),
            text_version=text_version,
            data_checksum=data_checksum,
            vectors_sha256=_sha256(tmp / "vectors.npy"),
            built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            extra=extra,
        )
        (tmp / "manifest.json").write_text(json.dumps(manifest.__dict__, indent=2), encoding="utf-8")
        os.replace(tmp, self.versions_dir / name)
        return manifest

    def load(self, name: str, model_id: str | None = None, exact_max: int = DEFAULT_EXACT_MAX) -> LoadedIndex:
        """Version ``name``, checked against its manifest and the configured model."""
        folder = self.versions_dir / name
        if not folder.is_dir():
            raise IndexRefused(f"index version {name} does not exist")
        manifest = Manifest.read(folder / "manifest.json")
        if model_id is not None and manifest.model_id != model_id:
            raise IndexRefused(
                f"index version {name} was built with model {manifest.model_id!r}, "
                f"but the service is configured for {model_id!r}"
            )
        try:
            if _sha256(folder / "vectors.npy") != manifest.vectors_sha256:
                raise IndexRefused(
                    f"index version {name}: vectors.npy does not match its manifest checksum "
                    "(corrupted or changed after the build)"
                )
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
            ids = np.load(folder / "ids.npy", allow_pickle=False)
            alignment = None
            if "alignment_sha256" in manifest.extra:
                if _sha256(folder / "alignment.npy") != manifest.extra["alignment_sha256"]:
                    raise IndexRefused(f"index version {name}: alignment.npy does not match its manifest checksum")
                alignment = np.load(folder / "alignment.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexRefused(f"index version {name}: cannot read its files ({exc.__class__.__name__})") from exc
        if vectors.shape != (manifest.count, manifest.dimension) or ids.shape != (manifest.count,):
            raise IndexRefused(
                f"index version {name}: manifest says {manifest.count} x {manifest.dimension}, "
                f"files hold {vectors.shape} vectors and {ids.shape} ids"
            )
        if alignment is not None and alignment.shape != (manifest.dimension, manifest.dimension):
            raise IndexRefused(
                f"index version {name}: alignment of shape {alignment.shape}, not square in the dimension"
            )
        return LoadedIndex(manifest, ids, vectors, exact_max=exact_max, alignment=alignment)

    def switch(self, name: str, model_id: str | None = None) -> Manifest:
        """Point CURRENT at ``name`` after checking it loads; the old pointer stays on refusal."""
        manifest = self.load(name, model_id, exact_max=1 << 62).manifest  # checks files without an ANN build
        tmp = self.root / f".CURRENT.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(name + "\n", encoding="utf-8")
        os.replace(tmp, self.pointer)
        self.prune()
        return manifest

    def verify(self, name: str, model_id: str | None = None) -> Manifest:
        """Check a version's manifest, model and vector checksum without loading it; IndexRefused says why.

        Remembered per file state, so a readiness poll re-hashes only a version whose file changed."""
        folder = self.versions_dir / name
        try:
            stat = (folder / "vectors.npy").stat()
        except OSError as exc:
            raise IndexRefused(f"index version {name}: its vectors are missing") from exc
        key = (name, model_id, stat.st_mtime_ns, stat.st_size)
        if key not in self._verified:
            self._verified.clear()
            manifest = Manifest.read(folder / "manifest.json")
            if model_id is not None and manifest.model_id != model_id:
                raise IndexRefused(
                    f"index version {name} was built with model {manifest.model_id!r}, "
                    f"but the service is configured for {model_id!r}"
                )
            if _sha256(folder / "vectors.npy") != manifest.vectors_sha256:
                raise IndexRefused(
                    f"index version {name}: vectors.npy does not match its manifest checksum "
                    "(corrupted or changed after the build)"
                )
            self._verified[key] = manifest
        return self._verified[key]

    def previous(self, model_id: str | None = None) -> str | None:
        """The newest version older than the current one that verifies (a corrupt one is skipped)."""
        current = self.current_name()
        for name in reversed([v for v in self.versions() if current is None or v < current]):
            try:
                self.verify(name, model_id)
            except IndexRefused:
                continue
            return name
        return None

    def prune(self, keep: int = KEEP_VERSIONS) -> None:
        current = self.current_name()
        for name in self.versions()[:-keep]:
            if name != current:
                shutil.rmtree(self.versions_dir / name, ignore_errors=True)


class LiveIndex:
    """The serving index of a process: follows CURRENT without a restart or a failed query.

    Readers take the object ``get()`` returns and keep using it; a newer version is loaded
    aside and swapped in with one assignment. A version that is refused leaves the old one
    serving and its reason in ``last_error``.
    """

    def __init__(
        self, store: IndexStore, model_id: str, exact_max: int = DEFAULT_EXACT_MAX, check_every: float = 0.5
    ) -> None:
        self.store = store
        self.model_id = model_id
        self.exact_max = exact_max
        self.check_every = check_every
        self.last_error: str | None = None
        self._current: LoadedIndex | None = None
        self._refused: str | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def get(self) -> LoadedIndex | None:
        now = time.monotonic()
        if now - self._checked >= self.check_every or self._current is None:
            self._checked = now
            self._refresh()
        return self._current

    def _refresh(self) -> None:
        name = self.store.current_name()
        if name is None:
            if self._current is None:
                self.last_error = "no index has been built yet (run: partner-match index build)"
            return
        if (self._current is not None and self._current.version == name) or name == self._refused:
            return
        if not self._lock.acquire(blocking=self._current is None):
            return  # another thread is loading it; keep serving the old one meanwhile
        try:
            loaded = self.store.load(name, self.model_id, self.exact_max)
        except IndexRefused as exc:
            self._refused = name
            self.last_error = str(exc)
            return
        finally:
            self._lock.release()
        self._current = loaded
        self._refused = None
        self.last_error = None
