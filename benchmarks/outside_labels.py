"""How often the math verify stage agrees with graders outside this project, on real model answers they labelled.

Each answer goes through `filters.verify.verify` as a math candidate of a model that does not reason in tags
(`think=False`): the project's answer extraction, then `math_equal` against the reference. Its verdict is set
against the outside label. A false positive is an answer we accept that the label calls wrong (it would become
training data); a false negative one we reject that the label calls right (a lost sample). The goal: no false
positive, false negatives under 0.5% of the right answers; the script exits 1 when either is missed.

    .venv/bin/python benchmarks/outside_labels.py --qwen-math FILE --gsm8k FILE [--limit N]

The files are other projects' (MIT), passed by path and kept out of this repository:

- `--qwen-math`: QwenLM/Qwen2.5-Math at a45202bd16f1ec06f433442dc1152d0074773465,
  evaluation/data/eval_rm_maj_example/math_cot_100.jsonl: 100 MATH problems, 8 answers each by
  Qwen2.5-Math-7B-Instruct (`code`), graded by Qwen's evaluation code (`score`); the reference is `gt`.
- `--gsm8k`: openai/grade-school-math at 3101c7d5072418e28b9008a6636bde82a006892c,
  grade_school_math/data/example_model_solutions.jsonl: the 1,319 GSM8K test problems, four model solutions each
  (6B and 175B, fine-tuned and with a verifier) labelled `is_correct` by OpenAI. Solutions and the reference
  (`ground_truth`) end with a line `A: N`; the reference's answer is read with the same extraction.

The disagreements in the full run of both files, each looked at:

- MATH 72, answer 7 (gold `10{,}000`, answer `\\boxed{10000}`, labelled wrong, accepted): we are right. The problem
  is 49,994/7 + 20,006/7 = 70,000/7 = 10,000; Qwen's grader does not read `{,}` as a thousands separator.
- None on GSM8K. Before the thousands rule (filters/math_written.py, `commas`), 12 MATH answers (problems 59 and
  98, golds `3,250` and `50,625`) and 8 GSM8K answers (golds such as `65,960`) were turned away; before the GSM8K
  marker (filters/answer.py) the reference `A: 18` matched an answer only by the accident that math-verify reads
  both as a/18.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import as_list, read_jsonl, table  # noqa: E402

from filters.answer import extract_answer  # noqa: E402
from filters.base import Candidate  # noqa: E402
from filters.verify import verify  # noqa: E402

GSM8K_MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
MAX_FN_SHARE = 0.005  # the goal: false negatives under 0.5% of the right answers
# labels looked at and found wrong, by (problem, sample, reference): counted in FP and FN as the label has them, and
# left out of the goal
WRONG_LABELS = {
    ("72", "7", "10{,}000"): "49,994/7 + 20,006/7 = 10,000: the answer 10000 is right",
}


@dataclass
class Answer:
    dataset: str
    problem: str
    sample: str
    reference: str
    text: str
    label: bool
    theirs: str = "-"  # the outside grader's reading of the answer, where the file has one


def qwen_math(path: str, limit: int | None) -> list[Answer]:
    out = []
    for r in read_jsonl(path, limit):
        texts, labels, preds = as_list(r["code"]), as_list(r["score"]), as_list(r.get("pred", []))
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            theirs = str(preds[i]) if i < len(preds) else "-"
            out.append(Answer("MATH, Qwen2.5-Math-7B-Instruct", str(r["idx"]), str(i), r["gt"], text, label, theirs))
    return out


def gsm8k(path: str, limit: int | None) -> list[Answer]:
    out = []
    for n, r in enumerate(read_jsonl(path, limit)):
        reference = extract_answer(r["ground_truth"], think=False)
        if reference is None:
            raise SystemExit(f"{path}:{n + 1}: no answer in ground_truth (it should end with `A: N` or `#### N`)")
        for model in GSM8K_MODELS:
            s = r[model]
            out.append(Answer("GSM8K, GPT-3 6B/175B", str(n), model, reference, s["solution"], s["is_correct"]))
    return out


def judge(answers: list[Answer]) -> list[bool]:
    return [verify(Candidate(a.text, "math", {"answer": a.reference}, think=False)).accepted for a in answers]


def counts(dataset: str, answers: list[Answer], ours: list[bool]) -> tuple[list, bool]:
    """The summary row of one dataset, and whether it meets the goal once the labels found wrong are set aside."""
    pairs = list(zip(answers, ours, strict=True))
    right = sum(a.label for a in answers)
    fp = [a for a, o in pairs if o and not a.label]
    fn = [a for a, o in pairs if a.label and not o]
    agree = len(answers) - len(fp) - len(fn)
    mislabelled = sum(relabel(a) is not None for a in fp + fn)
    fp_true, fn_true = sum(relabel(a) is None for a in fp), sum(relabel(a) is None for a in fn)
    met = fp_true == 0 and fn_true < MAX_FN_SHARE * right
    pct = lambda k, n: f"{100 * k / n:.2f}%" if n else "-"  # noqa: E731
    row = [dataset, len(answers), right, agree, pct(agree, len(answers)), len(fp), pct(len(fp), len(answers) - right),
           pct(len(fp), right), len(fn), pct(len(fn), right), mislabelled, "met" if met else "MISSED"]  # fmt: skip
    return row, met


def relabel(a: Answer) -> str | None:
    """Why the outside label of this answer is wrong, where it was looked at and found so."""
    return WRONG_LABELS.get((a.problem, a.sample, a.reference))


HEADER = ["dataset", "answers", "labelled right", "agree", "agreement", "FP", "FP % of wrong", "FP % of right", "FN",
          "FN % of right", "label wrong", "goal"]  # fmt: skip


def cell(text: str, width: int = 60) -> str:
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def disagreements(answers: list[Answer], ours: list[bool]) -> list[list]:
    rows = []
    for a, o in zip(answers, ours, strict=True):
        if o != a.label:
            mine = extract_answer(a.text, think=False)
            mine = "-" if mine is None else mine
            who = f"we are: {relabel(a)}" if relabel(a) else "not looked at"
            rows.append([a.dataset, a.problem, a.sample, cell(a.reference), cell(mine), cell(a.theirs),
                         "right" if a.label else "wrong", "accept" if o else "reject", who])  # fmt: skip
    return rows


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qwen-math", help="Qwen2.5-Math's math_cot_100.jsonl (graded MATH answers)")
    ap.add_argument("--gsm8k", help="grade-school-math's example_model_solutions.jsonl (labelled GSM8K solutions)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems of each file")
    args = ap.parse_args()
    if not (args.qwen_math or args.gsm8k):
        ap.error("give --qwen-math FILE, --gsm8k FILE or both")
    sets = [read(path, args.limit) for read, path in ((qwen_math, args.qwen_math), (gsm8k, args.gsm8k)) if path]
    start = time.perf_counter()
    judged = [(answers, judge(answers)) for answers in sets]
    seconds = time.perf_counter() - start
    rows, met = [], True
    for answers, ours in judged:
        row, ok = counts(answers[0].dataset, answers, ours)
        rows.append(row)
        met &= ok
    every = [a for answers, _ in judged for a in answers]
    rows.append(counts("all", every, [o for _, ours in judged for o in ours])[0])
    print(f"The verify stage against outside labels ({len(every):,} answers, {seconds:.1f} s on {cpu_model()})\n")
    print(table(HEADER, rows))
    print(f"\nGoal: no FP and FN under {100 * MAX_FN_SHARE:.1f}% of the right answers, labels found wrong set aside.")
    found = [r for answers, ours in judged for r in disagreements(answers, ours)]
    print(f"\n{len(found)} disagreements (label: the outside grader's; ours: the verify stage's)\n")
    cols = ["dataset", "problem", "sample", "reference", "our answer", "their answer", "label", "ours", "who is right"]
    print(table(cols, found or [["none"] * len(cols)]))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
