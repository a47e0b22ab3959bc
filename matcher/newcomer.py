"""Experience and newcomer status: the one rule for who counts as new to the programme.

The Programme Guide's newcomer is an organisation that has not received support before under
Erasmus+ or its predecessor programmes. ``NewcomerRule`` says which participations count
(funded ones, in the chosen programme families; or every participation in the loaded data)
and how many make an organisation experienced. Lists, flags, fairness and the evaluation all
apply it, vectorised (``counts``/``flags``) or in SQL (``conditions``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sqlalchemy import ColumnElement

from matcher import vocab
from matcher.db import Participation, Project

DEFAULT_MAX_PROJECTS = 0
DEFAULT_PROGRAMMES = ("erasmus",)


@dataclass(frozen=True)
class Experience:
    projects: int = 0
    coordinated: int = 0
    first_year: int | None = None
    last_year: int | None = None
    partners: int = 0


@dataclass(frozen=True)
class NewcomerRule:
    """At most ``max_projects`` counted past projects make a newcomer.

    ``programmes``: the programme families whose funded participations count (default: Erasmus+
    and its predecessors, the Guide's definition); None counts every participation in the data.
    """

    max_projects: int = DEFAULT_MAX_PROJECTS
    programmes: tuple[str, ...] | None = DEFAULT_PROGRAMMES

    def is_newcomer(self, counted: Experience | int) -> bool:
        projects = counted if isinstance(counted, int) else counted.projects
        return projects <= self.max_projects

    def flags(self, counted: np.ndarray) -> np.ndarray:
        """The rule over an array of counted past projects (one boolean per organisation)."""
        return np.asarray(np.asarray(counted) <= self.max_projects)

    def counts(
        self, incidence: sp.csr_matrix, funded: sp.csr_matrix | None, families: np.ndarray | None, history: np.ndarray
    ) -> np.ndarray:
        """Counted past projects per organisation, among the projects in ``history`` (a mask)."""
        if self.programmes is None or funded is None or families is None:
            return np.asarray(incidence @ history.astype(np.float32)).ravel()
        counted = history & np.isin(families, list(self.programmes))
        return np.asarray(funded @ counted.astype(np.float32)).ravel()

    def conditions(self) -> list[ColumnElement[bool]]:
        """The same rule in SQL: conditions on a participation joined with its project."""
        if self.programmes is None:
            return []
        return [Participation.funded.is_(True), Project.family.in_(self.programmes)]

    def describe(self) -> str:
        if self.programmes is None:
            what = "no past project in the loaded data (any programme, any role)"
        else:
            labels = vocab.programme_families()
            what = "no funded participation in " + ", ".join(labels.get(p, p) for p in self.programmes)
        return what if self.max_projects == 0 else f"{what}, or at most {self.max_projects}"

    @classmethod
    def parse(cls, max_projects: int, programmes: str) -> NewcomerRule:
        """From settings: ``programmes`` is ``all`` or families separated by commas (e.g. ``erasmus``)."""
        if programmes.strip().lower() == "all":
            return cls(max_projects, None)
        chosen = tuple(p.strip() for p in programmes.split(",") if p.strip())
        unknown = [p for p in chosen if p not in vocab.programme_families()]
        if unknown or not chosen:
            raise ValueError(
                f"unknown programme family {', '.join(unknown) or programmes!r}; expected 'all' or "
                f"some of {', '.join(vocab.programme_families())}"
            )
        return cls(max_projects, chosen)
