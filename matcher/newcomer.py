"""Experience and newcomer status: the one rule for who counts as new to the programme.

The programme wants organisations new to it brought in; a newcomer is an organisation
with no more than ``max_projects`` past projects (0 by default: none at all). Every
caller (lists, flags, fairness, evaluation) asks this rule, scalar or vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    """An organisation with at most ``max_projects`` past projects is a newcomer."""

    max_projects: int = DEFAULT_MAX_PROJECTS

    def is_newcomer(self, experience: Experience | int) -> bool:
        projects = experience if isinstance(experience, int) else experience.projects
        return projects <= self.max_projects

    def flags(self, projects: np.ndarray) -> np.ndarray:
        """The rule over an array of past-project counts (one boolean per organisation)."""
        return np.asarray(projects) <= self.max_projects

    def describe(self) -> str:
        if self.max_projects == 0:
            return "no past project in the loaded data"
        return f"at most {self.max_projects} past projects in the loaded data"
