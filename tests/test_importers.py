"""Importers: exact counts on real CORDIS data, idempotency, bad rows, Erasmus+ and ECHE formats."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from matcher import importers
from matcher.db import Database, DuplicateCandidate, ImportRun, Organisation, Participation, Project
from tests.conftest import shared_path

ERASMUS_DIR = ("erasmus-plus",)


def counts(db: Database) -> tuple[int, int, int]:
    with db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Organisation, Project, Participation))


def run_import(db: Database, path: Path, fmt: str | None = None) -> importers.ImportSummary:
    with db.session() as s:
        return importers.import_path(s, path, fmt, progress=False)


def test_cordis_2014_exact_counts_and_idempotent(db: Database) -> None:
    path = shared_path("cordis-2014")
    first = run_import(db, path)
    assert counts(db) == (5752, 3320, 12347)
    assert first.counts["organisations_created"] == 5752
    assert first.problems == []
    second = run_import(db, path)
    assert second.changed == 0, second.counts
    assert counts(db) == (5752, 3320, 12347)
    with db.session() as s:
        never_named = s.scalar(select(func.count()).select_from(Organisation).where(Organisation.name.is_(None)))
        assert never_named == 70  # known only by PIC: not broken
        assert s.scalar(select(func.count()).select_from(ImportRun)) == 2


def test_cordis_thirdparty_and_roles(db: Database) -> None:
    run_import(db, shared_path("cordis-2014"))
    with db.session() as s:
        roles = dict(s.execute(select(Participation.role, func.count()).group_by(Participation.role)).all())
    # every thirdParty row of cordis-2014 repeats a participant row: the stronger role wins
    assert roles == {"coordinator": 3323, "partner": 12347 - 3323}  # 3 projects name two coordinators
    run_import(db, shared_path("cordis-ecsel"))
    with db.session() as s:
        roles = dict(s.execute(select(Participation.role, func.count()).group_by(Participation.role)).all())
    assert roles["other"] > 0  # ECSEL's own third parties stay "other"


@pytest.mark.slow
def test_graph_zip_and_merge_of_three(db: Database) -> None:
    graph = shared_path("cordis-h2020-graph.zip")
    run_import(db, graph)
    assert counts(db) == (35776, 31430, 144151)
    run_import(db, shared_path("cordis-2014"))
    run_import(db, shared_path("cordis-ecsel"))
    assert counts(db) == (37546, 34375, 155221)


@pytest.mark.slow
def test_merge_of_three_other_order(sqlite_db: Database) -> None:
    for name in ("cordis-ecsel", "cordis-2014", "cordis-h2020-graph.zip"):
        run_import(sqlite_db, shared_path(name))
    assert counts(sqlite_db) == (37546, 34375, 155221)
    assert run_import(sqlite_db, shared_path("cordis-h2020-graph.zip")).changed == 0


def write_erasmus_csv(path: Path, rows: list[dict[str, str]]) -> None:
    headers = list(rows[0])
    for row in rows[1:]:
        headers += [h for h in row if h not in headers]
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=headers, restval="")
        writer.writeheader()
        writer.writerows(rows)


def real_erasmus_rows() -> list[dict[str, str]]:
    folder = shared_path(*ERASMUS_DIR)
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


def test_real_erasmus_plus_rows(db: Database, tmp_path: Path) -> None:
    rows = real_erasmus_rows()
    path = tmp_path / "ErasmusPlus_export.csv"
    write_erasmus_csv(path, rows)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    summary = run_import(db, path)
    assert summary.format == "erasmus-plus"
    assert summary.problems == []
    with db.session() as s:
        project = s.scalar(select(Project).where(Project.identifier == "2014-1-LI01-KA200-000005"))
        assert project is not None and project.title == "Community Education" and project.call_year == 2014
        members = {p.organisation.name: p for p in project.participations}
        coordinator = members["Europäisches Institut für interkulturelle und interreligiöse Forschung"]
        assert coordinator.role == "coordinator" and coordinator.organisation.country == "LI"
        assert coordinator.organisation.sector == "other"
        diakonie = members["Diakonisches Werk der evangelischen Kirche in Württemberg e.V."].organisation
        assert diakonie.country == "DE" and diakonie.sector == "civil_society" and diakonie.city == "Stuttgart"
        assert members["Liechtenstein-Institut"].organisation.sector == "research"
        assert members["KATHOLISCHE FACHHOCHSCHULE NORDRHEIN-WESTFALEN"].organisation.sector == "higher_education"
        assert {p.role for n, p in members.items() if p is not coordinator} == {"partner"}
        greek = s.scalar(select(Organisation).where(Organisation.name == "UNIVERSITY OF PIRAEUS RESEARCH CENTER"))
        assert greek is not None and greek.country == "GR"  # the export's EL
        vet = s.scalar(select(Organisation).where(Organisation.name == "FONDO FORMACION EUSKADI SLL"))
        assert vet is not None and vet.sector == "vet"
        n_orgs = s.scalar(select(func.count()).select_from(Organisation))
        n_parts = s.scalar(select(func.count()).select_from(Participation))
    expected = sum(
        1
        for r in rows
        for k, v in r.items()
        if v and (k == "Coordinating organisation name" or (k.startswith("Partner") and k.endswith("name")))
    )
    assert n_parts == expected and n_orgs == expected
    assert run_import(db, path).changed == 0


def test_erasmus_plus_xlsx_form(sqlite_db: Database, tmp_path: Path) -> None:
    rows = real_erasmus_rows()
    headers = list(rows[0])
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(headers)
    for row in rows:
        sheet.append([row.get(h, "") for h in headers])
    path = tmp_path / "export.xlsx"
    workbook.save(path)
    summary = run_import(sqlite_db, path)
    assert summary.format == "erasmus-plus" and summary.counts["projects_created"] == 2


BROKEN = """projectID;projectAcronym;organisationID;vatNumber;name;shortName;SME;activityType;street;postCode;city;country;nutsCode;geolocation;organizationURL;contactForm;order;role;ecContribution;netEcContribution;totalCost;endOfParticipation;active
1;A;999999901;;GOOD UNIVERSITY;;;HES;;;;DE;;;;;1;coordinator;10.0;;;;
1;A;999999902;;BAD COUNTRY;;;PRC;;;;ZZ;;;;;2;participant;;;;;
1;A;;;;;;PRC;;;;FR;;;;;3;participant;;;;;
1;A;999999904;;TOO FEW COLUMNS;;;PRC;;;;FR
1;A;999999905;;;;;REC;;;;IT;;;;;5;participant;;;;;
"""
PROJECTS = """id;acronym;status;title;startDate;endDate;totalCost;ecMaxContribution;legalBasis;topics;frameworkProgramme;masterCall;subCall;fundingScheme;nature;objective;contentUpdateDate;rcn;grantDoi
1;A;CLOSED;A project;2019-01-01;2020-01-01;;;;T1;H2020;;;RIA;;Some objective;;;
2;B;CLOSED;Bad date;2019-13-45;;;;;;H2020;;;RIA;;;;;
"""


def test_broken_rows_reported_by_line(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "cordis"
    folder.mkdir()
    (folder / "organization.csv").write_text(BROKEN, encoding="utf-8")
    (folder / "project.csv").write_text(PROJECTS, encoding="utf-8")
    summary = run_import(db, folder)
    problems = {(Path(p.file).name, p.line): p.reason for p in summary.problems}
    assert "unknown country code 'ZZ'" in problems[("organization.csv", 3)]
    assert "neither a name nor an identifier" in problems[("organization.csv", 4)]
    assert "expected 23 columns, found 12" in problems[("organization.csv", 5)]
    assert "bad date" in problems[("project.csv", 3)]
    assert len(summary.problems) == 4
    with db.session() as s:
        pics = set(s.scalars(select(Organisation.pic)))
        run = s.scalars(select(ImportRun)).one()
    assert pics == {"999999901", "999999905"}  # the PIC-only organisation is good
    assert len(run.problems) == 4


def test_unreadable_file_changes_nothing(db: Database, tmp_path: Path, runner, cli_env) -> None:
    run_import(db, shared_path("cordis-2014"))
    before = counts(db)
    garbage = tmp_path / "broken.zip"
    garbage.write_bytes(b"\x00\x01 not a zip")
    with pytest.raises(importers.ImportFailed, match="cannot be read as a zip"):
        run_import(db, garbage)
    latin = tmp_path / "export.csv"
    latin.write_bytes("Project Identifier,Project Title\n1,Caf\xe9\n".encode("latin-1"))
    with pytest.raises(importers.ImportFailed, match="not UTF-8"):
        run_import(db, latin)
    missing_columns = tmp_path / "cordis"
    missing_columns.mkdir()
    (missing_columns / "project.csv").write_text("id;title\n1;x\n")
    (missing_columns / "organization.csv").write_text("projectID;name\n1;x\n")
    with pytest.raises(importers.ImportFailed, match="missing column"):
        run_import(db, missing_columns)
    assert counts(db) == before

    from service.cli import main

    result = runner.invoke(main, ["import", "--quiet", str(garbage)])
    assert result.exit_code == 1
    assert "cannot be read as a zip" in result.output and "nothing was imported" in result.output


def test_same_project_org_rows_merge_and_names(sqlite_db: Database, tmp_path: Path) -> None:
    folder = tmp_path / "cordis"
    folder.mkdir()
    header = BROKEN.splitlines()[0]
    (folder / "organization.csv").write_text(
        "\n".join(
            [
                header,
                "1;A;999999901;;OLD NAME GMBH;;;PRC;;;;DE;;;;;1;thirdParty;;;;;",
                "1;A;999999901;;OLD NAME GMBH;ON;;PRC;;;Berlin;DE;;;;;2;coordinator;50.0;;;;",
                "2;B;999999901;;NEW NAME GMBH;;;PRC;;;;DE;;;;;1;participant;;;;;",
            ]
        )
        + "\n"
    )
    (folder / "project.csv").write_text(
        PROJECTS.splitlines()[0] + "\n"
        "1;A;CLOSED;Old;2015-01-01;;;;;;H2020;;;RIA;;;;;\n"
        "2;B;CLOSED;New;2020-01-01;;;;;;H2020;;;RIA;;;;;\n"
    )
    run_import(sqlite_db, folder)
    with sqlite_db.session() as s:
        org = s.scalars(select(Organisation)).one()
        assert org.name == "NEW NAME GMBH" and org.other_names == ["OLD NAME GMBH"]
        assert org.city == "Berlin" and org.short_name == "ON"
        part = s.scalar(select(Participation).join(Project).where(Project.identifier == "1"))
        assert part.role == "coordinator" and part.ec_contribution == 50.0
    assert run_import(sqlite_db, folder).changed == 0


def test_duplicates_flagged_not_merged(sqlite_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "orgs.csv"
    path.write_text(
        "name,country,description\n"
        "Universidad de Valencia,ES,A university\n"
        "Universidad de Valencia UV,ES,The same university written differently\n"
        "Universidad de Valencia,PT,Another country: not a duplicate\n",
        encoding="utf-8",
    )
    summary = run_import(sqlite_db, path)
    assert summary.counts["organisations_created"] == 3
    with sqlite_db.session() as s:
        pairs = s.scalars(select(DuplicateCandidate)).all()
    assert len(pairs) == 1 and pairs[0].score >= importers.DUPLICATE_THRESHOLD


def test_eche_shares_pic_with_cordis(sqlite_db: Database) -> None:
    run_import(sqlite_db, shared_path("cordis-2014"))
    before = counts(sqlite_db)[0]
    summary = run_import(sqlite_db, shared_path("eche", "eche-holders-2021-2027.xlsx"))
    assert summary.format == "eche" and summary.rows_read == 5912
    assert summary.counts["organisations_updated"] > 100  # shared PICs give one organisation
    with sqlite_db.session() as s:
        merged = s.scalar(
            select(func.count())
            .select_from(Organisation)
            .where(Organisation.oid.is_not(None), Organisation.sources.contains("cordis"))
        )
    assert merged and merged > 100
    assert counts(sqlite_db)[0] == before + summary.counts["organisations_created"]
    assert run_import(sqlite_db, shared_path("eche", "eche-holders-2021-2027.xlsx")).changed == 0


def test_format_detection_errors(tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(importers.ImportFailed, match="cannot tell the format"):
        importers.detect_format(odd)
    with pytest.raises(importers.ImportFailed, match="does not exist"):
        importers.detect_format(tmp_path / "nope.csv")


def test_a_partner_with_an_unreadable_country_never_drops_the_project(sqlite_db: Database, tmp_path: Path) -> None:
    rows = real_erasmus_rows()
    rows[0] = {**rows[0], "Partner 1 country": "Kosovo*", "Partner 2 country": "Atlantis"}
    rows[1] = {**rows[1], "Coordinator's country": "Atlantis"}
    path = tmp_path / "ErasmusPlus_export.csv"
    write_erasmus_csv(path, rows)
    summary = run_import(sqlite_db, path)
    reasons = [p.reason for p in summary.problems]
    assert len(reasons) == 2
    assert "Partner 2 country: unknown country code 'Atlantis'" in reasons[0] and "project is kept" in reasons[0]
    assert "Coordinator's country" in reasons[1] and "project is skipped" in reasons[1]
    with sqlite_db.session() as s:
        kept = s.scalar(select(Project).where(Project.identifier == rows[0]["Project Identifier"]))
        assert kept is not None and kept.family == "erasmus"
        countries = {p.organisation.country for p in kept.participations}
        assert "XK" in countries  # the Commission's own spelling, asterisk and all
        assert (
            len(kept.participations)
            == sum(
                1
                for k, v in rows[0].items()
                if v and (k == "Coordinating organisation name" or (k.startswith("Partner") and k.endswith(" name")))
            )
            - 1
        )
        assert s.scalar(select(Project).where(Project.identifier == rows[1]["Project Identifier"])) is None


CULTURE = ("ec-culture-2007-2013", "Culture_2007_2013_Projects_Overview_2018-08-01.xls")
KEEP = ("interreg-keep-2014-2020", "keep_closed_1420.xlsx")


def test_culture_legacy_xls_imports_every_project(db: Database) -> None:
    path = shared_path(*CULTURE)
    assert importers.detect_format(path) == "creative-europe"
    summary = run_import(db, path)
    assert summary.counts["projects_created"] == 737
    # 3,854 organisations named in the export: each either makes a participation or is a reported problem
    assert summary.counts["participations_created"] + len(summary.problems) == 3854
    assert all("partner is left out" in p.reason or "appears twice" in p.reason for p in summary.problems)
    with db.session() as s:
        programmes = set(s.scalars(select(Project.programme)).all())
        families = set(s.scalars(select(Project.family)).all())
        festival = s.scalar(select(Project).where(Project.identifier == "FI-CULT-2008-MOTN-01"))
    assert programmes == {"Culture 2007-2013"} and families == {"culture"}
    assert festival is not None and festival.start_date is not None and festival.start_date.year == 2006
    assert festival.action == "Multi-annual Cooperation Projects"
    assert run_import(db, path).changed == 0


def test_name_keyed_organisations_on_real_rows(sqlite_db: Database) -> None:
    run_import(sqlite_db, shared_path(*CULTURE))
    with sqlite_db.session() as s:
        vooruit = s.scalars(select(Organisation).where(Organisation.name_key == "kunstencentrum vooruit|BE")).all()
        # "Kunstencentrum Vooruit, Belgium" (no country given) and "KUNSTENCENTRUM VOORUIT" (BE): one organisation
        assert len(vooruit) == 1 and len(vooruit[0].participations) == 2
        assert "Kunstencentrum Vooruit, Belgium" in [vooruit[0].name, *vooruit[0].other_names]
        festival = s.scalars(select(Organisation).where(Organisation.name_key == "kunstenfestivaldesarts|BE")).all()
        assert len(festival) == 1  # with and without "ASBL"
    summary = run_import(sqlite_db, shared_path(*KEEP))
    assert summary.counts["organisations_matched_by_name"] > 0  # Culture organisations again in Interreg
    with sqlite_db.session() as s:
        siena, genova = (
            s.scalar(select(Organisation).where(Organisation.name == n))
            for n in ("Università degli studi di Siena", "Università degli studi di Genova")
        )
        assert siena is not None and genova is not None and siena.id != genova.id  # similar, kept apart
        pair = (min(siena.id, genova.id), max(siena.id, genova.id))
        flagged = s.scalar(
            select(DuplicateCandidate).where(
                DuplicateCandidate.organisation_a_id == pair[0], DuplicateCandidate.organisation_b_id == pair[1]
            )
        )
        assert flagged is not None and flagged.status == "open"  # for a person to look at


def _registry_state(db: Database) -> tuple[set[tuple[object, ...]], ...]:
    with db.session() as s:
        orgs = {(o.name, o.country, o.sector, o.city, o.org_type) for o in s.scalars(select(Organisation))}
        projects = {
            (p.identifier, p.title, p.family, p.start_date, p.summary, len(p.descriptions))
            for p in s.scalars(select(Project))
        }
        parts = {(p.project.identifier, p.organisation.name, p.role) for p in s.scalars(select(Participation))}
    return orgs, projects, parts


@pytest.mark.slow  # imports the 8,621-row workbook three times: about 25 s
def test_keep_workbook_and_partners_sheet(sqlite_db: Database, tmp_path: Path) -> None:
    path = shared_path(*KEEP)
    assert importers.detect_format(path) == "keep"
    summary = run_import(sqlite_db, path)
    assert summary.counts["projects_created"] == 1852
    assert summary.counts["participations_created"] + len(summary.problems) == 8621
    with sqlite_db.session() as s:
        projects = s.scalars(select(Project)).all()
        assert {p.family for p in projects} == {"interreg"}
        assert sum(1 for p in projects if p.summary) >= 1600
        bilingual = [p for p in projects if len({d["language"] for d in p.descriptions}) >= 2]
        assert len(bilingual) >= 800 and {d["language"] for p in bilingual for d in p.descriptions} >= {
            "en",
            "de",
            "it",
        }
        coordinators = s.scalar(
            select(func.count()).select_from(Participation).where(Participation.role == "coordinator")
        )
        assert coordinators == 1852  # one lead partner per partnership
    assert run_import(sqlite_db, path).changed == 0
    # the partners sheet alone (as keep.eu exports it, CSV), then the workbook: the same registry
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name("Partners").to_python()
    partners_csv = tmp_path / "keep_partners.csv"
    with partners_csv.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    other = Database(f"sqlite:///{tmp_path / 'other.sqlite'}").upgrade()
    assert importers.detect_format(partners_csv) == "keep"
    alone = run_import(other, partners_csv)
    assert alone.counts["projects_created"] == 1852
    run_import(other, path)
    assert _registry_state(other) == _registry_state(sqlite_db)
    other.dispose()


def test_an_unterminated_quote_is_reported_not_swallowed(sqlite_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(
        "name,country,sector,description\n"
        'Fjord School,NO,school,"We teach children by the fjord\n'
        "Bergen Youth,NO,youth,Youth work in Bergen for twenty years\n"
        "Oslo Adult School,NO,adult_education,Evening classes for adults in Oslo\n",
        encoding="utf-8",
    )
    summary = run_import(sqlite_db, path)
    assert summary.counts["organisations_created"] == 0
    assert len(summary.problems) == 1 and "not closed" in summary.problems[0].reason
    assert summary.problems[0].line == 2


def test_a_semicolon_file_of_a_comma_format_is_read(sqlite_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(
        "name;country;sector;description\nFjord School;NO;school;We teach children by the fjord\n", encoding="utf-8"
    )
    summary = run_import(sqlite_db, path)
    assert summary.counts["organisations_created"] == 1 and summary.problems == []
    empty = tmp_path / "headers-only.csv"
    empty.write_text("nom;pays\n", encoding="utf-8")
    with pytest.raises(importers.ImportFailed):
        run_import(sqlite_db, empty)


def test_a_nul_row_is_skipped_with_a_problem_and_the_rest_imports(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(
        "name,country,sector,description\n"
        "Fjord School,NO,school,We teach children by the fjord\n"
        "Bergen\x00 Youth,NO,youth,Youth work in Bergen for twenty years\n"
        "Oslo Adult School,NO,adult_education,Evening classes for adults in Oslo\n",
        encoding="utf-8",
    )
    summary = run_import(db, path)  # on PostgreSQL a NUL would abort the whole import
    assert summary.counts["organisations_created"] == 2
    assert [(p.line, "NUL" in p.reason) for p in summary.problems] == [(3, True)]


def test_one_idless_organisation_per_name_and_country(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    from matcher import registry

    with db.session() as s:
        s.add(Organisation(name="Fjord School", country="NO", name_key="fjord school|NO"))
    with pytest.raises(IntegrityError), db.session() as s:  # a second one, as a race would have written
        s.add(Organisation(name="Fjord School", country="NO", name_key="fjord school|NO"))
    with db.session() as s:  # with a PIC it is another organisation: allowed
        s.add(Organisation(name="Fjord School", country="NO", name_key="fjord school|NO", pic="999999999"))
        other = Organisation(name="Bergen School", country="NO", name_key="bergen school|NO")
        s.add(other)
        s.flush()
        done = registry.update_organisation(s, other.id, {"name": "Fjord School"})  # renamed onto a taken name
        assert done["name"] == ["Bergen School", "Fjord School"] and other.name_key is None
