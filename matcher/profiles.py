"""An organisation as text for the encoder: who it is, then what it did, most recent first.

The recipe has a version: changing anything here must bump ``TEXT_VERSION`` so that
``index build`` re-embeds every organisation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from matcher import vocab

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
