"""Does `factory audit` estimate the verifier's error rates right? Real model answers labelled outside this project
(the files of benchmarks/outside_labels.py) go through `factory generate` (replayed, with the real verify stage) into
a store of their own; `factory audit` samples it and estimates; the labels give the true rates.

Two verifiers: the real one (`filters: [format, verify]`), and one broken on purpose (`filters: [format]`: every
answer that has the form of one is accepted), whose false positives are every wrong answer. For each, the true
false-positive rate among accepts and false-negative rate among wrong_answer rejects (from the labels, over the whole
store), the audit's estimate with its 95% interval, and whether the truth lies inside it; and how often the audit's
second opinion, where it decided, agrees with the outside label. Then, for the real verifier, what the judge cascade
(`verify.cascade: judge`, filters/cascade.py) would send an LLM judge: how many verdicts, how many of those the labels
say the rule got wrong, and how many of the rule's errors it would not send.

    .venv/bin/python benchmarks/audit_accuracy.py --qwen-math FILE --gsm8k FILE [--limit N] [--size 200]

The files (MIT), passed by path: QwenLM/Qwen2.5-Math evaluation/data/eval_rm_maj_example/math_cot_100.jsonl (100
MATH problems, 8 answers each by Qwen2.5-Math-7B-Instruct, graded by Qwen's evaluation code) and openai/grade-school-
math grade_school_math/data/example_model_solutions.jsonl (1,319 GSM8K problems, 4 solutions each, labelled by
OpenAI). Decontamination is off: these are the benchmarks' own problems.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import as_list, read_jsonl, table  # noqa: E402

from filters.answer import extract_answer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL = "real (format, verify)"
VERIFIERS = {REAL: "[format, verify]", "broken (format only)": "[format]"}


def qwen_math(path: str, limit: int | None) -> list[tuple[str, str, list[tuple[str, bool]]]]:
    """(question, reference, [(answer, label), ...]) per problem."""
    out = []
    for r in read_jsonl(path, limit):
        answers = list(zip(as_list(r["code"]), as_list(r["score"]), strict=True))
        out.append((r["question"], r["gt"], [(t, bool(label)) for t, label in answers]))
    return out


def gsm8k(path: str, limit: int | None) -> list[tuple[str, str, list[tuple[str, bool]]]]:
    out = []
    for r in read_jsonl(path, limit):
        models = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
        answers = [(r[m]["solution"], bool(r[m]["is_correct"])) for m in models]
        out.append((r["question"], extract_answer(r["ground_truth"], think=False), answers))
    return out


def measure(problems: list, filters: str, size: int, work: Path) -> dict:
    """A store of these answers judged with `filters`, audited; the truth and the audit's estimates."""
    work.mkdir(parents=True, exist_ok=True)
    source, replay, db = work / "source.jsonl", work / "replay.jsonl", work / "store.duckdb"
    source.write_text("".join(json.dumps({"prompt": q, "answer": ref}) + "\n" for q, ref, _ in problems))
    replay.write_text(
        "".join(json.dumps({"prompt": q, "completion": t}) + "\n" for q, _, ans in problems for t, _ in ans)
    )
    most = max(len(a) for _, _, a in problems)
    recipe = work / "recipe.yaml"
    recipe.write_text(
        f"source: {{kind: jsonl, path: {source}, task: math}}\nengine: {{kind: replay, replay: {replay}}}\n"
        "prompt: {template: '{prompt}', think: false}\n"
        f"rejection: {{accept_per_prompt: {most}, max_samples: {most}, round_size: {most}}}\n"
        f"filters: {filters}\ndecontam: {{enabled: false}}\nverify: {{workers: 1}}\n"
    )
    _factory("generate", str(recipe), "--db", str(db))
    audit = json.loads(_factory("audit", "--db", str(db), "--size", str(size), "--json"))
    labels = {q: [label for _, label in ans] for q, _, ans in problems}
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute(
        "SELECT c.candidate_id, p.prompt, c.sample_index, c.accepted, c.reason, c.text, p.reference FROM candidates c "
        "JOIN prompts p USING (prompt_id)"
    ).fetchall()
    con.close()
    truth = {cid: labels[q][i] for cid, q, i, *_ in stored}
    cascade = _cascade(stored, truth) if filters == VERIFIERS[REAL] else None
    accepted = [cid for cid, _, _, ok, *_ in stored if ok]
    rejected = [cid for cid, _, _, ok, reason, *_ in stored if not ok and reason == "wrong_answer"]
    decided = [i for i in audit["items"] if i["second"] is not None]
    return {
        "answers": len(stored),
        "true": {
            "accepted": _share([not truth[c] for c in accepted]),
            "wrong_answer": _share([truth[c] for c in rejected]),
        },
        "counts": {"accepted": len(accepted), "wrong_answer": len(rejected)},
        "audit": audit["estimates"],
        "agree": (sum(i["second"] == truth[i["candidate_id"]] for i in decided), len(decided), len(audit["items"])),
        "cascade": cascade,
    }


def _cascade(stored: list[tuple], truth: dict[str, bool]) -> dict:
    """What `verify.cascade: judge` would send the judge on this store (filters/cascade.py, on each stored verdict),
    and how that compares with the labels: verdicts sent that the rule got wrong (a right judge fixes them), and the
    rule's errors it would not send."""
    from filters.base import Candidate, Verdict
    from filters.cascade import disputed

    rows = [r for r in stored if r[3] or r[4] in ("wrong_answer", "no_answer")]
    sent = errors = fixed = 0
    for cid, _, _, ok, reason, text, ref in rows:
        asked = disputed(Candidate(text, "math", json.loads(ref), think=False), Verdict(ok, reason), ()) is not None
        wrong = ok != truth[cid]
        sent, errors, fixed = sent + asked, errors + wrong, fixed + (asked and wrong)
    return {"verdicts": len(rows), "sent": sent, "errors": errors, "fixed": fixed}


def _share(flags: list[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _factory(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "factory.cli", *args], cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"factory {args[0]} failed:\n{res.stderr[-3000:]}")
    return res.stdout


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qwen-math", help="Qwen2.5-Math's math_cot_100.jsonl (graded MATH answers)")
    ap.add_argument("--gsm8k", help="grade-school-math's example_model_solutions.jsonl (labelled GSM8K solutions)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems of each file")
    ap.add_argument("--size", type=int, default=200, help="the audit's sample per stratum")
    args = ap.parse_args()
    given = (("MATH, Qwen2.5-Math-7B", qwen_math, args.qwen_math), ("GSM8K, GPT-3", gsm8k, args.gsm8k))
    sets = [(name, read(path, args.limit)) for name, read, path in given if path]
    if not sets:
        ap.error("give --qwen-math, --gsm8k or both")
    rows, inside, cascades = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, problems in sets:
            for verifier, filters in VERIFIERS.items():
                m = measure(problems, filters, args.size, Path(tmp) / f"{len(rows)}")
                cells = [name, verifier, m["answers"]]
                for group in ("accepted", "wrong_answer"):
                    e, t = m["audit"][group], m["true"][group]
                    ok = t is not None and e["rate"] is not None and e["low"] - 1e-9 <= t <= e["high"] + 1e-9
                    inside.append(ok or t is None)
                    est = "-" if e["rate"] is None else f"{_pct(e['rate'])} ({_pct(e['low'])}-{_pct(e['high'])})"
                    est += "" if e["worst"] is None else f", at most {_pct(e['worst'])}"
                    cells += [m["counts"][group], _pct(t), est, "yes" if ok else "-" if t is None else "NO"]
                agree, decided, drawn = m["agree"]
                cells.append(f"{agree}/{decided} ({drawn - decided} undecided)")
                rows.append(cells)
                if c := m["cascade"]:
                    share = f"{c['sent']} ({_pct(c['sent'] / max(c['verdicts'], 1))})"
                    cascades.append([name, c["verdicts"], share, c["fixed"], c["errors"], c["errors"] - c["fixed"]])
    head = ["set", "verifier", "answers", "accepts", "true FP", "audit FP (95%), all undecided FP", "FP inside"]
    head += ["wrong_answer", "true FN", "audit FN (95%), all undecided FN", "FN inside", "second opinion = label"]
    print(table(head, rows))
    print("\nThe judge cascade (verify.cascade: judge) on the real verifier's verdicts: what it would send the judge\n")
    head = ["set", "verdicts (accepts, wrong_answer, no_answer)", "sent to the judge", "of them the rule got wrong"]
    print(table(head + ["rule errors (labels)", "rule errors not sent"], cascades))
    sys.exit(0 if all(inside) else 1)


if __name__ == "__main__":
    main()
