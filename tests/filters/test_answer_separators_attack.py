"""Answers built to pass a thousands-separator reference without being the number, and GSM8K's final-line marker
abused: each must be a wrong answer."""

from __future__ import annotations

import pytest

from filters.base import Candidate
from filters.verify import verify

WRONG = [
    ("3250", "\\boxed{3,250, 3250}"), ("3250", "\\boxed{3,25,0}"), ("3250", "\\boxed{3,2,5,0}"),
    ("3250", "\\boxed{03,250}"), ("3250", "\\boxed{3,250.5}"), ("3,250", "\\boxed{3250 \\text{ or } 3251}"),
    ("1,000", "\\boxed{1, 000}"), ("(1,234)", "\\boxed{1234}"),
    ("18", "The total is 20.\nA: 18 or 19"), ("18", "#### 18\n#### 19"), ("12", "A: 12\nA: 13"),
]  # fmt: skip
RIGHT = [("3,250", "\\boxed{3{,}250}"), ("18", "I am unsure.\n#### 18"), ("3250", "\\boxed{3,250}")]


@pytest.mark.parametrize(("reference", "answer"), WRONG)
def test_a_hedged_or_split_answer_is_wrong(reference, answer):
    v = verify(Candidate(answer, "math", {"answer": reference}, "stop", False))
    assert (v.accepted, v.reason) == (False, "wrong_answer")


@pytest.mark.parametrize(("reference", "answer"), RIGHT)
def test_the_number_itself_passes(reference, answer):
    assert verify(Candidate(answer, "math", {"answer": reference}, "stop", False)).accepted
