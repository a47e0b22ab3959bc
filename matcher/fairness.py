"""Newcomer fairness: the FA*IR top-k re-ranker (Zehlike et al., CIKM 2017).

Every prefix of the returned list holds at least a minimum number of newcomers; within each
group the score order is kept. Two ways to set the minimum table, named for what they are:

- ``quota`` (the default): m[i] is the binomial quantile at ``alpha`` = 0.4 of i draws at the
  wanted share, with no multiple-testing correction. A top 10 at share 0.3 holds 3 newcomers,
  the first at rank 3: about the share asked for is the share shown. This is a floor, not a
  significance test: a ranking made by a genuinely fair process would fail it about half the
  time. It is the default because a user asking for 30 % newcomers expects to see them.
- ``significance``: the paper's test. ``alpha`` (0.1 by default) is adjusted for testing every
  prefix, so a fair process fails it with probability ``alpha`` (``adjusted_alpha``, as the
  reference implementation ``fairsearchcore`` computes it). It asks for fewer newcomers: one in
  a top 10 at share 0.3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

import numpy as np
from scipy.stats import binom

T = TypeVar("T")


QUOTA, SIGNIFICANCE = "quota", "significance"
SIGNIFICANCE_ALPHA = 0.1


@dataclass(frozen=True)
class FairConfig:
    """The wanted newcomer share, and how its minimum table is set (see the module's docstring)."""

    share: float = 0.3
    alpha: float = 0.4
    mode: str = QUOTA

    @classmethod
    def significance(cls, share: float = 0.3, alpha: float = SIGNIFICANCE_ALPHA) -> FairConfig:
        return cls(share, alpha, SIGNIFICANCE)

    def table(self, k: int) -> tuple[int, ...]:
        if self.mode == SIGNIFICANCE:
            return minimum_table(k, self.share, adjusted_alpha(k, self.share, self.alpha))
        if self.mode != QUOTA:
            raise ValueError(f"unknown fairness mode {self.mode!r}; expected {QUOTA!r} or {SIGNIFICANCE!r}")
        return minimum_table(k, self.share, self.alpha)


@cache
def minimum_table(k: int, share: float, alpha: float) -> tuple[int, ...]:
    """m[i] = newcomers required among the first i+1 results: the binomial quantile at ``alpha``."""
    if share <= 0:
        return (0,) * k
    return tuple(max(0, int(binom.ppf(alpha, i, share))) for i in range(1, k + 1))


def fail_probability(table: Sequence[int], share: float) -> float:
    """Chance that k independent draws at ``share`` fail ``table`` at some prefix.

    As ``fairsearchcore`` computes it, the last position is not tested (its block table stops
    one short); a dynamic programme over the number of newcomers seen so far.
    """
    alive = np.zeros(len(table) + 1)
    alive[0] = 1.0
    for need in table[:-1]:
        alive[1:] = alive[1:] * (1 - share) + alive[:-1] * share
        alive[0] *= 1 - share
        alive[:need] = 0.0
    success = float(alive.sum())
    return 0.0 if success == 0 else 1.0 - success


@cache
def adjusted_alpha(k: int, share: float, alpha: float) -> float:
    """The per-prefix significance whose table a fair process fails with probability ``alpha``.

    A bisection over [0, alpha] on the fail probability, stopping as ``fairsearchcore`` does
    (tables one newcomer apart, or alphas within 1e-16), so both give the same table.
    """

    def probe(a: float) -> tuple[float, int, float]:
        table = minimum_table(k, share, a)
        return a, sum(table), fail_probability(table, share)

    lo, hi = probe(0.0), probe(alpha)
    mid = probe(alpha / 2)
    while lo[1] < hi[1] and mid[2] != alpha:
        if mid[2] < alpha:
            lo = probe(mid[0])
        elif mid[2] > alpha:
            hi = probe(mid[0])
        mid = probe((lo[0] + hi[0]) / 2)
        if hi[1] - lo[1] == 1 or hi[0] - lo[0] <= 1e-16:
            return lo[0] if abs(lo[2] - alpha) <= abs(hi[2] - alpha) else hi[0]
        if hi[1] - mid[1] == 1 and mid[1] - lo[1] == 1:
            return min((mid, lo, hi), key=lambda c: abs(c[2] - alpha))[0]
    return mid[0]


def fair_rerank(ranked: Sequence[T], is_newcomer: Sequence[bool], k: int, config: FairConfig) -> list[T]:
    """Top ``k`` of ``ranked`` (best first) re-ordered so every prefix meets the FA*IR minimum.

    The output is drawn from the input, each item once; when the newcomers run out the
    rest follows in score order.
    """
    k = min(k, len(ranked))
    table = config.table(k)
    protected = [i for i, flag in enumerate(is_newcomer) if flag]
    others = [i for i, flag in enumerate(is_newcomer) if not flag]
    out: list[int] = []
    p = o = newcomers = 0
    while len(out) < k:
        need = table[len(out)]
        take_protected = p < len(protected) and (newcomers < need or o >= len(others) or protected[p] < others[o])
        if take_protected:
            out.append(protected[p])
            p += 1
            newcomers += 1
        else:
            out.append(others[o])
            o += 1
    return [ranked[i] for i in out]


def satisfies(is_newcomer_in_output: Sequence[bool], config: FairConfig, available: int) -> bool:
    """Whether every prefix holds its minimum, given ``available`` newcomers in the input."""
    table = config.table(len(is_newcomer_in_output))
    count = 0
    for i, flag in enumerate(is_newcomer_in_output):
        count += flag
        if count < min(table[i], available):
            return False
    return True
