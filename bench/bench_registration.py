"""From a registration to being recommended, on the real graph: incremental refresh against a rebuild.

Run from the project root:  .venv/bin/python bench/bench_registration.py [--registrations 20] [--json]

Imports ../shared/data/cordis-h2020-graph.zip into a temporary SQLite registry (about 37,500
organisations), builds the matcher once, then registers organisations one by one; after each, the
matcher in hand is refreshed (what a worker now does) and, side by side in the same run, rebuilt from
the whole registry (what every worker did before). Prints the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
GRAPH = ROOT.parent / "shared" / "data" / "cordis-h2020-graph.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registrations", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not GRAPH.exists():
        sys.exit(f"error: {GRAPH} not found (the benchmark reads the graph zip from ../shared/data)")
    from matcher import importers
    from matcher.db import Database
    from matcher.recommend import Matcher, MatchRequest

    with tempfile.TemporaryDirectory(prefix="partner-match-bench-reg-") as tmp:
        db = Database(f"sqlite:///{tmp}/graph.sqlite").upgrade()
        with db.session() as s:
            importers.import_path(s, GRAPH, progress=not args.json)
        matcher = Matcher.from_db(db, None, None)
        refresh, rebuild, found = [], [], 0
        for n in range(args.registrations):
            with db.session() as s:
                org = importers.register_organisation(
                    s, {"name": f"Bench Newcomer {n}", "country": "NO", "sector": "vet", "description": "New."}
                )
            t = time.perf_counter()
            fresh = matcher.refreshed(db, None)
            refresh.append(time.perf_counter() - t)
            t = time.perf_counter()
            Matcher.from_db(db, None, None)
            rebuild.append(time.perf_counter() - t)
            if fresh is None:
                sys.exit("error: the refresh fell back to a rebuild")
            matcher = fresh
            req = MatchRequest(applicant=int(matcher.history.org_ids[0]), countries=["NO"])
            pool = matcher.candidates(req, matcher.positions(req.members))
            found += matcher.history.org_position[org] in set(pool.tolist())  # a candidate of the next search
        db.dispose()
    report = {
        "organisations": int(len(matcher.history.org_ids)),
        "refresh_ms_p50": round(statistics.median(refresh) * 1000, 1),
        "rebuild_ms_p50": round(statistics.median(rebuild) * 1000, 1),
        "rebuild_over_refresh": round(statistics.median(rebuild) / statistics.median(refresh), 1),
        "registrations": args.registrations,
        "candidates_after_refresh": found,
    }
    print(json.dumps(report) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))


if __name__ == "__main__":
    main()
