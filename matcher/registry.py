"""Read-side questions about the organisation registry: counts, lookups, past partners."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matcher.db import Organisation, Participation, Project
from matcher.newcomer import NewcomerRule


def participation_counts(session: Session) -> dict[int, int]:
    return {
        int(o): int(n)
        for o, n in session.execute(
            select(Participation.organisation_id, func.count(func.distinct(Participation.project_id)))
            .group_by(Participation.organisation_id)
        )
    }


def stats(session: Session, rule: NewcomerRule | None = None) -> dict[str, Any]:
    rule = rule or NewcomerRule()
    counts = participation_counts(session)
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
        "by_source": dict(by_source.most_common()),
        "by_sector": dict(by_sector.most_common()),
        "by_country": dict(by_country.most_common()),
    }


def filtered_ids(session: Session, countries: list[str] | None = None, sectors: list[str] | None = None,
                 org_types: list[str] | None = None, newcomer: bool | None = None,
                 rule: NewcomerRule | None = None) -> set[int] | None:
    """Ids of organisations passing the filters; None when there is no filter at all."""
    if not (countries or sectors or org_types or newcomer is not None):
        return None
    query = select(Organisation.id)
    if countries:
        query = query.where(Organisation.country.in_(countries))
    if sectors:
        query = query.where(Organisation.sector.in_(sectors))
    if org_types:
        query = query.where(Organisation.org_type.in_(org_types))
    ids = set(session.scalars(query))
    if newcomer is not None:
        rule = rule or NewcomerRule()
        counts = participation_counts(session)
        ids = {i for i in ids if rule.is_newcomer(counts.get(i, 0)) == newcomer}
    return ids
