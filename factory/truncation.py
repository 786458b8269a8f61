"""Truncation that is noticed: when too many of a run's recent candidates end at `max_tokens`, say so once, with
their lengths and a `max_tokens` that would have let them end.

A reasoning model cut at the token cap writes no answer, so the candidate fails and the prompt looks harder than it
is; the run still ends well. `Watch` sees each commit's candidates and keeps the last `truncation.window`; at each
commit, once that many are in (or at the end of a run that drew fewer, over all it drew), it checks the share that
finished with `length`. Past `truncation.share` it returns a notice, once per run: the share, the lengths in the
window, and a suggested `max_tokens`. The suggestion is the 95th percentile of a log-normal fitted to the window's
lengths, a cut candidate counted as "at least max_tokens" (a censored fit, by EM): how long 95% of the answers would
be, had none been cut; rounded up to a multiple of 64.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

Z95 = 1.6448536269514722  # the standard normal's 95th percentile
ROUND_TO = 64  # a suggested max_tokens is a multiple of this


@dataclass
class Watch:
    max_tokens: int
    share: float  # the share cut past which the notice is given
    window: int  # the last this many candidates
    said: bool = False  # the run has its notice already (a resumed run: not said twice)
    seen: int = 0
    recent: deque = field(default_factory=deque)  # (n_tokens, cut, accepted) of the last `window`

    def see(self, rows: list[tuple[int, bool, bool]]) -> dict | None:
        """A commit's candidates, (completion tokens, cut at max_tokens, accepted) each; the notice, when it is due."""
        for r in rows:
            self.recent.append(r)
            if len(self.recent) > self.window:
                self.recent.popleft()
        self.seen += len(rows)
        return self._check() if len(self.recent) >= self.window else None

    def finish(self) -> dict | None:
        """At the end of the run: the check over what it drew, if it never filled a window."""
        return self._check() if self.recent and len(self.recent) < self.window else None

    def _check(self) -> dict | None:
        cut = sum(c for _, c, _ in self.recent)
        if self.said or cut <= self.share * len(self.recent):
            return None
        self.said = True
        return notice(list(self.recent), self.max_tokens, self.seen)


def notice(rows: list[tuple[int, bool, bool]], max_tokens: int, seen: int) -> dict:
    """What is said and stored: the window's share cut, its length distribution, and the suggested max_tokens."""
    lengths = sorted(n for n, _, _ in rows)
    kept = sorted(n for n, _, a in rows if a)
    cut = sum(c for _, c, _ in rows)
    q95 = censored_quantile([n for n, c, _ in rows if not c], cut, max_tokens)
    return {
        "share": cut / len(rows),
        "cut": cut,
        "window": len(rows),
        "at_candidate": seen,
        "max_tokens": max_tokens,
        "lengths": {f"p{q}": quantile(lengths, q / 100) for q in (50, 90, 99)} | {"max": lengths[-1]},
        "accepted_p95": quantile(kept, 0.95) if kept else None,
        "suggested_max_tokens": ROUND_TO * math.ceil(max(q95, max_tokens + 1) / ROUND_TO),  # above the cap
    }


def line(n: dict) -> str:
    """The notice as said on screen."""
    q = n["lengths"]
    return (
        f"{n['share']:.0%} of the last {n['window']} candidates ({n['cut']}) hit max_tokens={n['max_tokens']}"
        f" (lengths p50 {q['p50']}, p90 {q['p90']}, p99 {q['p99']}); answers cut short fail, so prompts look harder"
        f" than they are. Suggested: --set sampling.max_tokens={n['suggested_max_tokens']} (95% of answers would end"
        " under it, by a log-normal fit that counts each cut one as at least max_tokens)"
    )


def quantile(sorted_values: list[int], q: float) -> int:
    """The value at quantile q of a sorted list (the nearest rank above)."""
    return sorted_values[min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1 if q else 0)]


def censored_quantile(ended: list[int], cut: int, at: int, q_z: float = Z95, steps: int = 200) -> float:
    """The quantile (by its z, default the 95th) of a log-normal fitted to lengths `ended` and `cut` more known only
    to be at least `at`: EM for a censored normal on the logs."""
    xs = [math.log(max(1, n)) for n in ended]
    c, n = math.log(max(1, at)), len(xs) + cut
    mu = (sum(xs) + cut * c) / n
    sd = max(0.1, math.sqrt(sum((x - mu) ** 2 for x in xs) / max(1, len(xs))))
    for _ in range(steps):
        a = (c - mu) / sd
        tail = max(1e-12, 0.5 * math.erfc(a / math.sqrt(2)))
        lam = math.exp(-a * a / 2) / math.sqrt(2 * math.pi) / tail  # E of a standard normal above a, the hazard
        ex = mu + sd * lam
        ex2 = sd * sd * (1 + a * lam - lam * lam) + ex * ex
        mu = (sum(xs) + cut * ex) / n
        sd = max(1e-3, math.sqrt(max(0.0, (sum(x * x for x in xs) + cut * ex2) / n - mu * mu)))
    return math.exp(mu + q_z * sd)
