"""benchmarks/outside_labels.py on a few made-up rows in the shape of each outside file: the table's counts."""

from __future__ import annotations

import json

from conftest import number, run_benchmark, tables

QWEN = [  # idx, gt, the model's answers (a list, or a list written out as Qwen's files sometimes hold it), labels
    {"idx": 1, "gt": "4,500", "code": [r"So $\boxed{4500}$.", r"So $\boxed{450}$."], "pred": ["4500", "450"],
     "score": [True, False]},
    {"idx": 2, "gt": r"\frac{1}{2}", "code": json.dumps([r"\boxed{0.5}", r"\boxed{\frac{1}{3}}"]),
     "score": [True, True]},  # the second label is wrong: a false negative by the label
    {"idx": 3, "gt": "(1,234)", "code": "['so \\\\boxed{(1, 234)}', 'so \\\\boxed{1234}']", "score": [True, False]},
]  # fmt: skip


def gsm8k_row(question: str, answer: str, solutions: list[tuple[str, bool]]) -> dict:
    models = ["6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"]
    row = {"question": question, "ground_truth": f"They add up.\nA: {answer}"}
    return row | {m: {"solution": s, "is_correct": ok} for m, (s, ok) in zip(models, solutions, strict=True)}


GSM8K = [
    gsm8k_row("How many?", "1,200", [("3 * 400 = <<3*400=1200>>1200\nA: 1200", True), ("A: 120", False),
                                     ("#### 1,200", True), ("A: 1200", False)]),  # the last label is wrong: an FP
    gsm8k_row("How much?", "7", [("A: 7", True), ("A: 7.0", True), ("A: 8", False), ("no answer here", False)]),
]  # fmt: skip


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def summary(out: str) -> dict[str, dict[str, str]]:
    head, *rows = tables(out)[0]
    return {r[0]: dict(zip(head, r, strict=True)) for r in rows}


def test_counts_and_disagreements(tmp_path):
    args = ["--qwen-math", write(tmp_path / "qwen.jsonl", QWEN), "--gsm8k", write(tmp_path / "gsm8k.jsonl", GSM8K)]
    out = run_benchmark("outside_labels.py", *args, codes=(1,))  # a false positive: the goal is missed
    rows = summary(out)
    math, gsm, every = rows["MATH, Qwen2.5-Math-7B-Instruct"], rows["GSM8K, GPT-3 6B/175B"], rows["all"]
    assert [number(math[k]) for k in ("answers", "labelled right", "agree", "FP", "FN")] == [6, 4, 5, 0, 1]
    assert [number(gsm[k]) for k in ("answers", "labelled right", "agree", "FP", "FN")] == [8, 4, 7, 1, 0]
    assert [number(every[k]) for k in ("answers", "agree", "FP", "FN")] == [14, 12, 1, 1]
    assert math["FN % of right"] == "25.00%" and gsm["FP % of wrong"] == "25.00%" and gsm["goal"] == "MISSED"
    listed = tables(out)[1][1:]
    assert sorted((r[1], r[2], r[6], r[7]) for r in listed) == [
        ("0", "175b_verification", "wrong", "accept"), ("2", "1", "right", "reject")]  # fmt: skip
    assert {r[4] for r in listed} == {"1200", r"\frac{1}{3}"}


def test_agreement_exits_zero(tmp_path):
    out = run_benchmark("outside_labels.py", "--qwen-math", write(tmp_path / "q.jsonl", QWEN), "--limit", "1")
    rows = summary(out)
    assert number(rows["all"]["agree"]) == 2 and rows["all"]["goal"] == "met"
    assert "0 disagreements" in out
