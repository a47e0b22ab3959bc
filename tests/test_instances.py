"""Several service instances on one PostgreSQL and one Redis, as on several machines.

Two gunicorn processes on two ports, each with its own index folder: the second builds its index
from the vectors the database already holds (nothing embedded again, same checksum); a registration
on one is recommended by the other within seconds; rate limits are counted once, in Redis.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import PG_URL, ROOT, _wipe, bearer, import_demo, make_app

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _gunicorn(env: dict[str, str]) -> Iterator[str]:
    port = _port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-w", "1", "--threads", "2", "-b", f"127.0.0.1:{port}"]
        + ["service:create_app()"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(150):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


def test_two_instances_share_one_registry_its_vectors_and_their_rate_limits(tmp_path: Path) -> None:
    import redis
    import requests

    from embeddings.encoders import HashingEncoder
    from embeddings.index import IndexStore
    from matcher.db import Database
    from matcher.indexing import build_index

    if not PG_URL:
        pytest.skip("PostgreSQL tests need PARTNER_MATCH_TEST_DATABASE_URL (set by .ci/run)")
    _wipe(PG_URL)
    redis.Redis(host="127.0.0.1", port=6379, db=14).flushdb()
    shared = {
        "PARTNER_MATCH_DATABASE_URL": PG_URL,
        "PARTNER_MATCH_ENCODER": "hashing",
        "PARTNER_MATCH_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/14",
        "PARTNER_MATCH_SECRET_KEY": "shared-by-both-instances",  # a session signed by one is valid on the other
        "PARTNER_MATCH_SECURE_COOKIES": "0",  # plain http on 127.0.0.1
    }
    env = {
        name: {
            **shared,
            "PARTNER_MATCH_INSTANCE_DIR": str(tmp_path / name),
            "PARTNER_MATCH_INDEX_DIR": str(tmp_path / name / "index"),
        }
        for name in ("a", "b")
    }
    import_demo(PG_URL, tmp_path / "a" / "index")  # instance a imports and embeds
    db = Database(PG_URL)
    synced = build_index(db, HashingEncoder(), IndexStore(tmp_path / "b" / "index"), progress=False)
    db.dispose()
    assert synced.embedded == 0 and synced.reused == synced.total > 300  # b re-embeds nothing
    a_index = IndexStore(tmp_path / "a" / "index")
    b_index = IndexStore(tmp_path / "b" / "index")
    a_manifest = a_index.load(str(a_index.current_name()), HashingEncoder().model_id).manifest
    b_manifest = b_index.load(str(b_index.current_name()), HashingEncoder().model_id).manifest
    assert a_manifest.data_checksum == b_manifest.data_checksum  # verified: the same vectors

    token = bearer(make_app(env["a"]), "multi@example.org")  # an account both instances know
    with _gunicorn(env["a"]) as a, _gunicorn(env["b"]) as b:
        new = {
            "name": "Reykjavik Green Apprenticeship Centre",
            "description": "Vocational training in green construction for apprentices in Iceland.",
            "country": "IS",
            "sector": "vet",
        }
        created = requests.post(f"{a}/api/v1/organisations", json=new, headers=token, timeout=60)
        assert created.status_code == 201, created.text
        org_id = created.json()["id"]
        asked = {"idea": "green construction apprentices", "countries": ["IS"], "k": 50, "newcomer_share": 0.0}
        started, seen = time.monotonic(), False
        while not seen and time.monotonic() - started < 15:
            found = requests.post(f"{b}/api/v1/recommendations", json=asked, timeout=60).json()
            seen = org_id in [r["organisation"]["id"] for r in found["results"]]
            time.sleep(0.3)
        assert seen, "the other instance did not recommend the new organisation within 15 s"
        # sign-in allows 10 attempts a minute per client: counted once across both instances
        browser = requests.Session()
        form = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', browser.get(f"{a}/login", timeout=30).text)
        assert form is not None
        attempt = {"csrf_token": form.group(1), "email": "multi@example.org", "password": "not the password"}
        statuses = [browser.post(f"{(a, b)[i % 2]}/login", data=attempt, timeout=30).status_code for i in range(14)]
    assert statuses.count(429) == 4 and 429 not in statuses[:10], statuses


def _workers(master: int, expected: int) -> list[int]:
    """gunicorn's workers: the processes whose parent is ``master`` (waiting until ``expected`` are up;
    /proc's per-thread children file can miss a worker forked from another thread)."""
    found: list[int] = []
    for _ in range(100):
        found = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            except OSError:
                continue
            if fields.get("PPid", "").strip() == str(master):
                found.append(int(status.parent.name))
        if len(found) >= expected:
            break
        time.sleep(0.1)
    return sorted(found)


def _private_mib(pid: int) -> float:
    """Memory only this process holds (private pages, clean or dirty), from /proc/<pid>/smaps_rollup."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    kb = sum(
        int(line.split()[1]) for line in rollup.splitlines() if line.startswith(("Private_Clean", "Private_Dirty"))
    )
    return kb / 1024


def test_preloaded_workers_share_one_warm_matcher_and_answer_with_it(demo_env: dict[str, str], tmp_path: Path) -> None:
    """With ``-c python:service.gunicorn_conf`` the master loads the model, index and matcher once and
    forks: the workers answer (the model never ran before the fork, so nothing hangs) and each holds
    less memory of its own than a worker that loaded everything itself."""
    import requests

    env = {**os.environ, **demo_env, "PARTNER_MATCH_ENCODER": "hashing"}
    body = {"idea": "digital skills for teachers in rural schools", "k": 5}

    def serve(preload: bool) -> tuple[list[dict[str, object]], list[float], str]:
        port, log = _port(), tmp_path / f"gunicorn-{preload}.log"
        config = ["-c", "python:service.gunicorn_conf"] if preload else []
        with log.open("w") as out:
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "gunicorn"), *config, "-w", "2", "--threads", "2"]
                + ["-b", f"127.0.0.1:{port}", "service:create_app()"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=out,
            )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(150):
                try:
                    if requests.get(base + "/livez", timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.2)
            children = _workers(server.pid, 2)
            assert len(children) == 2, children
            answers = [requests.post(base + "/api/v1/recommendations", json=body, timeout=60) for _ in range(8)]
            assert all(a.status_code == 200 for a in answers), [a.text[:200] for a in answers]
            private = [_private_mib(pid) for pid in children]
        finally:
            server.terminate()
            server.wait(10)
        return [a.json()["results"] for a in answers], private, log.read_text()

    shared_answers, shared_private, log = serve(preload=True)
    assert "warmed before forking workers: 339 organisations" in log, log
    own_answers, own_private, _ = serve(preload=False)
    assert shared_answers == own_answers and all(a == shared_answers[0] for a in shared_answers)
    # a worker that loaded for itself (one that served a request) holds the matcher privately; a
    # preloaded one holds it shared, whatever it served
    assert max(shared_private) < 0.8 * max(own_private), (shared_private, own_private)
