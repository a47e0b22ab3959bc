"""Load benchmark (not a test): 8 concurrent clients for 30 s against gunicorn on real data.

Run from the project root:  .venv/bin/python bench/bench_load.py [--clients 8] [--seconds 30]
It imports ../shared/data/cordis-h2020-graph.zip and ../shared/data/cordis-2014 into a
temporary instance, builds the index with the real model, starts gunicorn on 127.0.0.1, and
prints request p50/p99 and errors next to the p50 of query encode plus search measured in
the same run, as a ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
IDEAS = [
    "robotics for manufacturing and vocational training",
    "clinical trials in rare diseases",
    "climate change adaptation in coastal cities",
    "teacher training in digital skills",
    "battery materials and recycling",
    "inclusion of migrants through language learning",
    "cyber security for small companies",
    "marine biology and sustainable fisheries",
    "quantum sensors",
    "youth participation in local democracy",
    "food safety and nutrition for schools",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--workers",
        default="2",
        help="gunicorn workers; several, comma-separated (e.g. 2,4), are measured in turn with each --threads",
    )
    parser.add_argument(
        "--threads",
        default="4",
        help="threads per worker; several, comma-separated (e.g. 4,1), are measured in turn on one instance",
    )
    parser.add_argument(
        "--encoder",
        default="minilm",
        help="model of the index and the workers (the service's default, e5, embeds the 37,500 organisations "
        "about six times more slowly; a request's cost differs by the query encoding only)",
    )
    parser.add_argument(
        "--preload",
        default="1",
        help="gunicorn with service/gunicorn_conf.py (workers forked from a warm master, sharing the model and "
        "matcher); several, comma-separated (e.g. 1,0), are measured in turn",
    )
    parser.add_argument(
        "--close",
        action="store_true",
        help="a new connection for every request (as nginx opens them upstream by default) instead of one "
        "kept alive per client",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"{SHARED} not found: the load benchmark needs the real data")
    from embeddings.encoders import load_encoder
    from embeddings.index import IndexStore
    from matcher import importers
    from matcher.db import Database
    from matcher.indexing import build_index

    with tempfile.TemporaryDirectory(prefix="partner-match-load-") as tmp:
        env = {
            **os.environ,
            "PARTNER_MATCH_INSTANCE_DIR": tmp,
            "PARTNER_MATCH_RATE_LIMIT": "1000000/minute",
            "HF_HUB_OFFLINE": "1",
            "PARTNER_MATCH_ENCODER": args.encoder,
        }
        db_url = f"sqlite:///{tmp}/partner-match.sqlite"
        db = Database(db_url).upgrade()
        t = time.perf_counter()
        for path in (SHARED / "cordis-h2020-graph.zip", SHARED / "cordis-2014"):
            with db.session() as s:
                importers.import_path(s, path, progress=False)
        print(f"import: {time.perf_counter() - t:.1f} s")
        encoder = load_encoder(args.encoder)
        store = IndexStore(Path(tmp) / "index")
        t = time.perf_counter()
        summary = build_index(db, encoder, store, progress=True)
        print(f"index build: {summary.total} organisations in {time.perf_counter() - t:.1f} s")
        loaded = store.load(store.current_name(), encoder.model_id)
        with db.session() as s:
            from sqlalchemy import select

            from matcher.db import Participation

            active = sorted({o for (o,) in s.execute(select(Participation.organisation_id).limit(20000))})
        db.dispose()

        # the in-process floor: encode one query and search the index (the model itself, not the
        # service's cache of query vectors, which would answer the repeated ideas from memory)
        model = getattr(encoder, "inner", encoder)
        inner = []
        for i in range(200):
            t = time.perf_counter()
            loaded.search(model.encode_queries([IDEAS[i % len(IDEAS)]])[0], 10)
            inner.append(time.perf_counter() - t)
        inner_p50 = statistics.median(inner) * 1000

        def measure(workers: int, threads: int, preload: bool) -> dict[str, Any]:
            port = free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    *(["-c", "python:service.gunicorn_conf"] if preload else []),
                    "-w",
                    str(workers),
                    "--threads",
                    str(threads),
                    "-b",
                    f"127.0.0.1:{port}",
                    "--timeout",
                    "120",
                    "service:create_app()",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                deadline = time.time() + 300
                while time.time() < deadline:
                    try:
                        if requests.get(base + "/readyz", timeout=60).status_code == 200:
                            break
                    except requests.RequestException:
                        pass
                    time.sleep(1)
                else:
                    sys.exit("gunicorn did not become ready")
                for _ in range(workers * 4):  # warm every worker's matcher
                    requests.post(base + "/api/v1/recommendations", json={"idea": "warm up", "k": 10}, timeout=120)
                latencies: list[float] = []
                errors: list[str] = []
                lock = threading.Lock()
                stop_at = time.time() + args.seconds

                # a connection per request, as a proxy in front of gunicorn opens them, or one kept
                # alive per client (a kept connection stays with the worker that accepted it)
                headers = {"Connection": "close"} if args.close else {}

                def client(seed: int) -> None:
                    rng = random.Random(seed)
                    session = requests.Session()
                    while time.time() < stop_at:
                        applicant = rng.choice(active)
                        partners = rng.sample(active, 2)
                        body: dict[str, Any] = {
                            "idea": rng.choice(IDEAS),
                            "applicant": applicant,
                            "partners": partners,
                            "k": 10,
                        }
                        t0 = time.perf_counter()
                        try:
                            r = session.post(base + "/api/v1/recommendations", json=body, timeout=60, headers=headers)
                            ok = r.status_code == 200
                            problem = None if ok else f"HTTP {r.status_code}: {r.text[:200]}"
                        except requests.RequestException as exc:
                            problem = str(exc)
                        elapsed = time.perf_counter() - t0
                        with lock:
                            latencies.append(elapsed)
                            if problem:
                                errors.append(problem)

                threads_ = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
                for th in threads_:
                    th.start()
                for th in threads_:
                    th.join()
                rss, private = worker_memory(server.pid)  # after the load: model and matcher in
            finally:
                server.terminate()
                server.wait(timeout=30)
            arr = np.array(latencies) * 1000
            return {
                "workers": workers,
                "threads": threads,
                "preload": preload,
                "requests": len(arr),
                "throughput_per_s": round(len(arr) / args.seconds, 1),
                "errors": len(errors),
                "error_samples": errors[:5],
                "p50_ms": round(float(np.percentile(arr, 50)), 1),
                "p99_ms": round(float(np.percentile(arr, 99)), 1),
                "rss_mib_per_worker": rss,
                "private_mib_per_worker": private,
            }

        runs = [
            measure(int(w), int(t), p == "1")
            for p in args.preload.split(",")
            for w in args.workers.split(",")
            for t in args.threads.split(",")
        ]
    if args.json:
        report = {
            "organisations": summary.total,
            "clients": args.clients,
            "seconds": args.seconds,
            "encode_search_p50_ms": round(inner_p50, 1),
            "runs": runs,
            # the first configuration's figures at the top level, as before
            **{k: v for k, v in runs[0].items() if k not in ("threads", "error_samples")},  # workers too
        }
        print(json.dumps(report))
        return
    for run in runs:
        print(
            f"\n{args.clients} clients x {args.seconds:.0f} s against gunicorn ({run['workers']} workers x "
            f"{run['threads']} threads{', preloaded' if run['preload'] else ''}), {summary.total} organisations"
        )
        print(f"requests: {run['requests']}  ({run['throughput_per_s']}/s)   errors: {run['errors']}")
        print(f"request latency: p50 {run['p50_ms']} ms   p99 {run['p99_ms']} ms")
        print(
            f"memory per worker after the load (MiB): resident {run['rss_mib_per_worker']}, "
            f"its own (not shared) {run['private_mib_per_worker']}"
        )
        for e in run["error_samples"]:
            print("  error:", e)
    print(f"in-process query encode + search: p50 {inner_p50:.1f} ms")
    for run in runs[1:]:
        print(
            f"{run['workers']} x {run['threads']}{', preloaded' if run['preload'] else ''} against "
            f"{runs[0]['workers']} x {runs[0]['threads']}: "
            "throughput x"
            f"{run['throughput_per_s'] / runs[0]['throughput_per_s']:.2f}, p99 x{run['p99_ms'] / runs[0]['p99_ms']:.2f}"
        )


def worker_memory(master: int) -> tuple[list[float], list[float]]:
    """Each of gunicorn's workers' (the master's children) resident memory and the part of it that is
    its own (private pages: not shared with the master or the other workers), in MiB, from /proc."""
    children = []  # by parent id: /proc's per-thread children file misses a worker forked from another thread
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"PPid:\t{master}\n" in status.read_text():
                children.append(status.parent.name)
        except OSError:
            continue
    rss, private = [], []
    for pid in children:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        kb = {line.split(":")[0]: int(line.split()[1]) for line in rollup[1:] if line.split()[1].isdigit()}
        rss.append(round(kb.get("Rss", 0) / 1024, 1))
        private.append(round((kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)) / 1024, 1))
    return rss, private


if __name__ == "__main__":
    main()
