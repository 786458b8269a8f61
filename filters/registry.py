"""Every stage a recipe's `filters` can name, declared once, and the chain that runs the worker stages in order.

A stage has a name, the recipe section holding its settings, where it runs, and (for the worker stages) its check:

- `worker`: a plain function of one candidate, run in a verification worker process (many at once, each with a
  hard time limit);
- `main`: in the main process, on a batch, because it holds the engine (the LLM judge, `factory.judging`) or state
  that every candidate must see (decontamination's benchmark index, dedup's MinHash index, `factory.stages`).

A recipe lists its stages in the order they run: worker stages first, then the judge, then decontam and dedup,
which index only what passed everything else (`order_problem` says what is wrong with another order). `reward`
names the GRPO reward built on a stage's check (`trainers.rewards`). Within a chain the first rejection gives the
candidate's reason; scores from every stage that ran are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

from filters.base import Candidate, Verdict
from filters.format import check_format
from filters.language import LanguageConfig, language
from filters.readability import ReadabilityConfig, readability
from filters.sandbox import Limits


def verify(c: Candidate, limits: Limits) -> Verdict:
    from filters.verify import verify  # math-verify and sympy: imported where answers are checked, not by every CLI

    return verify(c, limits)


@dataclass
class Settings:
    """What the worker stages need from a recipe, sent once to each verification worker."""

    sandbox: Limits = field(default_factory=Limits)
    readability: ReadabilityConfig = field(default_factory=ReadabilityConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    # the per-response work of the main process's stages (`factory.stages.Prep`), run on what passed every stage
    prepare: Callable[[str], object] | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    section: str | None  # the recipe section with its settings (None: it has none)
    where: str  # worker | main
    check: Callable[[Candidate, Settings], Verdict] | None = None  # worker stages
    reward: str | None = None  # the GRPO reward that scores by it


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("format", None, "worker", lambda c, s: check_format(c), reward="format"),
        Stage("verify", "sandbox", "worker", lambda c, s: verify(c, s.sandbox), reward="accuracy"),
        Stage("readability", "readability", "worker", lambda c, s: readability(c, s.readability)),
        Stage("language", "language", "worker", lambda c, s: language(c, s.language, c.language), reward="language"),
        Stage("judge", "judge", "main"),
        Stage("decontam", "decontam", "main"),
        Stage("dedup", "dedup", "main"),
    )
}
MAIN = tuple(n for n, s in STAGES.items() if s.where == "main")
REWARDS = tuple(s.reward for s in STAGES.values() if s.reward)
# kept as a mapping of the worker checks: what the workers run (and tests add their own to)
FILTERS: dict[str, Callable[[Candidate, Settings], Verdict]] = {
    n: s.check for n, s in STAGES.items() if s.where == "worker"
}


def worker_stages(names: list[str]) -> list[str]:
    return [n for n in names if STAGES[n].where == "worker"]


def order_problem(names: list[str]) -> str | None:
    """What is wrong with running `names` in this order, or None: worker stages, then judge, then the stateful ones."""
    rank = {n: 0 if STAGES[n].where == "worker" else 1 if n == "judge" else 2 for n in names if n in STAGES}
    for a, b in pairwise(names):
        if a in rank and b in rank and rank[a] > rank[b]:
            why = "they index only what passed every other stage" if a in ("decontam", "dedup") else (
                "it sees only what the worker stages passed")  # fmt: skip
            return f"{b!r} must come before {a!r}: {why} (worker stages, then judge, then decontam and dedup)"
    return None


def run_chain(c: Candidate, names: list[str], settings: Settings | None = None) -> Verdict:
    settings = settings or Settings()
    scores: dict = {}
    for name in names:
        v = FILTERS[name](c, settings)
        scores.update(v.scores)
        if not v.accepted:
            return Verdict(False, v.reason, scores)
    return Verdict(True, None, scores, settings.prepare(c.text) if settings.prepare else None)
