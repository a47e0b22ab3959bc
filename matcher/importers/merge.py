"""Merging parsed records into the registry: idempotent upserts on natural keys, duplicates flagged.

Organisations are matched on PIC, OID and Erasmus code, else on normalised name + country;
``merge_record`` holds every precedence rule for what a record may change. Likely duplicates
(similar names in one country) are recorded for review, never merged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Iterable, Mapping
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session
from tqdm import tqdm

from matcher import vocab
from matcher.db import ROLE_STRENGTH, DuplicateCandidate, Organisation, Participation, Project, fold_name, utcnow
from matcher.importers.common import (
    LIST_FIELDS,
    ORG_FIELDS,
    PROJECT_FIELDS,
    OrgRecord,
    Parsed,
    Problem,
    name_key,
    normalise_name,
)

DUPLICATE_THRESHOLD = 92.0
_ORG_COLUMNS = (
    "id",
    "pic",
    "oid",
    "erasmus_code",
    "name",
    "other_names",
    "name_key",
    "seen_at",
    "sources",
    *ORG_FIELDS,
)


class _Registry:
    """Every organisation as a plain dict, indexed by each natural key, for one import."""

    def __init__(self, session: Session) -> None:
        self.rows: list[dict[str, Any]] = []
        self.original: dict[int, dict[str, Any]] = {}
        self.by: dict[str, dict[str, dict[str, Any]]] = {"pic": {}, "oid": {}, "erasmus_code": {}, "name_key": {}}
        self.matched_by_name: set[int] = set()  # stored organisations an id-less record found by its name
        cols = [getattr(Organisation, c) for c in _ORG_COLUMNS]
        for values in session.execute(select(*cols).order_by(Organisation.id)):
            row = dict(zip(_ORG_COLUMNS, values, strict=True))
            row["other_names"] = list(row["other_names"] or [])
            row["sources"] = list(row["sources"] or [])
            row["name_key"] = name_key(row["name"], row["country"])  # the current recipe, whatever is stored
            self.original[row["id"]] = {**row, "other_names": list(row["other_names"]), "sources": list(row["sources"])}
            self._add(row)

    def _add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._index(row)

    def _index(self, row: dict[str, Any]) -> None:
        for key in ("pic", "oid", "erasmus_code", "name_key"):
            if row.get(key):
                self.by[key].setdefault(row[key], row)

    def find(self, rec: OrgRecord) -> tuple[dict[str, Any] | None, str | None]:
        """The organisation ``rec`` describes, and a conflict to report if ids disagree."""
        hits = [self.by[k].get(getattr(rec, k)) for k in ("pic", "oid", "erasmus_code") if getattr(rec, k)]
        found = next((h for h in hits if h is not None), None)
        conflict = None
        if found is not None and any(h is not None and h is not found for h in hits):
            conflict = "PIC, OID and Erasmus code point to different organisations; matched on the first"
        if found is None:
            key = name_key(rec.name, rec.country)
            candidate = self.by["name_key"].get(key) if key else None
            has_ids = rec.pic or rec.oid or rec.erasmus_code
            # an id-less record can only be matched by name; a record with ids adopts an id-less twin
            if candidate is not None and (
                not has_ids or not (candidate["pic"] or candidate["oid"] or candidate["erasmus_code"])
            ):
                found = candidate
                if candidate["id"] is not None:
                    self.matched_by_name.add(candidate["id"])
        return found, conflict

    def apply(self, rec: OrgRecord) -> tuple[dict[str, Any], str | None]:
        row, conflict = self.find(rec)
        if row is None:
            row = {c: None for c in _ORG_COLUMNS}
            row.update(other_names=[], sources=[], sector="other")
            self._add(row)
        merge_record(row, rec, self.by)
        self._index(row)
        return row, conflict


def merge_record(row: dict[str, Any], rec: OrgRecord, taken: Mapping[str, Container[str]]) -> None:
    """Apply one record to the organisation it matched: every precedence rule of the import, in one place.

    - Identifiers (PIC, OID, Erasmus code) are only ever added, never changed, and never taken
      from another organisation (``taken``).
    - A field is filled when empty; it is overwritten only by a record at least as recent as the
      last one that set the name (``seen_at``), so an old file never undoes a newer one.
    - A sector of "other" never replaces a known sector.
    - A new name from a newer record becomes the name and the old one an other name; an older
      record's different name is kept as an other name.
    - Sources accumulate; the name key follows the name and country.
    """
    newer = row["seen_at"] is None or (rec.seen_at is not None and rec.seen_at >= row["seen_at"])
    for key in ("pic", "oid", "erasmus_code"):
        value = getattr(rec, key)
        if value and not row[key] and value not in taken[key]:
            row[key] = value
    for key in ORG_FIELDS:
        value = getattr(rec, key)
        if value is None or (key == "sector" and value == "other" and row[key] not in (None, "other")):
            continue
        if (row[key] in (None, "other") if key == "sector" else row[key] is None) or newer and row[key] != value:
            row[key] = value
    if rec.name:
        if row["name"] is None:
            row["name"] = rec.name
        elif rec.name != row["name"]:
            if newer:
                row["other_names"].append(row["name"])
                row["name"] = rec.name
            else:
                row["other_names"].append(rec.name)
        row["other_names"] = sorted({n for n in row["other_names"] if n != row["name"]})
    if newer and rec.seen_at is not None:
        row["seen_at"] = rec.seen_at
    if rec.source not in row["sources"]:
        row["sources"] = sorted({*row["sources"], rec.source})
    row["name_key"] = name_key(row["name"], row["country"])


def _changed(before: dict[str, Any], after: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {k: after[k] for k in keys if before.get(k) != after.get(k)}


def write_parsed(session: Session, parsed: Parsed, progress: bool = True) -> tuple[dict[str, int], list[int]]:
    """Upsert what was parsed; returns the counts and the ids of organisations whose name or country changed."""
    registry = _Registry(session)
    # the record with the latest date should be applied last so its name wins
    order = sorted(range(len(parsed.orgs)), key=lambda i: (parsed.orgs[i].seen_at or dt.date.min, i))
    resolved: dict[int, dict[str, Any]] = {}
    for i in tqdm(order, desc="matching organisations", unit=" rows", disable=not progress, leave=False):
        rec = parsed.orgs[i]
        row, conflict = registry.apply(rec)
        resolved[id(rec)] = row
        if conflict:
            parsed.problems.append(Problem(rec.line, conflict))
    counts = _write_organisations(session, registry, progress)
    counts["organisations_matched_by_name"] = len(registry.matched_by_name)
    project_ids, project_counts = _write_projects(session, parsed)
    counts.update(project_counts)
    counts.update(_write_participations(session, parsed, project_ids, resolved, progress))
    touched = [
        r["id"]
        for r in registry.rows
        if r["name"]
        and (r["id"] not in registry.original or _changed(registry.original[r["id"]], r, ("name", "country")))
    ]
    return counts, touched


def _write_organisations(session: Session, registry: _Registry, progress: bool) -> dict[str, int]:
    keys = ("pic", "oid", "erasmus_code", "name", "other_names", "name_key", "seen_at", "sources", *ORG_FIELDS)
    new_rows = [r for r in registry.rows if r["id"] is None]
    payload = [{k: r[k] for k in keys} | {"created_at": utcnow(), "updated_at": utcnow()} for r in new_rows]
    for row in payload:  # bulk writes bypass the model's validator: keep the folded name here
        row["name_folded"] = fold_name(row["name"])[:600] if row["name"] else None
    for start in tqdm(range(0, len(payload), 2000), desc="writing organisations", disable=not progress, leave=False):
        ids = session.scalars(
            insert(Organisation).returning(Organisation.id, sort_by_parameter_order=True), payload[start : start + 2000]
        ).all()
        for row, new_id in zip(new_rows[start : start + 2000], ids, strict=True):
            row["id"] = new_id
    changes = []
    for row in registry.rows:
        before = registry.original.get(row["id"])
        if before is not None and (diff := _changed(before, row, keys)):
            if "name" in diff:
                diff["name_folded"] = fold_name(row["name"])[:600] if row["name"] else None
            changes.append({"id": row["id"], **diff, "updated_at": utcnow()})
    for start in range(0, len(changes), 2000):
        session.execute(update(Organisation), changes[start : start + 2000])
    return {"organisations_created": len(new_rows), "organisations_updated": len(changes)}


def _write_projects(session: Session, parsed: Parsed) -> tuple[dict[str, int], dict[str, int]]:
    """Upsert the projects (a non-empty value replaces the stored one); identifier -> id, and the counts."""
    existing: dict[str, dict[str, Any]] = {}
    pcols = ("id", "identifier", *PROJECT_FIELDS)
    for values in session.execute(select(*[getattr(Project, c) for c in pcols])):
        existing[values[1]] = dict(zip(pcols, values, strict=True))
    state: dict[str, dict[str, Any]] = {}
    for rec in parsed.projects:
        current = state.get(rec.identifier)
        if current is None:
            base = existing.get(rec.identifier)
            current = state[rec.identifier] = dict(base) if base else {"id": None, "identifier": rec.identifier}
        for key, value in rec.values.items():
            if value in (None, [], ""):
                current.setdefault(key, [] if key in LIST_FIELDS else None)
            else:
                current[key] = value
        current["family"] = vocab.programme_family(current.get("programme"), current.get("source"))
    new = [s for s in state.values() if s["id"] is None]
    payload = [
        {k: (s.get(k) or []) if k in LIST_FIELDS else s.get(k) for k in pcols if k != "id"}
        | {"created_at": utcnow(), "updated_at": utcnow()}
        for s in new
    ]
    for start in range(0, len(payload), 2000):
        ids = session.scalars(
            insert(Project).returning(Project.id, sort_by_parameter_order=True), payload[start : start + 2000]
        ).all()
        for s, new_id in zip(new[start : start + 2000], ids, strict=True):
            s["id"] = new_id
    changes = [
        {"id": s["id"], **diff, "updated_at": utcnow()}
        for ident, s in state.items()
        if (before := existing.get(ident)) is not None and (diff := _changed(before, s, PROJECT_FIELDS))
    ]
    if changes:
        session.execute(update(Project), changes)
    project_ids = {ident: s["id"] for ident, s in existing.items()} | {ident: s["id"] for ident, s in state.items()}
    return project_ids, {"projects_created": len(new), "projects_updated": len(changes)}


def _write_participations(
    session: Session, parsed: Parsed, project_ids: dict[str, int], resolved: dict[int, dict[str, Any]], progress: bool
) -> dict[str, int]:
    """One participation per (project, organisation): the strongest role wins, a known contribution stays,
    and it counts as funded when any of its records is."""
    existing: dict[tuple[int, int], dict[str, Any]] = {}
    for pid, project_id, org_id, role, ec, funded in session.execute(
        select(
            Participation.id,
            Participation.project_id,
            Participation.organisation_id,
            Participation.role,
            Participation.ec_contribution,
            Participation.funded,
        )
    ):
        existing[(project_id, org_id)] = {"id": pid, "role": role, "ec_contribution": ec, "funded": funded}
    state: dict[tuple[int, int], dict[str, Any]] = {}
    for rec in parsed.parts:
        found = project_ids.get(rec.project)
        if found is None:
            parsed.problems.append(Problem(rec.line, f"project {rec.project!r} is not in this file or the database"))
            continue
        key = (found, resolved[id(rec.org)]["id"])
        current = state.get(key)
        if current is not None and parsed.report_repeats:
            name = resolved[id(rec.org)]["name"]
            parsed.problems.append(
                Problem(rec.line, f"{name!r} appears twice in project {rec.project!r}: one participation kept")
            )
        if current is None:
            base = existing.get(key)
            current = state[key] = (
                dict(base) if base else {"id": None, "role": rec.role, "ec_contribution": None, "funded": rec.funded}
            )
        current["funded"] = current["funded"] or rec.funded
        if ROLE_STRENGTH[rec.role] > ROLE_STRENGTH[current["role"]]:
            current["role"] = rec.role
        if current["ec_contribution"] is None and rec.ec_contribution is not None:
            current["ec_contribution"] = rec.ec_contribution
    new = [
        {
            "project_id": k[0],
            "organisation_id": k[1],
            "role": s["role"],
            "ec_contribution": s["ec_contribution"],
            "funded": s["funded"],
        }
        for k, s in state.items()
        if s["id"] is None
    ]
    for start in tqdm(range(0, len(new), 5000), desc="writing participations", disable=not progress, leave=False):
        session.execute(insert(Participation), new[start : start + 5000])
    changes = [
        {"id": s["id"], "role": s["role"], "ec_contribution": s["ec_contribution"], "funded": s["funded"]}
        for k, s in state.items()
        if s["id"] is not None and _changed(existing[k], s, ("role", "ec_contribution", "funded"))
    ]
    if changes:
        session.execute(update(Participation), changes)
    return {"participations_created": len(new), "participations_updated": len(changes)}


def flag_duplicates(session: Session, organisation_ids: list[int], threshold: float = DUPLICATE_THRESHOLD) -> int:
    """Record likely duplicates (similar normalised name, same country) of the given organisations."""
    if not organisation_ids:
        return 0
    wanted = set(organisation_ids)
    by_country: dict[str | None, list[tuple[int, str]]] = {}
    for org_id, org_name, country in session.execute(
        select(Organisation.id, Organisation.name, Organisation.country).where(Organisation.name.is_not(None))
    ):
        by_country.setdefault(country, []).append((org_id, normalise_name(org_name or "")))
    known = {
        (a, b)
        for a, b in session.execute(select(DuplicateCandidate.organisation_a_id, DuplicateCandidate.organisation_b_id))
    }
    new_pairs: list[dict[str, Any]] = []
    for members in by_country.values():
        queries = [(i, n) for i, n in members if i in wanted]
        if not queries:
            continue
        names = [n for _, n in members]
        matrix = process.cdist(
            [n for _, n in queries], names, scorer=fuzz.token_sort_ratio, score_cutoff=threshold, workers=1
        )
        for qi, (org_id, _) in enumerate(queries):
            for ci in matrix[qi].nonzero()[0]:
                other = members[int(ci)][0]
                if other == org_id:
                    continue
                pair = (min(org_id, other), max(org_id, other))
                if pair not in known:
                    known.add(pair)
                    new_pairs.append(
                        {
                            "organisation_a_id": pair[0],
                            "organisation_b_id": pair[1],
                            "score": float(matrix[qi][ci]),
                            "status": "open",
                            "created_at": utcnow(),
                        }
                    )
    if new_pairs:
        session.execute(insert(DuplicateCandidate), new_pairs)
    return len(new_pairs)
