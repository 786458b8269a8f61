"""The judge cascade's first half, in the verification workers: which of the verify stage's verdicts a second opinion
disputes, so that only those go to the LLM judge (`verify.cascade: judge`; `factory.judging.decide` is the half
that applies the judge's answer).

OpenR1 sent Math-Verify's rejects to an LLM judge to rescue its false negatives; judging every answer costs a judge
call each, and a judge is easier to fool than a rule (`filters.judge.CANARIES`). Here the judge sees only:

- a math answer the verify stage rejected (`wrong_answer`, `no_answer`) that the second opinion
  (filters/second_opinion.py, which shares no code with it) reads as right: the judge may rescue it
  (`rescued_by_judge`);
- a math answer it accepted that the second opinion reads as wrong: the judge may overrule it (`overruled_by_judge`);
- a reject whose reason the recipe lists in `verify.cascade_reasons`, whatever the second opinion says.

Where the second opinion cannot tell (None), the rule stands: the judge is not asked.
"""

from __future__ import annotations

from filters.base import Candidate, Verdict
from filters.second_opinion import opinion

ASKED = "asked"  # scores["cascade"] of a candidate sent to the judge
DISPUTABLE = ("wrong_answer", "no_answer")  # the verify stage's rejects a second opinion can dispute
RESCUED, OVERRULED = "rescued_by_judge", "overruled_by_judge"


def disputed(c: Candidate, v: Verdict, always: tuple[str, ...]) -> str | None:
    """Why the verify stage's verdict `v` on `c` goes to the judge, or None when it stands."""
    if not v.accepted and v.reason in always:
        return f"verify.cascade_reasons holds {v.reason}"
    if c.task != "math" or (not v.accepted and v.reason not in DISPUTABLE):
        return None
    right, read = opinion(c.text, c.reference or {})
    if right is None or right == v.accepted:
        return None
    return f"the second opinion reads it as {'right' if right else 'wrong'}: {read}"
