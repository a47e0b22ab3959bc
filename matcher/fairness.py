"""Newcomer fairness: the FA*IR top-k re-ranker (Zehlike et al., CIKM 2017).

Every prefix of the returned list holds at least the binomial-test minimum of newcomers
for the wanted share ``p`` at significance ``alpha``; within each group the score order is
kept. The default ``alpha`` of 0.4 makes a top 10 at share 0.3 hold 3 newcomers, the first
at rank 3: about the share asked for is the share shown. A smaller alpha is a looser floor
(0.1, the paper's usual value, asks only 1 newcomer in a top 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from scipy.stats import binom

T = TypeVar("T")


@dataclass(frozen=True)
class FairConfig:
    share: float = 0.3
    alpha: float = 0.4


@cache
def minimum_table(k: int, share: float, alpha: float) -> tuple[int, ...]:
    """m[i] = newcomers required among the first i+1 results."""
    if share <= 0:
        return (0,) * k
    return tuple(int(binom.ppf(alpha, i, share)) if i else 0 for i in range(1, k + 1))


def fair_rerank(ranked: Sequence[T], is_newcomer: Sequence[bool], k: int, config: FairConfig) -> list[T]:
    """Top ``k`` of ``ranked`` (best first) re-ordered so every prefix meets the FA*IR minimum.

    The output is drawn from the input, each item once; when the newcomers run out the
    rest follows in score order.
    """
    k = min(k, len(ranked))
    table = minimum_table(k, config.share, config.alpha)
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
    table = minimum_table(len(is_newcomer_in_output), config.share, config.alpha)
    count = 0
    for i, flag in enumerate(is_newcomer_in_output):
        count += flag
        if count < min(table[i], available):
            return False
    return True
