"""What every filter sees and says: a `Candidate` in, a `Verdict` out; `FilterError` for a user's mistake in a
filter's settings (filters/ stands apart from the factory package, whose CLI reports it like its own errors)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Candidate:
    text: str
    task: str = "math"  # math | code | general
    reference: dict = field(default_factory=dict)
    finish_reason: str = "stop"
    think: bool = True  # the model was asked to reason inside <think>...</think>
    language: str | None = None  # the language it should answer in (a record's own; else the recipe's)


@dataclass
class Verdict:
    accepted: bool
    reason: str | None = None  # short snake_case code when rejected
    scores: dict = field(default_factory=dict)
    # Work done in a verification worker for the main process's stages on a candidate that passed every worker
    # stage (`Settings.prepare`: decontamination's verdict, dedup's signature); never stored
    prep: object = field(default=None, repr=False, compare=False)


def merge(first: Verdict, later: Verdict) -> Verdict:
    """A later stage's verdict on a candidate that passed the earlier ones, keeping every stage's scores."""
    return Verdict(later.accepted, later.reason, {**first.scores, **later.scores})


def narrow(verdicts: list[Verdict], items: list, check) -> list[Verdict]:
    """Run a batch stage (`check(items) -> verdicts`) on the items whose verdict still accepts, merging its verdicts
    into theirs: how each stage after the first sees only what passed the ones before it."""
    todo = [i for i, v in enumerate(verdicts) if v.accepted]
    if todo:
        for i, v in zip(todo, check([items[i] for i in todo]), strict=True):
            verdicts[i] = merge(verdicts[i], v)
    return verdicts


def reject(reason: str, **scores) -> Verdict:
    return Verdict(False, reason, scores)


def accept(**scores) -> Verdict:
    return Verdict(True, None, scores)


class FilterError(ValueError):
    """Bad filter settings the user can fix (a benchmark file that is missing, a column that is not there); the
    message says what and how."""
