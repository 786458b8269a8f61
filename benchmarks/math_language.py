"""Does the language filter leave English math text alone? False `language_mixing` drops on MATH solutions.

Runs `filters.language.language` (the recipe default: target en, threshold 0.95, langdetect-rs) over each text as a
completion without think tags, measured whole. A pure-ASCII text here is an English solution, so any drop of one is
false; a text with Han, kana or Hangul in it is English with fragments of Chinese, Japanese or Korean, which the
filter must still drop. The goal: no pure-ASCII text dropped and every CJK or Hangul one dropped; the script exits 1
when either is missed, and lists every dropped text and every CJK or Hangul one.

    .venv/bin/python benchmarks/math_language.py --qwen-math FILE --math500 FILE [--limit N]

- `--qwen-math`: QwenLM/Qwen2.5-Math at a45202bd16f1ec06f433442dc1152d0074773465,
  evaluation/data/eval_rm_maj_example/math_cot_100.jsonl (MIT): 100 MATH problems with their reference solutions
  (`solution`) and 8 solutions each by Qwen2.5-Math-7B-Instruct (`code`).
- `--math500`: MATH-500's test.jsonl (`solution`, `unique_id`), as the project keeps it in data/benchmarks/files/.

Before MATH's `[asy]` figures were read as code and a part needed `min_detect_words` distinct words to be judged
(filters/language.py), 25 pure-ASCII texts were dropped, all by langdetect on Asymptote or on the few words LaTeX
leaves: 3 Qwen solutions (problem 97, consistency 0.61-0.90), the reference of problem 92 (0.64) and 21 MATH-500
references (0.63-0.90). The 3 with CJK and Hangul fragments were dropped then as now.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import as_list, read_jsonl, table  # noqa: E402

from filters.base import Candidate  # noqa: E402
from filters.language import language  # noqa: E402

# Han, kana and Hangul (the filter's own ranges would do; these are the blocks a model's fragments come from)
CJK = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def qwen_texts(path: str, limit: int | None) -> dict[str, list[tuple[str, str]]]:
    """(id, text) of the reference solutions and of the model's, by source."""
    rows = read_jsonl(path, limit)
    refs = [(f"{r['idx']} reference", r["solution"]) for r in rows]
    model = [(f"{r['idx']} answer {i}", t) for r in rows for i, t in enumerate(as_list(r["code"]))]
    return {"MATH references (Qwen file)": refs, "Qwen2.5-Math-7B-Instruct": model}


def math500_texts(path: str, limit: int | None) -> dict[str, list[tuple[str, str]]]:
    rows = read_jsonl(path, limit)
    return {"MATH-500 references": [(r.get("unique_id", str(n)), r["solution"]) for n, r in enumerate(rows)]}


def judge(texts: list[tuple[str, str]]) -> list[dict]:
    out = []
    for id_, text in texts:
        v = language(Candidate(text, think=False))
        cjk = CJK.findall(text)
        kind = "ascii" if text.isascii() else "cjk" if cjk else "other"
        dropped, score = v.reason == "language_mixing", v.scores["language_consistency"]
        out.append(dict(id=id_, kind=kind, dropped=dropped, score=score, sample="".join(cjk[:12])))
    return out


def summary(source: str, judged: list[dict]) -> tuple[list, bool]:
    n = {k: [j for j in judged if j["kind"] == k] for k in ("ascii", "cjk", "other")}
    drops = {k: sum(j["dropped"] for j in v) for k, v in n.items()}
    met = drops["ascii"] == 0 and drops["cjk"] == len(n["cjk"])
    row = [source, len(judged), len(n["ascii"]), drops["ascii"], len(n["cjk"]), drops["cjk"], len(n["other"]),
           drops["other"], "met" if met else "MISSED"]  # fmt: skip
    return row, met


HEADER = ["source", "texts", "pure ASCII", "ASCII dropped (false)", "with CJK/Hangul", "CJK/Hangul dropped",
          "other non-ASCII", "other dropped", "goal"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qwen-math", help="Qwen2.5-Math's math_cot_100.jsonl")
    ap.add_argument("--math500", help="MATH-500's test.jsonl")
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems of each file")
    args = ap.parse_args()
    if not (args.qwen_math or args.math500):
        ap.error("give --qwen-math FILE, --math500 FILE or both")
    sources = {}
    if args.qwen_math:
        sources |= qwen_texts(args.qwen_math, args.limit)
    if args.math500:
        sources |= math500_texts(args.math500, args.limit)
    judged = {name: judge(texts) for name, texts in sources.items()}
    rows, met = [], True
    for name, js in judged.items():
        row, ok = summary(name, js)
        rows.append(row)
        met &= ok
    print("The language filter (target en, threshold 0.95) on MATH solutions, drop = language_mixing\n")
    print(table(HEADER, rows))
    print("\nGoal: no pure-ASCII text dropped, every text with CJK or Hangul dropped.")
    listed = [[name, j["id"], j["kind"], "dropped" if j["dropped"] else "kept", f"{j['score']:.4f}", j["sample"] or "-"]
              for name, js in judged.items() for j in js if j["dropped"] or j["kind"] == "cjk"]  # fmt: skip
    print(f"\n{len(listed)} texts dropped or holding CJK/Hangul\n")
    cols = ["source", "id", "text", "verdict", "consistency", "CJK/Hangul in it"]
    print(table(cols, listed or [["none"] * len(cols)]))
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
