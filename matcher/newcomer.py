"""Experience and newcomer status, derived from participations only.

The programme wants organisations new to it brought in; a newcomer is an organisation
with no more than ``max_projects`` past projects (0 by default: none at all).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from matcher.db import Participation, Project

DEFAULT_MAX_PROJECTS = 0


@dataclass(frozen=True)
class Experience:
    projects: int = 0
    coordinated: int = 0
    first_year: int | None = None
    last_year: int | None = None
    partners: int = 0


@dataclass(frozen=True)
class NewcomerRule:
    """The one rule for who counts as new to the programme."""

    max_projects: int = DEFAULT_MAX_PROJECTS

    def is_newcomer(self, experience: Experience | int) -> bool:
        projects = experience if isinstance(experience, int) else experience.projects
        return projects <= self.max_projects


def experience_table(session: Session, before_year: int | None = None) -> dict[int, Experience]:
    """Experience of every organisation with a participation (optionally only before a year)."""
    year = func.coalesce(func.extract("year", Project.start_date), Project.call_year)
    query = (
        select(
            Participation.organisation_id,
            func.count(func.distinct(Participation.project_id)),
            func.sum(case((Participation.role == "coordinator", 1), else_=0)),
            func.min(year),
            func.max(year),
        )
        .join(Project, Project.id == Participation.project_id)
        .group_by(Participation.organisation_id)
    )
    if before_year is not None:
        query = query.where(year < before_year)
    partners = partner_counts(session, before_year)
    return {
        org_id: Experience(
            projects=int(n), coordinated=int(coord or 0),
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
        year = func.coalesce(func.extract("year", Project.start_date), Project.call_year)
        query = query.join(Project, Project.id == a.c.project_id).where(year < before_year)
    return {int(org): int(n) for org, n in session.execute(query)}


def experience_of(session: Session, organisation_id: int) -> Experience:
    year = func.coalesce(func.extract("year", Project.start_date), Project.call_year)
    n, coord, first, last = session.execute(
        select(
            func.count(func.distinct(Participation.project_id)),
            func.sum(case((Participation.role == "coordinator", 1), else_=0)),
            func.min(year), func.max(year),
        ).join(Project, Project.id == Participation.project_id)
        .where(Participation.organisation_id == organisation_id)
    ).one()
    a, b = Participation.__table__.alias("a"), Participation.__table__.alias("b")
    partners = session.scalar(
        select(func.count(func.distinct(b.c.organisation_id)))
        .join(b, (a.c.project_id == b.c.project_id) & (a.c.organisation_id != b.c.organisation_id))
        .where(a.c.organisation_id == organisation_id)
    )
    return Experience(int(n or 0), int(coord or 0), int(first) if first else None, int(last) if last else None,
                      int(partners or 0))
