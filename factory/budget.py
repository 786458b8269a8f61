"""A run's budget: what it has spent against what it may (tokens, engine hours), when to stop starting rounds, and
the time left at the live rates.

Spend is what the store holds of the run: each committed candidate's prompt and completion tokens and its engine
seconds (the cost ledger, `candidate_rows.engine_seconds`), so it survives a crash exactly and a resumed run goes on
from it. The sampler starts no round while the spend committed, plus what the samples not yet committed will likely
cost (at the run's mean per sample so far; before the first commit, a sample's tokens are taken at `max_tokens`),
reaches the budget; the rounds out are finished and committed, and the rule is asked again with what they cost. So
the run ends on whole rounds once what it committed reaches the budget, over it by at most the last rounds' misjudged
cost, never with half a round. The run's status is then `budget`, and the same command with a larger budget
(`--budget tokens=...`, or none) resumes it.
"""

from __future__ import annotations

from dataclasses import dataclass

UNITS = {"tokens": "tokens", "hours": "engine hours"}


@dataclass(frozen=True)
class Budget:
    tokens: float = 0.0  # prompt and completion tokens; 0: no limit
    hours: float = 0.0  # engine hours; 0: no limit

    def __bool__(self) -> bool:
        return bool(self.tokens or self.hours)

    def limits(self) -> dict[str, float]:
        return {k: v for k, v in (("tokens", self.tokens), ("hours", self.hours)) if v}


def spent(t) -> dict[str, float]:
    """What a tally (`sampler.Tally`) says the run has spent: tokens, prompt and completion, and engine hours."""
    return {"tokens": t.tokens + t.prompt_tokens, "hours": t.engine_seconds / 3600}


def reached(b: Budget, t, outstanding: int, max_tokens: int) -> str | None:
    """The limit the run reaches once `outstanding` samples (drawn or drawing, not committed) are in, at its mean cost
    per sample so far; None while it has room."""
    have = spent(t)
    n = t.candidates
    per = {
        "tokens": have["tokens"] / n if n else max_tokens,
        "hours": have["hours"] / n if n else 0.0,
    }
    for k, limit in b.limits().items():
        if have[k] + outstanding * per[k] >= limit:
            return k
    return None


def eta(b: Budget, t, since: dict[str, float]) -> float | None:
    """Seconds until the budget is spent or the job is done, whichever comes first, at this process's rates
    (`since`: the spend and prompts done when it began); None with no budget or no rate yet."""
    if not b or not t.seconds:
        return None
    have, left = spent(t), []
    for k, limit in b.limits().items():
        rate = (have[k] - since.get(k, 0.0)) / t.seconds
        if rate > 0:
            left.append(max(0.0, limit - have[k]) / rate)
    done = (t.prompts_done - since.get("prompts_done", 0)) / t.seconds
    if done > 0:
        left.append((t.prompts - t.prompts_done) / done)
    return min(left) if left else None


def line(b: Budget, t) -> str:
    """Spend against the budget, for the progress bar: "tokens 1.2M/3M (40%)"."""
    have = spent(t)
    return " · ".join(
        f"{k} {_short(have[k])}/{_short(limit)} ({have[k] / limit:.0%})" for k, limit in b.limits().items()
    )


def parse(items: list[str]) -> list[str]:
    """`--budget tokens=3e9 --budget hours=12` as recipe overrides (`budget.tokens=3e9`)."""
    from factory.errors import FactoryError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in UNITS:
            raise FactoryError(f"--budget {item!r}: expected tokens=N or hours=N, e.g. --budget tokens=3e9")
        try:
            float(value)
        except ValueError:
            raise FactoryError(f"--budget {item!r}: {value!r} is not a number") from None
        out.append(f"budget.{key}={value}")
    return out


def _short(x: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.3g}"
