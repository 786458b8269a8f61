"""The math verifier on hand-labelled pairs: no false positive at all, every true pair accepted but the known misses.

Each line of data/labelled/math_pairs.jsonl is {gold, pred, equal, kind, form, note[, known_miss]}; a pred of form
"text" is a model's summary, read with the answer extraction first. data/labelled/math_verify_suite.jsonl holds the
cases of Math-Verify's own tests (benchmarks/math_verify_suite.py); there a disagreement is allowed only where the row
documents it as policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from math_verify import grader, parse, verify

from filters.answer import extract_answer
from filters.base import Candidate
from filters.math_answer import math_equal
from filters.verify import verify as verify_candidate

PAIRS = Path(__file__).resolve().parents[2] / "data" / "labelled" / "math_pairs.jsonl"
ROWS = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
SUITE = [json.loads(line) for line in PAIRS.with_name("math_verify_suite.jsonl").read_text().splitlines()]
POLICIES = {"rounded", "decimal_comma", "option", "extraction", "label", "malformed"}
KINDS = {"fraction_decimal", "rounded", "near", "radical", "interval", "set", "tuple", "degrees", "thousands",
         "percent", "units", "scientific", "negative", "sign_error", "expression", "wrong_variable", "equation",
         "plus_minus", "factorial", "off_by_one", "matrix", "decimal_comma", "constant", "mixed_number",
         "punctuation", "math_verify_issue"}  # fmt: skip


def judged(r: dict) -> bool:
    pred = r["pred"] if r["form"] == "answer" else extract_answer(r["pred"], think=False)
    return pred is not None and math_equal(r["gold"], pred)


def _ids(rows):
    return [f"{r['kind']}:{r['gold']}|{r['pred'][:40]}" for r in rows]


WRONG = [r for r in ROWS if not r["equal"]]
RIGHT = [r for r in ROWS if r["equal"] and not r.get("known_miss")]
MISSES = [r for r in ROWS if r.get("known_miss")]


def test_the_data_is_well_formed():
    assert len(ROWS) >= 120
    for i, r in enumerate(ROWS, 1):
        assert set(r) <= {"gold", "pred", "equal", "kind", "form", "note", "known_miss"}, f"line {i}"
        assert isinstance(r["gold"], str) and isinstance(r["pred"], str) and isinstance(r["equal"], bool), f"line {i}"
        assert r["form"] in ("answer", "text") and r["kind"] in KINDS, f"line {i}"
        assert not (r.get("known_miss") and not r["equal"]), f"line {i}: only a true pair can be a known miss"
    assert {r["kind"] for r in ROWS} == KINDS
    assert len(WRONG) >= 60 and len(RIGHT) >= 60
    pairs = [(r["gold"], r["pred"]) for r in ROWS]
    assert len(set(pairs)) == len(pairs), "duplicate pair"


@pytest.mark.parametrize("r", WRONG, ids=_ids(WRONG))
def test_no_false_positive(r):
    assert not judged(r), r["note"]


@pytest.mark.parametrize("r", RIGHT, ids=_ids(RIGHT))
def test_true_pair_accepted(r):
    assert judged(r), r["note"]


@pytest.mark.parametrize("r", MISSES, ids=_ids(MISSES))
def test_known_miss_is_still_missed(r):
    assert not judged(r), "now accepted: drop its known_miss mark"


def _plain_math_verify(gold: str, pred: str) -> bool:
    return bool(verify(parse(f"${gold}$"), parse(f"${pred}$")))


@pytest.mark.parametrize(
    "gold, pred",
    [
        (r"\frac{1}{2004!}", r"\frac{1}{2006!}"),
        ("1/2004!", "1/2006!"),
        (r"\frac{1}{2^{100}}", r"\frac{1}{2^{101}}"),
        (r"[0, \frac{1}{2004!}]", r"[0, \frac{1}{2006!}]"),
        (r"x = \frac{1}{2004!}", r"x = \frac{1}{2006!}"),
    ],
)
def test_factorial_trap(gold, pred):
    assert _plain_math_verify(gold, pred)  # math-verify alone: the difference is tiny, chopped to zero
    assert not math_equal(gold, pred)
    assert math_equal(gold, gold)


def test_factorials_and_powers_compare_exactly():
    assert not math_equal("100!", "99!")
    assert math_equal("100!", r"100 \cdot 99!")
    assert math_equal(r"\frac{1}{2004!}", r"\frac{2005 \cdot 2006}{2006!}")
    assert not math_equal("2^{100}+1", "2^{100}")
    assert math_equal("2^{100}", "1267650600228229401496703205376")
    assert not math_equal("2^{64}", "18446744073709551615")
    assert not math_equal(r"10^{10^{10}}", r"10^{10^{10}}+1")  # too long to compare: only the same form passes
    assert math_equal(r"10^{10^{10}}", r"10^{10^{10}}")


@pytest.mark.parametrize("gold, pred, ok", [(r"\pm 2", "2", False), ("2", r"\pm 2", False),
                                            (r"1 \pm \sqrt{2}", r"1+\sqrt{2}", False), (r"\pm 2", "2, -2", True),
                                            (r"\pm 2", r"x = \pm 2", True), ("-2, 2", r"\pm 2", True)])  # fmt: skip
def test_plus_minus_is_a_set_of_two(gold, pred, ok):
    assert math_equal(gold, pred) is ok


@pytest.mark.parametrize("gold, pred, ok", [(r"\frac{1}{3}", "0.333333", False), (r"\pi", "3.14159", False),
                                            ("0.33", r"\frac{1}{3}", False), ("0.33", "0.330", True),
                                            (r"\frac{1}{8}", "0.125", True)])  # fmt: skip
def test_a_decimal_is_the_value_written(gold, pred, ok):
    assert math_equal(gold, pred) is ok


def test_the_guard_leaves_math_verify_as_it_was():
    before = grader.sympy_numeric_eq, grader.sympy_symbolic_eq
    math_equal(r"\frac{1}{2004!}", r"\frac{1}{2006!}")
    assert (grader.sympy_numeric_eq, grader.sympy_symbolic_eq) == before
    assert _plain_math_verify(r"\frac{1}{3}", "0.333333")  # others' calls keep math-verify's own rules


def test_the_verifier_rejects_the_trap_with_its_reason():
    text = "<think>2006 terms...</think>\nThe answer is $\\boxed{\\frac{1}{2006!}}$."
    v = verify_candidate(Candidate(text, "math", {"answer": r"\frac{1}{2004!}"}, think=True))
    assert not v.accepted and v.reason == "wrong_answer"
    ok = verify_candidate(Candidate(text.replace("2006!", "2004!"), "math", {"answer": r"\frac{1}{2004!}"}))
    assert ok.accepted


def test_math_verify_suite_agrees_but_for_documented_policy():
    said = [math_equal(r["gold"], r["answer"]) for r in SUITE]
    assert len(SUITE) >= 250 and {r.get("policy") for r in SUITE} <= POLICIES | {None}
    fp = [r for r, s in zip(SUITE, said, strict=True) if s and not r["expected"] and not r.get("policy")]
    assert not fp, [(r["source"], r["gold"], r["answer"]) for r in fp]
    stale = [r for r, s in zip(SUITE, said, strict=True) if r.get("policy") and s == r["expected"]]
    assert not stale, f"now agrees with the suite: drop the policy mark of {[(r['gold'], r['answer']) for r in stale]}"
    agree = sum(s == r["expected"] for r, s in zip(SUITE, said, strict=True)) / len(SUITE)
    assert agree >= 0.95


def test_math_verifys_reported_false_positives_are_rejected():
    """The pairs Math-Verify's users reported as wrongly equal (its issues #14, #60, #64 and PR #82): math_equal
    rejects every one (test_no_false_positive), and math-verify alone, the version installed, still takes some."""
    rows = [r for r in ROWS if r["kind"] == "math_verify_issue"]
    assert len(rows) >= 10 and not any(math_equal(r["gold"], r["pred"]) for r in rows)
    assert sum(_plain_math_verify(r["gold"], r["pred"]) for r in rows) >= 5
