"""Filters by name, as recipes refer to them, and the chain that runs them in order.

The first rejection gives the candidate's reason; scores from every filter that ran are kept.
"""

from __future__ import annotations

from collections.abc import Callable

from filters.base import Candidate, Verdict
from filters.format import check_format
from filters.verify import verify

FILTERS: dict[str, Callable[[Candidate], Verdict]] = {
    "format": check_format,
    "verify": verify,
}


def run_chain(c: Candidate, names: list[str]) -> Verdict:
    scores: dict = {}
    for name in names:
        v = FILTERS[name](c)
        scores.update(v.scores)
        if not v.accepted:
            return Verdict(False, v.reason, scores)
    return Verdict(True, None, scores)
