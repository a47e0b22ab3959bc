"""An organisation as text for the encoder: who it is, then what it did, most recent first.

The recipe has a version: changing anything here must bump ``TEXT_VERSION`` so that
``index build`` re-embeds every organisation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from matcher import vocab
from matcher.db import Organisation, Participation, Project

TEXT_VERSION = "p1"
SUMMARY_WORDS = 60


@dataclass
class PastProject:
    project_id: int
    year: int | None
    title: str | None
    topics: list[str]
    summary: str | None


@dataclass
class ProfileSource:
    id: int
    name: str | None
    short_name: str | None
    org_type: str | None
    sector: str
    country: str | None
    city: str | None
    description: str | None
    projects: list[PastProject] = field(default_factory=list)


def project_year():  # type: ignore[no-untyped-def]
    """SQL expression for a project's year: its start, else its call year."""
    return func.coalesce(func.extract("year", Project.start_date), Project.call_year)


def load_sources(session: Session, before_year: int | None = None,
                 organisation_ids: Iterable[int] | None = None) -> dict[int, ProfileSource]:
    """Profile inputs for every organisation (or the given ones), history before ``before_year``."""
    query = select(Organisation.id, Organisation.name, Organisation.short_name, Organisation.org_type,
                   Organisation.sector, Organisation.country, Organisation.city, Organisation.description)
    wanted = set(organisation_ids) if organisation_ids is not None else None
    if wanted is not None:
        query = query.where(Organisation.id.in_(wanted))
    sources = {row[0]: ProfileSource(*row) for row in session.execute(query)}
    year = project_year()
    pq = (select(Participation.organisation_id, Project.id, year, Project.title, Project.topics, Project.summary)
          .join(Project, Project.id == Participation.project_id))
    if before_year is not None:
        pq = pq.where(year < before_year)
    if wanted is not None:
        pq = pq.where(Participation.organisation_id.in_(wanted))
    for org_id, project_id, y, title, topics, summary in session.execute(pq):
        src = sources.get(org_id)
        if src is not None:
            src.projects.append(PastProject(project_id, int(y) if y is not None else None, title, topics or [],
                                            summary))
    for src in sources.values():
        src.projects.sort(key=lambda p: (p.year or 0, p.project_id), reverse=True)
    return sources


def _words(text: str | None, limit: int) -> str:
    if not text:
        return ""
    words = text.split()
    return " ".join(words[:limit]) + (" …" if len(words) > limit else "")


def profile_text(src: ProfileSource, fit: Callable[[str], str] = lambda t: t) -> str:
    """Identity first, then past projects most recent first, cut to the model's window by ``fit``."""
    head = [src.name or src.short_name or "Organisation"]
    if src.short_name and src.name and src.short_name != src.name:
        head[0] += f" ({src.short_name})"
    kind = vocab.sectors().get(src.sector, "Other")
    if src.org_type:
        kind += f": {src.org_type}"
    head.append(kind)
    place = ", ".join(p for p in (src.city, vocab.country_name(src.country) if src.country else None) if p)
    if place:
        head.append(place)
    parts = [". ".join(head) + "."]
    if src.description:
        parts.append(src.description)
    seen_titles: set[str] = set()
    lines = []
    for project in src.projects:
        bits = []
        if project.title and project.title not in seen_titles:
            seen_titles.add(project.title)
            bits.append(project.title + (f" ({project.year})" if project.year else ""))
        topics = "; ".join(t for t in project.topics if t and t not in seen_titles)
        seen_titles.update(project.topics)
        if topics:
            bits.append(topics)
        if project.summary:
            bits.append(_words(project.summary, SUMMARY_WORDS))
        if bits:
            lines.append(": ".join(bits))
        if sum(len(x.split()) for x in lines) > 600:  # far past any window: stop early
            break
    if lines:
        parts.append("Projects: " + " | ".join(lines))
    return fit(" ".join(parts))


def text_hash(text: str) -> str:
    return hashlib.sha256(f"{TEXT_VERSION}\n{text}".encode()).hexdigest()
