"""Two versions of the matcher timed query by query, side by side, on a shared and noisy machine.

Run from the project root:
    git worktree add /tmp/old <commit>   (its .venv may be a link to this one's)
    .venv/bin/python bench/bench_paired.py --old /tmp/old [--new .] [--orgs 37500] [--with-model]
        [--queries 120] [--json]

``bench_request.py`` run once per version measures each in its own minutes; on a machine shared with
others (a virtual machine whose neighbours come and go) two such runs of one commit differed by up to
30 %, more than most changes. Here each version builds the same registry (``bench_request.replicate``
of the real graph) in its own long-lived process, and the driver sends them the same queries in turns
(old-new, new-old, new-old, old-new, ...), so both see the same machine within milliseconds. It prints
both medians and the median of the per-query ratios new/old, the figure to quote.

With ``--with-model`` the idea is encoded by e5 on every query (each query's idea differs: no cache)
and ``beyond_encode`` is each query's time less its own encoding. Each version's worker is this file
run with the version's tree first on the path (its own ``matcher`` and ``bench_request``), so a
commit that has ``bench/bench_request.py`` with ``base_history``, ``replicate`` and ``Timed`` can be
compared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

IDEA = "digital skills and inclusion for vocational students in rural areas"


def worker(tree: Path, orgs: int, with_model: bool) -> None:
    """Build the registry in ``tree``'s code, then answer "i" on stdin with "ms encode_ms" on stdout."""
    sys.path[:0] = [str(tree), str(tree / "bench")]
    import bench_request as b  # the tree's own
    from threadpoolctl import threadpool_limits

    import matcher as package
    from matcher.recommend import Matcher, MatchRequest
    from service.state import keep_freed_memory

    if not Path(package.__file__).resolve().is_relative_to(tree):  # an installed copy would shadow the tree
        sys.exit(f"error: matcher was imported from {package.__file__}, not from {tree}")
    keep_freed_memory()
    threadpool_limits(limits=1, user_api="blas")  # as a gunicorn worker
    h = b.replicate(b.base_history(Path(tempfile.gettempdir()) / "partner-match-bench-graph.npz"), orgs)
    encoder, profiles = None, None
    if with_model:
        from types import SimpleNamespace

        from embeddings.encoders import CachingEncoder, limit_threads, load_encoder
        from embeddings.index import HalfVectors

        limit_threads(1)
        encoder = CachingEncoder(b.Timed(load_encoder("e5").inner))  # type: ignore[attr-defined]
        rng = np.random.default_rng(2)
        vectors = rng.standard_normal((len(h.project_ids), encoder.dimension), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        h.keep_texts(np.arange(len(h.project_ids)), HalfVectors(vectors))
        vectors = rng.standard_normal((len(h.org_ids), encoder.dimension), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        half = HalfVectors(vectors)
        profiles = SimpleNamespace(ids=h.org_ids, vectors=vectors, align=lambda q: q, similarities=half.dot)
    matcher = Matcher(h, {}, {}, encoder, profiles)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    inc = h.incidence.tocsc()
    pairs: list[tuple[int, int]] = []
    while len(pairs) < 400:  # as bench_request: an applicant and a partner that worked together
        members = inc[:, int(rng.integers(0, inc.shape[1]))].indices
        if len(members) >= 3:
            pairs.append((int(h.org_ids[members[0]]), int(h.org_ids[members[1]])))
    print("ready", flush=True)
    for line in sys.stdin:
        i = int(line)
        applicant, partner = pairs[i % len(pairs)]
        if encoder is not None:
            encoder.inner.spent = 0.0  # type: ignore[attr-defined]
        started = time.perf_counter()
        idea = f"{IDEA} {applicant} {i}" if with_model else ""
        matcher.recommend(MatchRequest(idea=idea, applicant=applicant, partners=[partner]))
        spent = encoder.inner.spent if encoder is not None else 0.0  # type: ignore[attr-defined]
        print(f"{(time.perf_counter() - started) * 1000} {spent * 1000}", flush=True)


def compare(old: Path, new: Path, orgs: int, with_model: bool, queries: int) -> dict[str, Any]:
    procs = {}
    for name, tree in (("old", old), ("new", new)):
        cmd = [sys.executable, __file__, "--worker", str(tree.resolve()), "--orgs", str(orgs)]
        procs[name] = subprocess.Popen(
            [*cmd, *(["--with-model"] if with_model else [])],
            cwd=tree,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
    for name, proc in procs.items():
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            sys.exit(f"error: the {name} version's worker did not start (see its error above)")
    times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    for i in range(queries):
        for name in ("old", "new") if i % 4 in (0, 3) else ("new", "old"):  # ABBA: drift cancels
            proc = procs[name]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"{i}\n")
            proc.stdin.flush()
            ms, encode = map(float, proc.stdout.readline().split())
            times[name].append((ms, encode))
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    o, n = np.array(times["old"][5:]), np.array(times["new"][5:])  # the first queries warm caches
    out: dict[str, Any] = {
        "orgs": orgs,
        "with_model": with_model,
        "old_p50_ms": round(float(np.median(o[:, 0])), 1),
        "new_p50_ms": round(float(np.median(n[:, 0])), 1),
        "ratio_p50": round(float(np.median(n[:, 0] / o[:, 0])), 3),
    }
    if with_model:
        out["old_beyond_encode_p50_ms"] = round(float(np.median(o[:, 0] - o[:, 1])), 1)
        out["new_beyond_encode_p50_ms"] = round(float(np.median(n[:, 0] - n[:, 1])), 1)
        out["ratio_beyond_encode_p50"] = round(float(np.median((n[:, 0] - n[:, 1]) / (o[:, 0] - o[:, 1]))), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="the other version's tree (a git worktree)")
    parser.add_argument("--new", type=Path, default=Path.cwd(), help="this version's tree (default: here)")
    parser.add_argument("--orgs", type=int, action="append", help="registry size (repeatable; default 37,500)")
    parser.add_argument("--with-model", action="store_true", help="encode each query's idea with e5")
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, (args.orgs or [37_500])[0], args.with_model)
        return
    if args.old is None or not (args.old / "matcher").is_dir():
        parser.error("--old must name another version's tree (git worktree add /tmp/old <commit>)")
    runs = [compare(args.old, args.new, orgs, args.with_model, args.queries) for orgs in args.orgs or [37_500]]
    if args.json:
        print(json.dumps({"runs": runs}))
        return
    for run in runs:
        line = f"{run['orgs']:>8,} organisations: old p50 {run['old_p50_ms']} ms, new {run['new_p50_ms']} ms"
        line += f", per-query ratio new/old p50 {run['ratio_p50']}"
        if args.with_model:
            line += (
                f"; beyond the encode old {run['old_beyond_encode_p50_ms']} ms, new "
                f"{run['new_beyond_encode_p50_ms']} ms (ratio {run['ratio_beyond_encode_p50']})"
            )
        print(line)


if __name__ == "__main__":
    main()
