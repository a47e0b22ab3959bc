"""The Commission's list of Erasmus Charter for Higher Education holders (XLSX)."""

from __future__ import annotations

from pathlib import Path

from matcher import vocab
from matcher.importers.common import OrgRecord, Parsed, Problem, checked, clean, parse_date, parse_pic, xlsx_rows


def parse_eche(path: Path, progress: bool = True) -> Parsed:
    out = Parsed("eche")
    rows = ((line, row, None) for line, row in xlsx_rows(path, "Erasmus Code", progress))
    for line, row in checked(rows, path.name, ("Erasmus Code",), out):
        try:
            pic = parse_pic(row.get("Pic"))
            country = vocab.normalise_country(row.get("Country Cd"))
            start = parse_date(row.get("Erasmus Eche Start"))
        except ValueError as exc:
            out.problems.append(Problem(line, str(exc), path.name))
            continue
        code, oid, legal = clean(row.get("Erasmus Code")), clean(row.get("OID")), clean(row.get("Legal Name"))
        if not (pic or oid or code or legal):
            out.problems.append(Problem(line, "holder has neither a name nor an identifier", path.name))
            continue
        street, postcode = clean(row.get("Street")), clean(row.get("Post Cd"))
        out.orgs.append(
            OrgRecord(
                line,
                "eche",
                pic=pic,
                oid=oid,
                erasmus_code=code,
                name=legal,
                country=country,
                city=clean(row.get("City")),
                address=", ".join(p for p in (street, postcode) if p) or None,
                website=clean(row.get("Website Url")),
                org_type="Erasmus Charter for Higher Education holder",
                sector="higher_education",
                seen_at=start,
            )
        )
    return out
