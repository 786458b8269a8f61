"""Every stage a recipe's `filters` can name, declared once, and the chain that runs the worker stages in order.

A stage has a name, the recipe section holding its settings, where it runs, and (for the worker stages) its check:

- `worker`: a plain function of one candidate, run in a verification worker process (many at once, each with a
  hard time limit);
- `main`: in the main process, on a batch, because it holds the engine (the LLM judge, `factory.judging`) or state
  that every candidate must see (decontamination's benchmark index, dedup's MinHash index, `factory.stages`).

A recipe lists its stages in the order they run: worker stages first, then the judge, then decontam and dedup,
which index only what passed everything else (`order_problem` says what is wrong with another order). `reward`
is the GRPO reward built on a stage's check (filters/rewards.py). Within a chain the first rejection gives the
candidate's reason; scores from every stage that ran are kept.

A user's own stage is named `module:function` (`mylab.checks:units_match`), imported as Python imports it with the
current directory on the path. The function takes a `Candidate` and returns a `Verdict`, a bool (False rejects
with the function's name as the reason) or a number (a score kept under the function's name: the candidate goes on;
a GRPO reward of that name is the number). It runs in the verification workers under their time limit; one that
raises or returns anything else rejects the candidate as `stage_error`, naming the stage and what went wrong.
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise

from filters import cascade, rewards
from filters.base import Candidate, FilterError, Verdict, reject
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
    # the judge cascade (filters/cascade.py): None, off; else the verify rejects always sent to the judge
    cascade: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    section: str | None  # the recipe section with its settings (None: it has none)
    where: str  # worker | main
    check: Callable[[Candidate, Settings], Verdict] | None = None  # worker stages
    code: str | None = None  # main stages: where their code is (it needs the engine, or state every candidate sees)
    reward: tuple[str, Callable] | None = None  # the GRPO reward that scores by its check: (name, function)


JUDGE, DECONTAM, DEDUP = "judge", "decontam", "dedup"


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("format", None, "worker", lambda c, s: check_format(c), reward=("format", rewards.format_reward)),
        Stage(
            "verify",
            "sandbox",
            "worker",
            lambda c, s: verify(c, s.sandbox),
            reward=("accuracy", rewards.accuracy_reward),
        ),
        Stage("readability", "readability", "worker", lambda c, s: readability(c, s.readability)),
        Stage(
            "language",
            "language",
            "worker",
            lambda c, s: language(c, s.language, c.language),
            reward=("language", rewards.language_reward),
        ),
        Stage(JUDGE, "judge", "main", code="factory.judging"),
        Stage(DECONTAM, "decontam", "main", code="factory.stages.Gate"),
        Stage(DEDUP, "dedup", "main", code="factory.stages.Gate"),
    )
}
MAIN = tuple(n for n, s in STAGES.items() if s.where == "main")
REWARD_FUNCTIONS = dict(s.reward for s in STAGES.values() if s.reward)
REWARDS = tuple(REWARD_FUNCTIONS)
# kept as a mapping of the worker checks: what the workers run (and tests add their own to)
FILTERS: dict[str, Callable[[Candidate, Settings], Verdict]] = {
    n: s.check for n, s in STAGES.items() if s.where == "worker"
}


def is_user(name: str) -> bool:
    return ":" in name


@cache
def user_function(name: str) -> Callable:
    """The function a `module:function` stage names; FilterError, saying what to fix, when there is none."""
    module, _, attr = name.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        fn = getattr(importlib.import_module(module), attr, None)
    except Exception as e:  # the user's module: any error it raises on import is theirs to see
        raise FilterError(
            f"{name}: importing {module} failed ({type(e).__name__}: {e}); a stage's module is "
            "imported from the current directory or PYTHONPATH"
        ) from e
    if not callable(fn):
        raise FilterError(f"{name}: {module} has no function {attr!r}")
    return fn


def user_problem(name: str) -> str | None:
    """What is wrong with a `module:function` stage name (None: it names a function)."""
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", name):
        return f"{name!r} is not module:function (e.g. mylab.checks:units_match)"
    try:
        user_function(name)
    except FilterError as e:
        return str(e)
    return None


def user_check(name: str) -> Callable[[Candidate, Settings], Verdict]:
    def check(c: Candidate, settings: Settings) -> Verdict:
        try:
            out = user_function(name)(copy.deepcopy(c))  # its own copy: what it changes, no later stage sees
        except Exception as e:  # the user's code: whatever it raises is the candidate's reason, not the run's end
            return reject("stage_error", stage=name, error=f"{type(e).__name__}: {e}"[:500])
        return as_verdict(name, out)

    return check


def as_verdict(name: str, out) -> Verdict:
    """A user stage's return value as a verdict: a Verdict, a bool, or a finite number (a score; the text goes on)."""
    short = name.partition(":")[2]
    if isinstance(out, Verdict) and _storable(out):
        return out if out.accepted or out.reason else Verdict(False, short, out.scores)
    if isinstance(out, bool):
        return Verdict(True) if out else reject(short)
    if isinstance(out, int | float) and math.isfinite(out):
        return Verdict(True, None, {short: out})
    what = f"returned {type(out).__name__} {str(out)[:80]!r}; a stage returns a Verdict, a bool or a number"
    return reject("stage_error", stage=name, error=what)


def _storable(v: Verdict) -> bool:
    """Whether the store can hold it: a str reason (or none) and JSON scores."""
    try:
        json.dumps(v.scores, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return isinstance(v.scores, dict) and (v.reason is None or isinstance(v.reason, str))


def check_of(name: str) -> Callable[[Candidate, Settings], Verdict]:
    return user_check(name) if is_user(name) else FILTERS[name]


def where(name: str) -> str:
    return "worker" if is_user(name) else STAGES[name].where


def worker_stages(names: list[str]) -> list[str]:
    return [n for n in names if where(n) == "worker"]


def order_problem(names: list[str]) -> str | None:
    """What is wrong with running `names` in this order, or None: worker stages, then judge, then the stateful ones."""
    rank = {n: 0 if where(n) == "worker" else 1 if n == "judge" else 2 for n in names if n in STAGES or is_user(n)}
    for a, b in pairwise(names):
        if a in rank and b in rank and rank[a] > rank[b]:
            why = (
                "they index only what passed every other stage"
                if a in ("decontam", "dedup")
                else ("it sees only what the worker stages passed")
            )
            return f"{b!r} must come before {a!r}: {why} (worker stages, then judge, then decontam and dedup)"
    return None


def run_chain(c: Candidate, names: list[str], settings: Settings | None = None) -> Verdict:
    """The candidate's verdict: the first stage's reject, or accepted. With the judge cascade on, a verify verdict
    the second opinion disputes is marked for the judge (`scores.cascade`); a disputed reject still runs the stages
    after verify, since the judge can rescue it only if they pass it."""
    settings = settings or Settings()
    scores: dict = {}
    held = None  # the verify stage's disputed reject
    for name in names:
        v = check_of(name)(c, settings)
        scores.update(v.scores)
        why = cascade.disputed(c, v, settings.cascade) if name == "verify" and settings.cascade is not None else None
        if why:
            scores.update(cascade=cascade.ASKED, cascade_why=why)
            held = None if v.accepted else v
            continue
        if not v.accepted:
            scores.pop("cascade", None), scores.pop("cascade_why", None)  # rejected all the same: nothing to ask
            return Verdict(False, (held or v).reason, scores)
    prep = settings.prepare(c.text) if settings.prepare else None  # a rescued answer is deduplicated too
    return Verdict(held is None, held and held.reason, scores, prep)
