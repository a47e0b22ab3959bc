"""Index builds: embed only what changed, keep every vector with its provenance, swap atomically."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session
from tqdm import tqdm

from embeddings.encoders import Encoder, fit_alignment, is_multilingual
from embeddings.index import IndexRefused, IndexStore, LoadedIndex
from matcher import registry
from matcher.db import Database, ProjectEmbedding, StoredEmbedding, utcnow
from matcher.profiles import TEXT_VERSION, profile_text, text_hash


@dataclass
class BuildSummary:
    embedded: int
    reused: int
    total: int
    version: str
    swapped: bool
    model_id: str
    text_version: str
    seconds: float
    projects_embedded: int = 0  # project texts embedded in this build (the rest were stored already)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_vectors(session: Session, model_id: str, rows: list[tuple[int, str, np.ndarray]]) -> None:
    """Replace the stored vectors of these organisations: the one writer of the embedding table."""
    for start in range(0, len(rows), 2000):
        chunk = rows[start : start + 2000]
        session.execute(
            delete(StoredEmbedding).where(
                StoredEmbedding.model_id == model_id, StoredEmbedding.organisation_id.in_([r[0] for r in chunk])
            )
        )
        session.execute(
            insert(StoredEmbedding),
            [
                {
                    "organisation_id": org_id,
                    "model_id": model_id,
                    "text_version": TEXT_VERSION,
                    "text_hash": digest,
                    "vector": np.asarray(vector, dtype=np.float32).tobytes(),
                    "updated_at": utcnow(),
                }
                for org_id, digest, vector in chunk
            ],
        )


def embed_organisations(db: Database, encoder: Encoder, organisation_ids: list[int]) -> None:
    """Profile and embed a few organisations now (a registration), so searches find them before a rebuild."""
    with db.session() as session:
        sources = registry.load_sources(session, organisation_ids=organisation_ids)
    texts = {i: profile_text(src, encoder.truncate) for i, src in sources.items()}
    ids = sorted(texts)
    vectors = encoder.encode_documents([texts[i] for i in ids])
    with db.session() as session:
        store_vectors(session, encoder.model_id, [(i, text_hash(texts[i]), vectors[j]) for j, i in enumerate(ids)])


def embed_projects(db: Database, encoder: Encoder, progress: bool = False, batch_size: int = 64) -> int:
    """Embed the project texts (title, topics, summary) that are new or changed since they were last
    embedded with this model; returns how many. Projects without text get no vector."""
    with db.session() as session:
        texts = {pid: text for pid, text in registry.project_texts(session).items() if text}
        stored = registry.project_embedding_hashes(session, encoder.model_id)
    hashes = {pid: text_hash(text) for pid, text in texts.items()}
    todo = sorted(pid for pid, digest in hashes.items() if stored.get(pid) != digest)
    with tqdm(total=len(todo), desc="embedding projects", unit=" projects", disable=not progress) as bar:
        for start in range(0, len(todo), 512):  # stored as it goes: an interrupted build keeps its work
            chunk = todo[start : start + 512]
            vectors = encoder.encode_documents([texts[p] for p in chunk], batch_size=batch_size)
            with db.session() as session:
                session.execute(
                    delete(ProjectEmbedding).where(
                        ProjectEmbedding.model_id == encoder.model_id, ProjectEmbedding.project_id.in_(chunk)
                    )
                )
                session.execute(
                    insert(ProjectEmbedding),
                    [
                        {
                            "project_id": pid,
                            "model_id": encoder.model_id,
                            "text_hash": hashes[pid],
                            "vector": np.asarray(vectors[j], dtype=np.float32).tobytes(),
                        }
                        for j, pid in enumerate(chunk)
                    ],
                )
            bar.update(len(chunk))
    return len(todo)


IDEA_WORDS = 120  # a description used as an idea is cut to an idea's length
REGISTRY_PAIRS = 600  # bilingual project descriptions of the registry used at most (each is encoded twice)


def alignment_pairs(db: Database | None, limit: int = REGISTRY_PAIRS) -> list[tuple[str, str, str]]:
    """(idea, text, English text) pairs that teach the alignment: the project's own parallel ideas
    (``seed_data/parallel_ideas.json``, eleven languages) and, where the registry holds projects
    described in English and another language (keep.eu does), up to ``limit`` of those."""
    import seed_data

    parallel = json.loads(seed_data.resource("parallel_ideas.json").read_text(encoding="utf-8"))
    pairs = [(f"seed-{n}", idea[lang], idea["en"]) for n, idea in enumerate(parallel["ideas"]) for lang in idea]
    described: list[tuple[str, str, str]] = []
    if db is not None:  # None: the project's ideas alone (an evaluation, whose data must not teach it)
        with db.session() as session:
            described = registry.bilingual_descriptions(session, limit)
    for n, (_lang, text, english) in enumerate(described):
        idea, own = " ".join(text.split()[:IDEA_WORDS]), " ".join(english.split()[:IDEA_WORDS])
        pairs += [(f"project-{n}", idea, own), (f"project-{n}", own, own)]
    return pairs


def fit_query_alignment(
    db: Database | None, encoder: Encoder, progress: bool = False
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The cross-lingual alignment of a multilingual encoder's queries (None for another encoder):
    every pair's texts encoded as queries, the map fitted (``encoders.fit_alignment``)."""
    if not is_multilingual(encoder):
        return None
    pairs = alignment_pairs(db)
    texts = sorted({t for _, a, b in pairs for t in (a, b)})
    vectors: dict[str, np.ndarray] = {}
    with tqdm(total=len(texts), desc="aligning languages", unit=" texts", disable=not progress) as bar:
        for start in range(0, len(texts), 64):
            chunk = texts[start : start + 64]
            vectors.update(zip(chunk, encoder.encode_queries(chunk), strict=True))
            bar.update(len(chunk))
    groups = np.array([g for g, _, _ in pairs])
    sources = np.stack([vectors[a] for _, a, _ in pairs])
    targets = np.stack([vectors[b] for _, _, b in pairs])
    alignment, ridge = fit_alignment(sources, targets, groups)
    return alignment, {"pairs": len(pairs), "ideas": len(set(groups.tolist())), "ridge": ridge}


def with_unindexed(db: Database, model_id: str, loaded: LoadedIndex) -> LoadedIndex:
    """The index version plus stored vectors of organisations embedded after it was built."""
    with db.session() as session:
        extra = registry.embedding_vectors(session, model_id, skip=loaded.positions)
    return loaded.extended([(i, np.frombuffer(v, dtype=np.float32)) for i, v in extra])


def current_texts(db: Database, encoder: Encoder, progress: bool = False) -> dict[int, str]:
    with db.session() as session:
        sources = registry.load_sources(session)
    return {
        org_id: profile_text(src, encoder.truncate)
        for org_id, src in tqdm(
            sorted(sources.items()), desc="profiles", unit=" orgs", disable=not progress, leave=False
        )
    }


def data_checksum(hashes: dict[int, str]) -> str:
    digest = hashlib.sha256()
    for org_id in sorted(hashes):
        digest.update(f"{org_id}:{hashes[org_id]}\n".encode())
    return digest.hexdigest()


def build_index(
    db: Database, encoder: Encoder, store: IndexStore, progress: bool = True, batch_size: int = 64
) -> BuildSummary:
    """Embed organisations whose profile text changed, then write and switch to a new version."""
    started = time.perf_counter()
    projects = embed_projects(db, encoder, progress, batch_size)
    texts = current_texts(db, encoder, progress)
    hashes = {org_id: text_hash(t) for org_id, t in texts.items()}
    with db.session() as session:
        stored = registry.embedding_hashes(session, encoder.model_id)
    todo = sorted(org_id for org_id, h in hashes.items() if stored.get(org_id) != h)
    if todo:
        vectors = encoder.encode_documents([texts[i] for i in todo], batch_size=batch_size, progress=progress)
        with db.session() as session:
            store_vectors(session, encoder.model_id, [(i, hashes[i], vectors[j]) for j, i in enumerate(todo)])
    checksum = data_checksum(hashes)
    current = store.current_name()
    if not todo and not projects and current is not None:  # new project vectors: a new version, read anew
        try:
            manifest = store.load(current, encoder.model_id, exact_max=1 << 62).manifest
            aligned = "alignment_sha256" in manifest.extra or not is_multilingual(encoder)
            if manifest.data_checksum == checksum and manifest.text_version == TEXT_VERSION and aligned:
                return BuildSummary(
                    0,
                    len(texts),
                    len(texts),
                    current,
                    False,
                    encoder.model_id,
                    TEXT_VERSION,
                    round(time.perf_counter() - started, 2),
                    projects,
                )
        except IndexRefused:
            pass  # the current version is unusable: write a fresh one
    ids = np.array(sorted(hashes), dtype=np.int64)
    matrix = np.zeros((len(ids), encoder.dimension), dtype=np.float32)
    position = {int(org_id): p for p, org_id in enumerate(ids)}
    with db.session() as session:
        for org_id, blob in registry.embedding_vectors(session, encoder.model_id):
            if org_id in position:
                matrix[position[org_id]] = np.frombuffer(blob, dtype=np.float32)
    fitted = fit_query_alignment(db, encoder, progress)
    manifest = store.write(
        ids,
        matrix,
        encoder.model_id,
        TEXT_VERSION,
        checksum,
        extra={"alignment": fitted[1]} if fitted else None,
        alignment=fitted[0] if fitted else None,
    )
    store.switch(manifest.version, encoder.model_id)
    return BuildSummary(
        len(todo),
        len(texts) - len(todo),
        len(texts),
        manifest.version,
        True,
        encoder.model_id,
        TEXT_VERSION,
        round(time.perf_counter() - started, 2),
        projects,
    )


def index_status(db: Database, encoder: Encoder, store: IndexStore) -> dict[str, Any]:
    """Versions on disk, which serves, and whether it is stale against the database."""
    texts = current_texts(db, encoder)
    checksum = data_checksum({i: text_hash(t) for i, t in texts.items()})
    current = store.current_name()
    versions = []
    for name in store.versions():
        entry: dict[str, Any] = {"version": name, "current": name == current}
        try:
            manifest = store.load(name, encoder.model_id, exact_max=1 << 62).manifest
            entry.update(
                count=manifest.count,
                model_id=manifest.model_id,
                text_version=manifest.text_version,
                built_at=manifest.built_at,
                stale=manifest.data_checksum != checksum,
                ok=True,
            )
        except IndexRefused as exc:
            entry.update(ok=False, error=str(exc))
        versions.append(entry)
    serving = next((v for v in versions if v["current"]), None)
    return {
        "current": current,
        "organisations": len(texts),
        "model_id": encoder.model_id,
        "stale": None if serving is None or not serving.get("ok") else serving["stale"],
        "versions": versions,
    }
