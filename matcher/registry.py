"""The registry's queries: every question the domain asks the database, in one module (with the two
small writes an owner's edit needs, beside the reads they mirror).

Adapters never query; the front door (``matcher.app``) and the domain's builders call these.
Filters are bound parameters, never SQL built from input.

It is long on purpose: every query of the domain lives here, so no adapter or builder runs its own.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from matcher.db import Organisation, Participation, Project, ProjectEmbedding, StoredEmbedding, fold_name, valid_id
from matcher.newcomer import Experience, NewcomerRule
from matcher.profiles import PastProject, ProfileSource


@dataclass(frozen=True)
class OrganisationFilter:
    """Which organisations a list or a search may show; empty fields do not filter."""

    name: str = ""
    countries: tuple[str, ...] = ()
    sectors: tuple[str, ...] = ()
    org_types: tuple[str, ...] = ()
    newcomer: bool | None = None

    @property
    def empty(self) -> bool:
        return not (self.name.strip() or self.countries or self.sectors or self.org_types or self.newcomer is not None)


def participation_counts(session: Session) -> dict[int, int]:
    """Past projects per organisation (organisations without any are absent)."""
    return {
        int(o): int(n)
        for o, n in session.execute(
            select(Participation.organisation_id, func.count(func.distinct(Participation.project_id))).group_by(
                Participation.organisation_id
            )
        )
    }


def _counted(rule: NewcomerRule) -> Select[int, int]:
    """Counted past projects per organisation, by ``rule`` (only organisations with at least one)."""
    return (
        select(Participation.organisation_id, func.count(func.distinct(Participation.project_id)).label("n"))
        .join(Project, Project.id == Participation.project_id)
        .where(*rule.conditions())
        .group_by(Participation.organisation_id)
    )


def _newcomer_clause(rule: NewcomerRule) -> ColumnElement[bool]:
    """SQL form of ``rule``: at most ``max_projects`` counted past projects."""
    counted = _counted(rule).subquery()
    experienced = select(counted.c.organisation_id).where(counted.c.n > rule.max_projects)
    return Organisation.id.not_in(experienced)


def counted_projects(session: Session, rule: NewcomerRule, ids: Sequence[int] | None = None) -> dict[int, int]:
    """Past projects counted by the newcomer rule (for the given organisations, 0 where none)."""
    query = _counted(rule)
    if ids is not None:
        query = query.where(Participation.organisation_id.in_(ids))
    found = {int(o): int(n) for o, n in session.execute(query)}
    return found if ids is None else {i: found.get(i, 0) for i in ids}


def _filtered(query: Select[Any], f: OrganisationFilter, rule: NewcomerRule) -> Select[Any]:
    query = query.where(Organisation.hidden.is_(False))  # hidden by a moderator: in no list
    if f.name.strip():
        folded = fold_name(f.name)
        if folded:  # accents, case, script and punctuation folded alike on both sides
            query = query.where(Organisation.name_folded.contains(folded, autoescape=True))
        else:
            query = query.where(func.lower(Organisation.name).contains(f.name.strip().lower(), autoescape=True))
    if f.countries:
        query = query.where(Organisation.country.in_(f.countries))
    if f.sectors:
        query = query.where(Organisation.sector.in_(f.sectors))
    if f.org_types:
        query = query.where(Organisation.org_type.in_(f.org_types))
    if f.newcomer is not None:
        clause = _newcomer_clause(rule)
        query = query.where(clause if f.newcomer else ~clause)
    return query


def filtered_ids(session: Session, f: OrganisationFilter, rule: NewcomerRule) -> set[int] | None:
    """Ids of organisations passing the filter; None when it filters nothing (and nothing is hidden)."""
    if f.empty and not hidden_ids(session):
        return None
    return set(session.scalars(_filtered(select(Organisation.id), f, rule)))


def hidden_ids(session: Session) -> set[int]:
    """Organisations a moderator has hidden: never listed, searched or recommended."""
    return set(session.scalars(select(Organisation.id).where(Organisation.hidden.is_(True))))


def similar_in_country(session: Session, name: str, country: str | None, threshold: float = 92.0) -> list[int]:
    """Organisations of ``country`` whose name is the same or nearly (rapidfuzz), best first."""
    from rapidfuzz import fuzz, process

    from matcher.importers.common import name_key, normalise_name

    rows = session.execute(
        select(Organisation.id, Organisation.name, Organisation.name_key).where(
            Organisation.country == country, Organisation.name.is_not(None)
        )
    ).all()
    key = name_key(name, country)
    exact = [int(i) for i, _, k in rows if k == key]
    near = process.extract(
        normalise_name(name),
        {int(i): normalise_name(n or "") for i, n, _ in rows},
        scorer=fuzz.token_sort_ratio,
        score_cutoff=threshold,
        limit=5,
    )
    return list(dict.fromkeys([*exact, *(int(i) for _, _, i in near)]))


def count_organisations(session: Session, f: OrganisationFilter | None = None, rule: NewcomerRule | None = None) -> int:
    query = select(func.count()).select_from(Organisation)
    if f is not None and not f.empty:
        query = _filtered(query, f, rule or NewcomerRule())
    return int(session.scalar(query) or 0)


def list_organisations(
    session: Session, f: OrganisationFilter, rule: NewcomerRule, offset: int, limit: int
) -> list[Organisation]:
    """One page of the filtered organisations in name order, paged in SQL."""
    query = _filtered(select(Organisation), f, rule).order_by(Organisation.name, Organisation.id)
    return list(session.scalars(query.offset(offset).limit(limit)))


def organisations_by_id(session: Session, ids: Iterable[int]) -> dict[int, Organisation]:
    wanted = [i for i in dict.fromkeys(ids) if valid_id(i)]
    if not wanted:
        return {}
    return {o.id: o for o in session.scalars(select(Organisation).where(Organisation.id.in_(wanted)))}


def project_counts(session: Session, ids: Sequence[int]) -> dict[int, int]:
    """Past projects of the given organisations (0 for those without any)."""
    if not ids:
        return {}
    rows = session.execute(
        select(Participation.organisation_id, func.count(func.distinct(Participation.project_id)))
        .where(Participation.organisation_id.in_(ids))
        .group_by(Participation.organisation_id)
    )
    found = {int(o): int(n) for o, n in rows}
    return {i: found.get(i, 0) for i in ids}


def find_by_id_or_pic(session: Session, ref: int | str) -> int | None:
    """The organisation id for an id (int) or a PIC (digit string), None when there is none."""
    return find_all_by_id_or_pic(session, [ref]).get(ref)


def find_all_by_id_or_pic(session: Session, refs: Sequence[int | str]) -> dict[int | str, int]:
    """Organisation ids for ids (int) and PICs (digit strings), in two queries at most; a reference
    naming no organisation is left out."""
    ids = [r for r in refs if isinstance(r, int) and valid_id(r)]
    pics = [r.strip() for r in refs if isinstance(r, str)]
    known = set(session.scalars(select(Organisation.id).where(Organisation.id.in_(ids)))) if ids else set()
    by_pic = (
        dict(
            session.execute(select(Organisation.pic, Organisation.id).where(Organisation.pic.in_(pics))).tuples().all()
        )
        if pics
        else {}
    )
    found: dict[int | str, int] = {}
    for ref in refs:
        hit = (ref if ref in known else None) if isinstance(ref, int) else by_pic.get(ref.strip())
        if hit is not None:
            found[ref] = int(hit)
    return found


def holding_identifiers(session: Session, pic: str | None, oid: str | None) -> dict[str, int]:
    """Which organisation already holds ``pic`` or ``oid`` (each unique in the registry), by field."""
    held: dict[str, int] = {}
    for field, column, value in (("pic", Organisation.pic, pic), ("oid", Organisation.oid, oid)):
        if value:
            found = session.scalar(select(Organisation.id).where(column == value))
            if found is not None:
                held[field] = int(found)
    return held


@dataclass(frozen=True)
class NamedOrganisation:
    id: int
    name: str
    country: str | None
    city: str | None


def organisations_named(session: Session, folded: str, whole: bool, limit: int = 10) -> list[NamedOrganisation]:
    """Visible organisations whose folded name is ``folded`` (``whole``) or contains it, shortest names first."""
    match = Organisation.name_folded == folded if whole else Organisation.name_folded.contains(folded, autoescape=True)
    rows = session.execute(
        select(Organisation.id, Organisation.name, Organisation.country, Organisation.city)
        .where(match, Organisation.hidden.is_(False))
        .order_by(func.length(Organisation.name_folded), Organisation.id)
        .limit(limit)
    )
    return [NamedOrganisation(int(i), str(n), c, city) for i, n, c, city in rows]


def folded_names(session: Session) -> dict[int, str]:
    """id -> folded name of every visible named organisation: what typos are matched against."""
    rows = session.execute(
        select(Organisation.id, Organisation.name_folded).where(
            Organisation.name_folded.is_not(None), Organisation.hidden.is_(False)
        )
    )
    return {int(i): str(n) for i, n in rows}


def stats(session: Session, rule: NewcomerRule | None = None) -> dict[str, Any]:
    rule = rule or NewcomerRule()
    counts = counted_projects(session, rule)
    by_source: Counter[str] = Counter()
    by_sector: Counter[str] = Counter()
    by_country: Counter[str] = Counter()
    newcomers = 0
    organisations = 0
    for org_id, sources, sector, country in session.execute(
        select(Organisation.id, Organisation.sources, Organisation.sector, Organisation.country)
    ):
        organisations += 1
        by_source.update(sources or ["unknown"])
        by_sector[sector or "other"] += 1
        by_country[country or "unknown"] += 1
        newcomers += rule.is_newcomer(counts.get(org_id, 0))
    return {
        "organisations": organisations,
        "projects": session.scalar(select(func.count()).select_from(Project)) or 0,
        "participations": session.scalar(select(func.count()).select_from(Participation)) or 0,
        "newcomers": newcomers,
        "newcomer_max_projects": rule.max_projects,
        "newcomer_rule": rule.describe(),
        "by_source": dict(by_source.most_common()),
        "by_sector": dict(by_sector.most_common()),
        "by_country": dict(by_country.most_common()),
    }


def registry_fingerprint(session: Session, model_id: str) -> tuple[Any, ...]:
    """Cheap summary of the registry; a change means anything built from it is stale."""
    return (
        session.scalar(select(func.count()).select_from(Organisation)),
        session.scalar(select(func.max(Organisation.updated_at))),
        session.scalar(select(func.count()).select_from(Participation)),
        session.scalar(select(func.count()).select_from(StoredEmbedding).where(StoredEmbedding.model_id == model_id)),
    )


# ---------------------------------------------------------------- experience


def experience_table(session: Session, before_year: int | None = None) -> dict[int, Experience]:
    """Experience of every organisation with a participation (optionally only before a year)."""
    query = (
        select(
            Participation.organisation_id,
            func.count(func.distinct(Participation.project_id)),
            func.sum(case((Participation.role == "coordinator", 1), else_=0)),
            func.min(Project.year),
            func.max(Project.year),
        )
        .join(Project, Project.id == Participation.project_id)
        .group_by(Participation.organisation_id)
    )
    if before_year is not None:
        query = query.where(Project.year < before_year)
    partners = partner_counts(session, before_year)
    return {
        org_id: Experience(
            projects=int(n),
            coordinated=int(coord or 0),
            first_year=int(first) if first is not None else None,
            last_year=int(last) if last is not None else None,
            partners=partners.get(org_id, 0),
        )
        for org_id, n, coord, first, last in session.execute(query)
    }


def partner_counts(session: Session, before_year: int | None = None) -> dict[int, int]:
    """Number of distinct past partners per organisation."""
    a, b = Participation.__table__.alias("a"), Participation.__table__.alias("b")
    query = (
        select(a.c.organisation_id, func.count(func.distinct(b.c.organisation_id)))
        .join(b, (a.c.project_id == b.c.project_id) & (a.c.organisation_id != b.c.organisation_id))
        .group_by(a.c.organisation_id)
    )
    if before_year is not None:
        query = query.join(Project, Project.id == a.c.project_id).where(Project.year < before_year)
    return {int(org): int(n) for org, n in session.execute(query)}


def experience_of(session: Session, organisation_id: int) -> Experience:
    n, coord, first, last = session.execute(
        select(
            func.count(func.distinct(Participation.project_id)),
            func.sum(case((Participation.role == "coordinator", 1), else_=0)),
            func.min(Project.year),
            func.max(Project.year),
        )
        .join(Project, Project.id == Participation.project_id)
        .where(Participation.organisation_id == organisation_id)
    ).one()
    a, b = Participation.__table__.alias("a"), Participation.__table__.alias("b")
    partners = session.scalar(
        select(func.count(func.distinct(b.c.organisation_id)))
        .join(b, (a.c.project_id == b.c.project_id) & (a.c.organisation_id != b.c.organisation_id))
        .where(a.c.organisation_id == organisation_id)
    )
    return Experience(
        int(n or 0), int(coord or 0), int(first) if first else None, int(last) if last else None, int(partners or 0)
    )


def projects_of(session: Session, organisation_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """An organisation's past projects, most recent first."""
    rows = session.execute(
        select(Project.identifier, Project.title, Project.year, Participation.role)
        .join(Participation, Participation.project_id == Project.id)
        .where(Participation.organisation_id == organisation_id)
    ).all()
    projects = [
        {"identifier": i, "title": t, "year": int(y) if y is not None else None, "role": r} for i, t, y, r in rows
    ]
    return sorted(projects, key=lambda p: -int(p["year"] or 0))[:limit]


def partners_of(session: Session, organisation_id: int, limit: int = 20) -> list[tuple[int, int]]:
    """(partner id, shared projects) of an organisation's most frequent past partners."""
    a, b = Participation.__table__.alias("a"), Participation.__table__.alias("b")
    rows = session.execute(
        select(b.c.organisation_id, func.count())
        .join(a, a.c.project_id == b.c.project_id)
        .where(a.c.organisation_id == organisation_id, b.c.organisation_id != organisation_id)
        .group_by(b.c.organisation_id)
        .order_by(func.count().desc(), b.c.organisation_id)
        .limit(limit)
    ).all()
    return [(int(p), int(n)) for p, n in rows]


# ---------------------------------------------------------------- what the matcher and the evaluation load


def participation_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Participation)) or 0)


def last_change() -> Any:
    """The newest change to any organisation (a statement: the time a matcher was built as of)."""
    return select(func.max(Organisation.updated_at))


def changed_organisations(
    session: Session, since: dt.datetime | None, up_to_id: int
) -> tuple[int, int, list[Any], set[int]]:
    """What an incremental refresh of the matcher needs: how many organisations with an id up to
    ``up_to_id`` remain (fewer: some were deleted or merged), how many participations there are, the
    organisations changed at or after ``since`` (new ones included), and who is hidden now."""
    remaining = session.scalar(select(func.count()).select_from(Organisation).where(Organisation.id <= up_to_id))
    parts = participation_count(session)
    query = select(
        Organisation.id,
        Organisation.country,
        Organisation.sector,
        Organisation.name,
        Organisation.org_type,
        Organisation.erasmus_code,
    ).order_by(Organisation.id)
    if since is not None:
        query = query.where(Organisation.updated_at >= since)
    return int(remaining or 0), int(parts or 0), list(session.execute(query).all()), hidden_ids(session)


def history_rows(session: Session) -> tuple[list[Any], list[Any], list[Any]]:
    """(organisations, projects with year, participations) for ``ranking.History``."""
    orgs = session.execute(
        select(Organisation.id, Organisation.country, Organisation.sector).order_by(Organisation.id)
    ).all()
    projects = session.execute(select(Project.id, Project.year, Project.family).order_by(Project.id)).all()
    parts = session.execute(
        select(Participation.organisation_id, Participation.project_id, Participation.role, Participation.funded)
    ).all()
    return list(orgs), list(projects), list(parts)


def labels(
    session: Session,
) -> tuple[dict[int, str | None], dict[int, str | None], dict[int, tuple[str | None, int | None]]]:
    """Organisation names and types, and each project's label (title, else acronym) and year."""
    names = {int(i): n for i, n in session.execute(select(Organisation.id, Organisation.name))}
    types = {int(i): t for i, t in session.execute(select(Organisation.id, Organisation.org_type))}
    projects: dict[int, tuple[str | None, int | None]] = {
        int(pid): (title or acronym or ident, int(year) if year is not None else None)
        for pid, title, acronym, ident, year in session.execute(
            select(Project.id, Project.title, Project.acronym, Project.identifier, Project.year)
        )
    }
    return names, types, projects


def eche_holders(session: Session, ids: Sequence[int] | None = None) -> set[int]:
    """Organisations known to hold an Erasmus Charter for Higher Education (they carry an Erasmus code)."""
    query = select(Organisation.id).where(Organisation.erasmus_code.is_not(None))
    if ids is not None:
        query = query.where(Organisation.id.in_(ids))
    return {int(i) for i in session.scalars(query)}


def project_texts(session: Session) -> dict[int, str]:
    """Each project's text for text relevance: title, topics (when there is other text), summary."""
    out = {}
    for pid, title, topics, summary in session.execute(
        select(Project.id, Project.title, Project.topics, Project.summary)
    ):
        parts = [title or "", " ".join(topics or []) if title or summary else "", summary or ""]
        out[int(pid)] = " ".join(p for p in parts if p).strip()
    return out


def bilingual_descriptions(session: Session, limit: int) -> list[tuple[str, str, str]]:
    """(language, text, English text) of projects described in English and another language (keep.eu
    describes many so), at most ``limit``, in project order."""
    out = []
    rows = session.scalars(select(Project.descriptions).where(Project.descriptions.is_not(None)).order_by(Project.id))
    for found in rows:
        texts = [(d.get("language"), d.get("text")) for d in found or [] if d.get("text")]
        english = next((t for lang, t in texts if lang == "en"), None)
        other = next(((lang, t) for lang, t in texts if lang not in (None, "en")), None)
        if english and other:
            out.append((str(other[0]), str(other[1]), str(english)))
            if len(out) >= limit:
                break
    return out


def project_embedding_hashes(session: Session, model_id: str) -> dict[int, str]:
    """Text hash of each project's stored vector for ``model_id``."""
    rows = session.execute(
        select(ProjectEmbedding.project_id, ProjectEmbedding.text_hash).where(ProjectEmbedding.model_id == model_id)
    )
    return {int(p): h for p, h in rows}


def project_vectors(session: Session, model_id: str) -> list[tuple[int, bytes]]:
    """Stored project vectors of ``model_id`` (raw float32 bytes)."""
    rows = session.execute(
        select(ProjectEmbedding.project_id, ProjectEmbedding.vector).where(ProjectEmbedding.model_id == model_id)
    )
    return [(int(p), v) for p, v in rows]


def consortia(session: Session) -> tuple[dict[int, list[tuple[int, str]]], dict[int, str], dict[int, str | None]]:
    """Funded members (role not 'other') per project, project identifiers, and organisation PICs."""
    members: dict[int, list[tuple[int, str]]] = {}
    for pid, oid, role in session.execute(
        select(Participation.project_id, Participation.organisation_id, Participation.role)
    ):
        if role != "other":
            members.setdefault(int(pid), []).append((int(oid), role))
    identifiers = {int(i): s for i, s in session.execute(select(Project.id, Project.identifier))}
    pics = {int(i): p for i, p in session.execute(select(Organisation.id, Organisation.pic))}
    return members, identifiers, pics


def contributions(session: Session) -> list[tuple[int, int, float | None]]:
    """(organisation, project, EU contribution) of every participation."""
    return [
        (int(o), int(p), e)
        for o, p, e in session.execute(
            select(Participation.organisation_id, Participation.project_id, Participation.ec_contribution)
        )
    ]


def load_sources(
    session: Session, before_year: int | None = None, organisation_ids: Iterable[int] | None = None
) -> dict[int, ProfileSource]:
    """Profile inputs for every organisation (or the given ones), history before ``before_year``."""
    query = select(
        Organisation.id,
        Organisation.name,
        Organisation.short_name,
        Organisation.org_type,
        Organisation.sector,
        Organisation.country,
        Organisation.city,
        Organisation.description,
    )
    wanted = set(organisation_ids) if organisation_ids is not None else None
    if wanted is not None:
        query = query.where(Organisation.id.in_(wanted))
    sources = {row[0]: ProfileSource(*row) for row in session.execute(query)}
    pq = select(
        Participation.organisation_id, Project.id, Project.year, Project.title, Project.topics, Project.summary
    ).join(Project, Project.id == Participation.project_id)
    if before_year is not None:
        pq = pq.where(Project.year < before_year)
    if wanted is not None:
        pq = pq.where(Participation.organisation_id.in_(wanted))
    for org_id, project_id, y, title, topics, summary in session.execute(pq):
        src = sources.get(org_id)
        if src is not None:
            src.projects.append(
                PastProject(project_id, int(y) if y is not None else None, title, topics or [], summary)
            )
    for src in sources.values():
        src.projects.sort(key=lambda p: (p.year or 0, p.project_id), reverse=True)
    return sources


def embedding_hashes(session: Session, model_id: str) -> dict[int, str]:
    """Organisation id -> hash of the profile text its stored vector was made from."""
    return {
        int(i): h
        for i, h in session.execute(
            select(StoredEmbedding.organisation_id, StoredEmbedding.text_hash).where(
                StoredEmbedding.model_id == model_id
            )
        )
    }


def embedding_vectors(session: Session, model_id: str, skip: Iterable[int] = ()) -> list[tuple[int, bytes]]:
    """Stored vectors of ``model_id`` (as raw float32 bytes), except for the ids in ``skip``."""
    skipped = set(skip)
    return [
        (int(i), v)
        for i, v in session.execute(
            select(StoredEmbedding.organisation_id, StoredEmbedding.vector).where(StoredEmbedding.model_id == model_id)
        )
        if i not in skipped
    ]


def owned_by(session: Session, account_id: int, ids: Sequence[int]) -> list[int]:
    """Those of ``ids`` the account owns."""
    if not ids:
        return []
    return [
        int(i)
        for i in session.scalars(
            select(Organisation.id).where(Organisation.id.in_(ids), Organisation.owner_id == account_id)
        )
    ]


def update_organisation(session: Session, org_id: int, changes: dict[str, Any]) -> dict[str, list[Any]]:
    """Apply field changes to one organisation; returns {field: [old, new]} for those that changed."""
    from matcher import vocab
    from matcher.importers.common import clean, name_key

    org = session.get(Organisation, org_id) if valid_id(org_id) else None
    if org is None:
        raise LookupError(f"no organisation {org_id}")
    done: dict[str, list[Any]] = {}
    for key, raw in changes.items():
        value = clean(raw) if isinstance(raw, str) or raw is None else raw
        if key == "sector":
            value = vocab.check_sector(str(value))
        if key == "name" and not value:
            raise ValueError("name: an organisation needs a name")
        if getattr(org, key) != value:
            done[key] = [getattr(org, key), value]
            setattr(org, key, value)
    if "name" in done:
        org.other_names = sorted({*org.other_names, done["name"][0]} - {org.name, None})
        new_key = name_key(org.name, org.country)
        taken = select(Organisation.id).where(Organisation.name_key == new_key, Organisation.id != org.id)
        org.name_key = (
            None if session.scalar(taken) else new_key
        )  # renamed to a name another one has: a distinct organisation
    return done


def contact_address(session: Session, org_id: int) -> tuple[str | None, str]:
    """Where a message to the organisation goes (its published contact, else its owner), and its name."""
    from matcher.db import Account

    org = session.get(Organisation, org_id) if valid_id(org_id) else None
    if org is None or org.hidden:
        raise LookupError(f"no organisation {org_id}")
    if org.contact_email:
        return org.contact_email, org.display_name
    owner = session.get(Account, org.owner_id) if org.owner_id else None
    return (owner.email if owner else None), org.display_name
