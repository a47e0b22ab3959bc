"""Demo data, stats, newcomer rule, configuration and the import/stats commands."""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest
from sqlalchemy import select

from matcher import eligibility, importers, vocab
from matcher.db import Database, Organisation, Participation
from matcher.newcomer import Experience, NewcomerRule
from matcher.registry import experience_of, experience_table, participation_counts
from service.cli import main
from service.config import Settings
from tests.conftest import shared_path

DEMO = Path(__file__).resolve().parent.parent / "seed_data" / "demo"


def load_demo(db: Database) -> None:
    with db.session() as s:
        for name in ("projects.csv", "organisations.csv"):
            summary = importers.import_path(s, DEMO / name, progress=False)
            assert summary.problems == []


def test_demo_data_meets_its_promise(sqlite_db: Database) -> None:
    load_demo(sqlite_db)
    with sqlite_db.session() as s:
        orgs = s.scalars(select(Organisation)).all()
        counts = participation_counts(s)
        pairs: Counter[tuple[int, int]] = Counter()
        by_project: dict[int, list[int]] = {}
        for project_id, org_id in s.execute(select(Participation.project_id, Participation.organisation_id)):
            by_project.setdefault(project_id, []).append(org_id)
    assert len(orgs) >= 300
    assert len({o.country for o in orgs}) >= 30
    assert {o.sector for o in orgs} == set(vocab.sectors())
    assert len(by_project) >= 120
    newcomers = [o for o in orgs if counts.get(o.id, 0) == 0]
    assert len(newcomers) >= 0.4 * len(orgs)
    assert all(o.description for o in newcomers)
    for members in by_project.values():
        pairs.update(combinations(sorted(members), 2))
    assert pairs.most_common(1)[0][1] >= 3  # clusters of repeat partners
    assert all(o.website and o.website.endswith(".example") for o in orgs)  # clearly fictitious


def test_newcomer_rule_and_experience(sqlite_db: Database) -> None:
    assert NewcomerRule().is_newcomer(Experience(projects=0))
    assert not NewcomerRule().is_newcomer(Experience(projects=1))
    assert NewcomerRule(max_projects=2).is_newcomer(2)
    load_demo(sqlite_db)
    with sqlite_db.session() as s:
        table = experience_table(s)
        busiest = max(table, key=lambda k: table[k].projects)
        exp = experience_of(s, busiest)
        assert exp == table[busiest]
        assert exp.projects >= 3 and exp.partners >= 2 and exp.first_year <= exp.last_year
        early = experience_table(s, before_year=2018)
        assert all(early[k].projects <= table[k].projects for k in early)
        assert sum(e.projects for e in early.values()) < sum(e.projects for e in table.values())


def test_settings_from_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"PARTNER_MATCH_INSTANCE_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'partner-match.sqlite'}"
    assert settings.index_dir == tmp_path / "index"
    assert settings.encoder == "e5"  # the multilingual model serves by default (README: why)
    custom = Settings.from_env(
        {"PARTNER_MATCH_DATABASE_URL": "postgresql+psycopg://x/y", "PARTNER_MATCH_INDEX_DIR": str(tmp_path / "idx")}
    )
    assert custom.database_url == "postgresql+psycopg://x/y" and custom.index_dir == tmp_path / "idx"


def test_country_vocabulary() -> None:
    assert vocab.normalise_country("EL") == "GR" and vocab.normalise_country("UK") == "GB"
    assert vocab.normalise_country("FI;FI") == "FI" and vocab.normalise_country("Germany") == "DE"
    assert vocab.normalise_country("") is None
    assert eligibility.counts_toward("TR", 2026) and not eligibility.counts_toward("GB", 2026)
    assert vocab.country_name("GR") == "Greece"
    assert vocab.erasmus_type_sector("Something about Vocational training") == "vet"


def test_cli_import_and_stats(runner, cli_env) -> None:
    result = runner.invoke(main, ["import", "--quiet", str(DEMO / "projects.csv"), str(DEMO / "organisations.csv")])
    assert result.exit_code == 0, result.output
    assert "140 rows read" in result.output and "140 created" in result.output
    result = runner.invoke(main, ["stats", "--json"])
    data = json.loads(result.output)
    assert data["projects"] == 140 and data["organisations"] >= 300
    assert data["newcomers"] >= 0.4 * data["organisations"]
    assert {"organisations", "projects", "participations", "newcomers", "by_source", "by_sector"} <= set(data)
    assert Path(cli_env["PARTNER_MATCH_DATABASE_URL"].removeprefix("sqlite:///")).exists()


def test_newcomer_to_erasmus_counts_only_funded_erasmus_participations(sqlite_db: Database, tmp_path: Path) -> None:
    from embeddings.encoders import HashingEncoder
    from embeddings.index import IndexStore
    from matcher.app import PartnerMatch
    from matcher.ranker import RankerStore
    from matcher.registry import counted_projects

    with sqlite_db.session() as s:
        importers.import_path(s, shared_path("cordis-2014"), progress=False)
    pm = PartnerMatch(sqlite_db, HashingEncoder(), IndexStore(tmp_path / "i"), RankerStore(tmp_path / "r"))
    with sqlite_db.session() as s:
        busiest = max(participation_counts(s).items(), key=lambda kv: kv[1])[0]
        assert counted_projects(s, NewcomerRule(), [busiest]) == {busiest: 0}  # Horizon 2020 only
        assert counted_projects(s, NewcomerRule(programmes=None), [busiest])[busiest] >= 5
    detail = pm.organisation(busiest)
    assert detail is not None and detail["experience"]["projects"] >= 5 and detail["newcomer"] is True
    assert pm.stats()["newcomers"] == pm.stats()["organisations"]
    assert "Erasmus+ and its predecessors" in pm.stats()["newcomer_rule"]
    strict = PartnerMatch(
        sqlite_db,
        HashingEncoder(),
        IndexStore(tmp_path / "i"),
        RankerStore(tmp_path / "r"),
        NewcomerRule.parse(0, "all"),
    )
    assert strict.organisation(busiest)["newcomer"] is False  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown programme family"):
        NewcomerRule.parse(0, "erasmus,lottery")


def test_third_parties_and_associated_partners_are_not_funded(sqlite_db: Database) -> None:
    with sqlite_db.session() as s:
        importers.import_path(s, shared_path("cordis-ecsel"), progress=False)
        pairs = set(s.execute(select(Participation.role, Participation.funded).distinct()).all())
    assert ("other", False) in pairs and ("coordinator", True) in pairs and ("other", True) not in pairs


OFFICIAL_TYPES = {  # the Project Results Platform's organisation-type labels and the sector each means here
    "Higher education institution (tertiary level)": "higher_education",
    "School/Institute/Educational centre – General education (pre-primary level)": "school",
    "School/Institute/Educational centre – General education (primary level)": "school",
    "School/Institute/Educational centre – General education (secondary level)": "school",
    "School/Institute/Educational centre – Vocational Training (secondary level)": "vet",
    "School/Institute/Educational centre – Vocational Training (tertiary level)": "vet",
    "School/Institute/Educational centre – Adult education": "adult_education",
    "Adult education provider": "adult_education",
    "Vocational education and training provider": "vet",
    "Youth organisation": "youth",
    "Youth council": "youth",
    "Group of young people active in youth work": "youth",
    "Youth centre": "youth",
    "Small and medium sized enterprise": "enterprise",
    "Large enterprise": "enterprise",
    "Chamber of Commerce": "enterprise",
    "Social partner or other representative of working life (chambers of commerce, trade union, trade association)": "civil_society",
    "Trade union": "civil_society",
    "National Public body": "public_body",
    "Regional Public body": "public_body",
    "Local Public body": "public_body",
    "European or international public body": "public_body",
    "Accreditation, certification or qualification body": "public_body",
    "Body providing career guidance, professional counselling and information services": "public_body",
    "Research Institute/Centre": "research",
    "Non-governmental organisation/association/social enterprise": "civil_society",
    "Non profit organisations": "civil_society",
    "European NGO": "civil_society",
    "Foundation": "civil_society",
    "Cultural organisation": "civil_society",
    "Library": "civil_society",
    "Museum": "civil_society",
    "Sport federation": "civil_society",
    "Sport club": "civil_society",
    "Network": "civil_society",
    "Hospital": "public_body",
    "Other": "other",
}


@pytest.mark.parametrize(("label", "sector"), OFFICIAL_TYPES.items())
def test_every_official_erasmus_plus_type_label(label: str, sector: str) -> None:
    assert vocab.erasmus_type_sector(label) == sector
    assert vocab.erasmus_type_sector(label.upper()) == sector  # the export's case varies
    assert vocab.erasmus_type_sector(f"  {label} ") == sector


def test_hes_is_higher_or_secondary_and_refined_by_name() -> None:
    label, sector = vocab.cordis_activity("HES", "KATHOLIEKE UNIVERSITEIT LEUVEN")
    assert label == "Higher or secondary education establishment (HES)" and sector == "higher_education"
    assert vocab.cordis_activity("HES", "Lycée polyvalent Jean Moulin")[1] == "school"
    assert vocab.cordis_activity("HES", "Gymnasium Bayreuth")[1] == "school"
    assert vocab.cordis_activity("HES", "London Business School")[1] == "higher_education"
    assert vocab.cordis_activity("HES", None)[1] == "higher_education"  # no name: the common case
    assert vocab.cordis_activity("REC", "Lycée des sciences")[1] == "research"  # only HES is refined
