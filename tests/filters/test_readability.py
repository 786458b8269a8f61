"""Readability: each reason code on a small case, think-less candidates, the settings, and the labelled set.

The labelled set (data/labelled/readability_cases.jsonl, drop = positive) must reach precision and recall of at
least 0.95, give the expected reason for at least 95% of the drops it catches, and get every hard case right. The
held-out set (data/labelled/heldout/, written apart from the filter and never tuned on) must keep precision at 0.95
and recall at its measured 0.79 (benchmarks/filter_quality.py shows which degenerate traces it lets through).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from filters.base import Candidate
from filters.readability import ReadabilityConfig, dup_ngram_fraction, readability, states_answer

CASES = Path(__file__).resolve().parents[2] / "data" / "labelled" / "readability_cases.jsonl"
REASONING = [
    "We need the sum of the interior angles of a hexagon. The formula for an n-gon is (n - 2) times 180 degrees.",
    "For n = 6 that is 4 times 180, which is 720 degrees.",
    "Check: each exterior angle of a regular hexagon is 60 degrees, so each interior angle is 120, and 6 * 120 = 720.",
]
SUMMARY = "The interior angles sum to $(6-2)\\cdot 180^\\circ$.\n\n**Final Answer**\n\\boxed{720}"


def trace(paras=REASONING, summary=SUMMARY, open_tag=True) -> str:
    return ("<think>\n" if open_tag else "") + "\n\n".join(paras) + "\n</think>\n\n" + summary


LOOP = "Let me recompute the sum of the angles once more to be sure."
CASES_BY_REASON = {
    None: Candidate(trace()),
    "truncated": Candidate(trace()[:120], finish_reason="length"),
    "unclosed_think": Candidate("<think>\n" + "\n\n".join(REASONING) + "\n\n" + SUMMARY),
    "no_summary": Candidate(trace(summary="  \n")),
    "summary_without_answer": Candidate(trace(summary="We use the formula for the angles of a polygon.")),
    "too_short": Candidate("<think>\n\n</think>\n\n" + SUMMARY),
    "long_paragraph": Candidate(trace([" ".join(REASONING * 12)])),
    "code_in_reasoning": Candidate(trace(REASONING + ["```python\nprint((6 - 2) * 180)\n```"])),
    "repeated_paragraphs": Candidate(trace(REASONING + REASONING[1:] * 3)),
    "sentence_loop": Candidate(trace(REASONING + [" ".join([LOOP] * 6)])),
    "ngram_repetition": Candidate(trace(REASONING + ["and then we add one more angle " * 30])),
    "too_long": Candidate(trace(REASONING * 40)),
}


@pytest.mark.parametrize("reason", list(CASES_BY_REASON), ids=str)
def test_each_reason_code(reason):
    cfg = ReadabilityConfig(max_chars=4000) if reason == "too_long" else ReadabilityConfig()
    v = readability(CASES_BY_REASON[reason], cfg)
    assert (v.accepted, v.reason) == (reason is None, reason)


def test_scores_are_the_measured_values():
    v = readability(CASES_BY_REASON[None])
    assert v.scores["max_paragraph_chars"] == max(len(p) for p in REASONING)
    assert v.scores["ngram_repetition"] == 0.0 and v.scores["max_sentence_repeats"] == 1
    loop = readability(CASES_BY_REASON["sentence_loop"])
    assert loop.scores["max_sentence_repeats"] == 6
    assert readability(CASES_BY_REASON["ngram_repetition"]).scores["ngram_repetition"] > 0.5


def test_a_model_without_think_skips_the_think_checks():
    plain = "\n\n".join(REASONING) + "\n\nSo the answer is 720."
    assert readability(Candidate(plain, think=False)).accepted
    assert readability(Candidate("7", think=False)).accepted  # a bare answer: no reasoning to be too short
    assert readability(Candidate(plain, think=True)).reason == "unclosed_think"
    assert readability(Candidate(plain, think=True), ReadabilityConfig(require_think=False)).accepted
    # the other checks still apply: a math answer with a code block, a wall of text
    coded = plain + "\n\n```python\nprint(720)\n```"
    assert readability(Candidate(coded, think=False)).reason == "code_in_reasoning"
    assert readability(Candidate(" ".join(REASONING * 12), think=False)).reason == "long_paragraph"


def test_code_tasks_keep_code_in_their_reasoning():
    paras = ["I will write the function and test it.", "```python\ndef f(x):\n    return 2 * x\n```", "It works."]
    code = Candidate(trace(paras, "```python\ndef f(x):\n    return 2 * x\n```"), task="code")
    assert readability(code).accepted
    math = Candidate(trace(paras, SUMMARY))
    assert readability(math).reason == "code_in_reasoning"
    assert readability(math, ReadabilityConfig(allow_code_in_math_reasoning=True)).accepted


def test_a_refrain_and_short_interjections_are_not_degeneration():
    refrain = [
        "Assume the bound for k; by the induction hypothesis the left side is at most 2k.",
        "Wait.",
        "Adding one term, by the induction hypothesis again, gives at most 2k + 2 = 2(k + 1).",
        "Wait.",
        "The base case k = 1 is immediate, since 1 is at most 2.",
        "Wait.",
        "So by the induction hypothesis and the base case, the bound holds for every k.",
        "Wait.",
    ]
    assert readability(Candidate(trace(refrain))).accepted


@pytest.mark.parametrize(
    ("summary", "task", "states"),
    [
        ("\\boxed{42}", "math", True),
        ("<answer>42</answer>", "math", True),
        ("The answer is twelve.", "math", True),
        ("So x = 5 and y = 3.", "math", True),
        ("The train covers 150 km.", "math", True),
        ("The number of solutions is twelve.", "math", True),
        ("The answer is.", "math", False),
        ("Let me reconsider the problem from the beginning.", "math", False),
        ("I hope this helps!", "math", False),
        ("```python\ndef f():\n    return 1\n```", "code", True),
        ("Compare the string with its reverse.", "code", False),
        ("Rayleigh scattering makes it blue.", "general", True),
    ],
)
def test_states_answer(summary, task, states):
    assert states_answer(summary, task) is states


def test_dup_ngram_fraction_counts_overlaps_once():
    assert dup_ngram_fraction(list("abcdef"), 3) == 0.0
    words = list("abcabcabc")  # every word after the first 3 is in a repeated trigram
    assert dup_ngram_fraction(words, 3) == pytest.approx(12 / 18)
    assert dup_ngram_fraction(["x"] * 20, 10) == pytest.approx(19 / 20)  # all but the first word


def labelled(path: Path = CASES) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_labelled_set_is_large_and_varied():
    cases = labelled()
    assert len(cases) >= 100
    assert sum(c["hard"] for c in cases) >= 20
    reasons = {c["reason"] for c in cases if c["label"] == "drop"}
    assert reasons >= {"truncated", "unclosed_think", "no_summary", "summary_without_answer", "too_short",
                       "long_paragraph", "code_in_reasoning", "repeated_paragraphs", "sentence_loop",
                       "ngram_repetition"}  # fmt: skip


def test_labelled_precision_recall_and_hard_cases():
    tp = fp = fn = right_reason = 0
    wrong_hard = []
    for c in labelled():
        v = readability(Candidate(c["text"], c["task"], {}, c["finish_reason"], c["think"]))
        drop, want = not v.accepted, c["label"] == "drop"
        tp, fp, fn = tp + (drop and want), fp + (drop and not want), fn + (want and not drop)
        right_reason += drop and want and v.reason == c["reason"]
        if c["hard"] and (drop != want or (drop and v.reason != c["reason"])):
            wrong_hard.append((c["note"], v.reason))
    assert tp / (tp + fp) >= 0.95 and tp / (tp + fn) >= 0.95, (tp, fp, fn)
    assert right_reason / tp >= 0.95
    assert not wrong_hard


def test_held_out_precision_and_recall():
    cases = labelled(CASES.parent / "heldout" / "readability_cases.jsonl")
    assert len(cases) >= 80 and {c["label"] for c in cases} == {"keep", "drop"}
    tp = fp = fn = 0
    for c in cases:
        drop = not readability(Candidate(c["text"], c["task"], {}, c["finish_reason"], c["think"])).accepted
        want = c["label"] == "drop"
        tp, fp, fn = tp + (drop and want), fp + (drop and not want), fn + (want and not drop)
    assert tp / (tp + fp) >= 0.95 and tp / (tp + fn) >= 0.79, (tp, fp, fn)
