"""Answer verification: reasoning-gym's own scorer for its tasks, math-verify for math with a reference answer, and
code run against its tests in the sandbox (filters/code.py) under the recipe's `sandbox` limits.

General prompts (an LLM judge) and code without tests have no verifier here: they are rejected as `no_verifier`
rather than accepted unchecked.
"""

from __future__ import annotations

from filters.answer import extract_answer
from filters.base import Candidate, Verdict, accept, reject
from filters.code import has_tests, verify_code
from filters.math_answer import math_equal
from filters.sandbox import Limits


def verify(c: Candidate, limits: Limits | None = None) -> Verdict:
    ref = c.reference or {}
    if "reasoning_gym" in ref:
        return _reasoning_gym(c, ref["reasoning_gym"])
    if c.task == "math" and "answer" in ref:
        answer = extract_answer(c.text, c.think)
        if answer is None:
            return reject("no_answer")
        ok = math_equal(str(ref["answer"]), answer)
        return accept(correct=1.0) if ok else reject("wrong_answer", correct=0.0)
    if c.task == "code" and has_tests(ref):
        return verify_code(c, limits)
    return reject("no_verifier")


def _reasoning_gym(c: Candidate, entry: dict) -> Verdict:
    from reasoning_gym import get_score_answer_fn

    answer = extract_answer(c.text, c.think)
    if answer is None:
        return reject("no_answer")
    family = entry.get("metadata", {}).get("source_dataset")
    score = float(get_score_answer_fn(family)(answer, entry))
    # reasoning-gym gives partial credit when the answer merely contains the oracle: only 1.0 is correct
    return accept(correct=score) if score >= 1.0 else reject("wrong_answer", correct=score)
