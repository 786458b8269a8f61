"""Precision and recall of the math and code verifiers on labelled cases, against plain math-verify in the same run.

Math: the pairs in data/labelled/math_pairs.jsonl, judged by `filters.math_answer.math_equal` and, as the baseline,
by math-verify alone (`verify(parse(gold), parse(pred))` with its defaults) after the same answer extraction.
Math-Verify's own suite: the (gold, answer, label) cases of its tests, extracted into
data/labelled/math_verify_suite.jsonl by benchmarks/math_verify_suite.py, judged by `math_equal`, by the project's
extraction then `math_equal`, and by math-verify twice: called as its tests call it (their options) and with its
defaults. A disagreement on a row the data marks with a `policy` (a rounded decimal is not the exact value, an option
that is off by default, a label that pins a misreading) is counted apart from errors.
Code: the cases of benchmarks/labelled_code.py through `filters.code.verify_code`, skipped with a note until both
exist. The aim is no false positive: a wrong answer accepted becomes training data.

    .venv/bin/python benchmarks/verifier_accuracy.py [--limit N]
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

from common import table
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from filters.answer import extract_answer
from filters.math_answer import math_equal

PAIRS = Path(__file__).resolve().parents[1] / "data" / "labelled" / "math_pairs.jsonl"
SUITE = PAIRS.with_name("math_verify_suite.jsonl")


def plain_math_verify(gold: str, pred: str) -> bool:
    return bool(verify(parse(f"${gold}$"), parse(f"${pred}$")))


def judge_math(rows: list[dict], equal) -> tuple[list[bool], list[float]]:
    said, secs = [], []
    for r in rows:
        t = time.perf_counter()
        pred = r["pred"] if r["form"] == "answer" else extract_answer(r["pred"], think=False)
        said.append(pred is not None and equal(r["gold"], pred))
        secs.append(time.perf_counter() - t)
    return said, secs


def scores(truth: list[bool], said: list[bool]) -> dict:
    n = Counter(zip(truth, said, strict=True))
    tp, fp, fn, tn = n[True, True], n[False, True], n[True, False], n[False, False]
    return dict(tp=tp, fp=fp, fn=fn, tn=tn, precision=tp / max(tp + fp, 1), recall=tp / max(tp + fn, 1))


def summary_row(name: str, truth: list[bool], said: list[bool], secs: list[float]) -> list:
    s = scores(truth, said)
    ms = [1000 * t for t in secs]
    return [name, len(truth), s["tp"], s["fp"], s["fn"], s["tn"], f"{s['precision']:.3f}", f"{s['recall']:.3f}",
            sum(ms) / len(ms), max(ms)]  # fmt: skip


SUMMARY = ["verifier", "cases", "TP", "FP", "FN", "TN", "precision", "recall", "mean ms", "max ms"]


def math_section(limit: int | None = None) -> None:
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()][:limit]
    truth = [r["equal"] for r in rows]
    ours, our_secs = judge_math(rows, math_equal)
    base, base_secs = judge_math(rows, plain_math_verify)
    print(f"## Math: {len(rows)} labelled pairs ({sum(truth)} equal, {len(rows) - sum(truth)} not)\n")
    print(table(SUMMARY, [summary_row("math_equal (guarded)", truth, ours, our_secs),
                          summary_row("math-verify alone", truth, base, base_secs)]))  # fmt: skip

    print("\n### Mistakes per category (FP: a wrong answer accepted; FN: a right one rejected)\n")
    per = []
    for kind in sorted({r["kind"] for r in rows}):
        i = [j for j, r in enumerate(rows) if r["kind"] == kind]
        t = [truth[j] for j in i]
        a, b = scores(t, [ours[j] for j in i]), scores(t, [base[j] for j in i])
        per.append([kind, len(i), sum(t), a["fp"], a["fn"], b["fp"], b["fn"]])
    print(table(["category", "pairs", "equal", "FP guarded", "FN guarded", "FP math-verify", "FN math-verify"], per))

    for name, said in [("math_equal (guarded)", ours), ("math-verify alone", base)]:
        wrong = [(r, s) for r, s in zip(rows, said, strict=True) if s != r["equal"]]
        print(f"\n### {name}: {len(wrong)} mistakes\n")
        if wrong:
            cells = [["FP" if s else "FN", r["kind"], r["gold"], r["pred"][:60], "yes" if r.get("known_miss") else "",
                      r["note"][:70]] for r, s in wrong]  # fmt: skip
            print(table(["", "category", "gold", "pred", "known miss", "note"], cells))


def as_its_tests_call_it(r: dict) -> bool:
    """math-verify with the options the suite's test passes (tests/test_all.py::compare_strings)."""
    o = r["options"]
    kinds = o.get("match_types", ["latex", "expr"])
    configs = [LatexExtractionConfig(boxed_match_priority=0) if k == "latex" else ExprExtractionConfig() for k in kinds]
    g, p = parse(r["gold"], configs), parse(r["answer"], configs)
    return bool(verify(g, p, float_rounding=o.get("precision", 6), strict=o.get("strict", True),
                       allow_set_relation_comp=o.get("allow_set_relation_comp", False)))  # fmt: skip


def extracted_equal(gold: str, text: str) -> bool:
    """The pipeline's way: the project's answer extraction, then the comparison."""
    answer = extract_answer(text, think=False)
    return answer is not None and math_equal(gold, answer)


SUITE_JUDGES = {
    "math_equal": lambda r: math_equal(r["gold"], r["answer"]),
    "extract_answer, then math_equal": lambda r: extracted_equal(r["gold"], r["answer"]),
    "math-verify (the suite's options)": as_its_tests_call_it,
    "math-verify (defaults)": lambda r: bool(verify(parse(r["gold"]), parse(r["answer"]))),
}


def suite_section(limit: int | None = None) -> None:
    rows = [json.loads(line) for line in SUITE.read_text().splitlines() if line.strip()][:limit]
    n_equal = sum(r["expected"] for r in rows)
    print(f"\n## Math-Verify's test suite: {len(rows)} cases ({n_equal} equal, {len(rows) - n_equal} not)\n")
    said = {name: [judge(r) for r in rows] for name, judge in SUITE_JUDGES.items()}
    print(table(["verifier", "cases", "agree", "agreement", "FP", "FN", "policy", "error"],
                [[name, *suite_scores(rows, v)] for name, v in said.items()]))  # fmt: skip
    print("\nFP: accepted where the label says wrong; FN: rejected where it says right. policy: a disagreement the")
    print("data documents as deliberate (its `policy` field); error: any other.\n")
    kinds = sorted({_kind(r) for name in said for r, _ in _off(rows, said[name])})
    counts = [[k, *[sum(_kind(r) == k for r, _ in _off(rows, v)) for v in said.values()]] for k in kinds]
    print(table(["disagreements", *said], counts))
    off = _off(rows, said["math_equal"])
    print(f"\n### math_equal: {len(off)} disagreements with the suite\n")
    cells = [["FP" if v else "FN", _kind(r), r["source"].split("::")[1], _short(r["gold"]), _short(r["answer"]),
              r.get("note", "")] for r, v in off]  # fmt: skip
    print(table(["", "category", "test", "gold", "answer", "why"], cells))


def suite_scores(rows: list[dict], said: list[bool]) -> list:
    off = _off(rows, said)
    policy = sum(1 for r, _ in off if r.get("policy"))
    fp = sum(1 for _, v in off if v)
    return [len(rows), len(rows) - len(off), f"{1 - len(off) / len(rows):.3f}", fp, len(off) - fp, policy,
            len(off) - policy]  # fmt: skip


def _off(rows: list[dict], said: list[bool]) -> list[tuple[dict, bool]]:
    return [(r, v) for r, v in zip(rows, said, strict=True) if v != r["expected"]]


def _kind(r: dict) -> str:
    return r.get("policy") or "error"


def _short(text: str, n: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else "..." + text[-n:]


def category(name: str) -> str:
    """A name's last part less its numbers, else its first: HumanEval/0/mutant12.3 is mutant, HumanEval/0 HumanEval."""
    parts = re.split(r"[/:]", name)
    return re.sub(r"[\d.]+$", "", parts[-1]) or parts[0]


def code_section(limit: int | None = None) -> None:
    sys.path.insert(0, str(Path(__file__).parent))  # labelled_code lives beside this script
    try:
        from filters.code import verify_code

        labelled_code = importlib.import_module("labelled_code")
    except ImportError as e:
        print(f"\n## Code: skipped ({e}); it needs filters/code.py and benchmarks/labelled_code.py")
        return
    cases = labelled_code.cases(limit=limit)
    truth, said, secs, reasons = [], [], [], []
    for _, candidate, should_pass in cases:
        t = time.perf_counter()
        v = verify_code(candidate)
        secs.append(time.perf_counter() - t)
        truth.append(should_pass)
        said.append(v.accepted)
        reasons.append(v.reason)
    print(f"\n## Code: {len(cases)} labelled cases ({sum(truth)} should pass)\n")
    print(table(SUMMARY, [summary_row("verify_code", truth, said, secs)]))
    groups = [category(name) for name, _, _ in cases]
    if len(set(groups)) < len(groups):
        print("\n### Mistakes per category (from the case names)\n")
        per = []
        for g in sorted(set(groups)):
            i = [j for j, x in enumerate(groups) if x == g]
            s = scores([truth[j] for j in i], [said[j] for j in i])
            per.append([g, len(i), s["tp"] + s["fn"], s["fp"], s["fn"]])
        print(table(["category", "cases", "should pass", "FP", "FN"], per))
    print("\n### Verdicts by expected outcome and reason\n")
    n = Counter((t, r or "accepted") for t, r in zip(truth, reasons, strict=True))
    print(table(["should pass", "verdict", "cases"], [[t, r, c] for (t, r), c in sorted(n.items(), key=str)]))
    wrong = [(name, t, r) for (name, _, t), s, r in zip(cases, said, reasons, strict=True) if s != t]
    print(f"\n### verify_code: {len(wrong)} mistakes\n")
    if wrong:
        print(table(["", "case", "reason"], [["FN" if t else "FP", name, r or ""] for name, t, r in wrong]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, help="the first N cases of each math set and N HumanEval problems only")
    limit = ap.parse_args().limit
    t = time.perf_counter()
    math_section(limit)
    suite_section(limit)
    code_section(limit)
    print(f"\n({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
