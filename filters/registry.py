"""Filters by name, as recipes refer to them, and the chain that runs them in order.

The first rejection gives the candidate's reason; scores from every filter that ran are kept. Each entry adapts
a plain filter function to (candidate, settings), so a filter takes only the settings it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from filters.base import Candidate, Verdict
from filters.format import check_format
from filters.language import LanguageConfig, language
from filters.readability import ReadabilityConfig, readability
from filters.sandbox import Limits
from filters.verify import verify


@dataclass
class Settings:
    """What the filters need from a recipe, sent once to each verification worker."""

    sandbox: Limits = field(default_factory=Limits)
    readability: ReadabilityConfig = field(default_factory=ReadabilityConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)


FILTERS: dict[str, Callable[[Candidate, Settings], Verdict]] = {
    "format": lambda c, s: check_format(c),
    "verify": lambda c, s: verify(c, s.sandbox),
    "readability": lambda c, s: readability(c, s.readability),
    "language": lambda c, s: language(c, s.language, c.language),
}


def run_chain(c: Candidate, names: list[str], settings: Settings | None = None) -> Verdict:
    settings = settings or Settings()
    scores: dict = {}
    for name in names:
        v = FILTERS[name](c, settings)
        scores.update(v.scores)
        if not v.accepted:
            return Verdict(False, v.reason, scores)
    return Verdict(True, None, scores)
