"""benchmarks/audit_accuracy.py on made-up rows in the shape of each outside file: a store per verifier, audited,
and the audit's estimates set against the labels."""

from __future__ import annotations

import json

from conftest import number, run_benchmark, tables

QWEN = [  # 4 answers to each problem, the labels right: 5 right, 3 wrong
    {"idx": 1, "question": "Half of one?", "gt": r"\frac{1}{2}",
     "code": [r"So $\boxed{0.5}$.", r"So $\boxed{\frac{1}{2}}$.", r"So $\boxed{\frac{1}{3}}$.", r"So $\boxed{2}$."],
     "score": [True, True, False, False]},
    {"idx": 2, "question": "Three thousand two hundred fifty, in digits?", "gt": "3,250",
     "code": [r"\boxed{3250}", r"\boxed{3,250}", r"\boxed{3{,}250}", r"\boxed{325}"],
     "score": [True, True, True, False]},
]  # fmt: skip
GSM8K = [
    {"question": "How many pens?", "ground_truth": "They add up.\nA: 1,200",
     "6b_finetuning": {"solution": "3 * 400 = <<3*400=1200>>1200\nA: 1200", "is_correct": True},
     "6b_verification": {"solution": "A: 120", "is_correct": False},
     "175b_finetuning": {"solution": "#### 1,200", "is_correct": True},
     # the rule reads 1200 (right), the second opinion GSM8K's mark, 1300: a dispute for the judge cascade
     "175b_verification": {"solution": "#### 1300\nThe answer is 1200", "is_correct": False}},
]  # fmt: skip


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_the_audit_against_outside_labels(tmp_path):
    out = run_benchmark("audit_accuracy.py", "--qwen-math", write(tmp_path / "q.jsonl", QWEN),
                        "--gsm8k", write(tmp_path / "g.jsonl", GSM8K))  # fmt: skip
    head, *rows = tables(out)[0]
    got = {(r[0], r[1]): dict(zip(head, r, strict=True)) for r in rows}
    real = got["MATH, Qwen2.5-Math-7B", "real (format, verify)"]
    assert [number(real[k]) for k in ("answers", "accepts", "wrong_answer")] == [8, 5, 3]
    assert real["true FP"] == "0.0%" and real["true FN"] == "0.0%" and real["FP inside"] == real["FN inside"] == "yes"
    broken = got["MATH, Qwen2.5-Math-7B", "broken (format only)"]
    assert number(broken["accepts"]) == 8 and broken["true FP"] == "37.5%"  # its 3 wrong answers, let in
    assert broken["audit FP (95%), all undecided FP"].startswith("37.5% ") and broken["FP inside"] == "yes"
    gsm = got["GSM8K, GPT-3", "broken (format only)"]
    assert gsm["true FP"] == "50.0%" and gsm["second opinion = label"] == "4/4 (0 undecided)"
    head, *rows = tables(out)[1]  # the judge cascade on the real verifier's verdicts
    cascade = {r[0]: [number(c) for c in r[1:]] for r in rows}
    assert cascade["MATH, Qwen2.5-Math-7B"] == [8, 0, 0, 0, 0]
    assert cascade["GSM8K, GPT-3"] == [4, 1, 1, 1, 0]  # the one it sends is the rule's one error
