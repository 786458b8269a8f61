"""benchmarks/math_language.py on a few made-up rows in the shape of each file: the table's counts and the listing."""

from __future__ import annotations

import json

from conftest import number, run_benchmark, tables

ENGLISH = (
    "We add the two fractions over a common denominator: $\\frac{1}{3} + \\frac{1}{6} = \\frac{2}{6} + \\frac{1}{6}$. "
    "The sum has numerator three and denominator six, and reducing it gives one half, so the answer is "
    "$\\boxed{\\frac{1}{2}}$."
)
SETTING = "".join(f"Setting $t = {k},$ we get\n\\[h({k}) = {k + 1}.\\]" for k in range(1, 9)) + "So $h(8) = 9.$"
MIXED = ENGLISH.replace("The sum has", "所以我们把分子和分母分别相加然后约分。 The sum has")
PI = ENGLISH + " The circle's area, π r², does not come into it."
QWEN = [
    {"idx": 0, "solution": ENGLISH, "code": [ENGLISH, MIXED, PI]},
    {"idx": 1, "solution": SETTING, "code": json.dumps([SETTING])},
]
MATH500 = [
    {"unique_id": "test/algebra/1.json", "solution": SETTING},
    {"unique_id": "test/algebra/2.json", "solution": ENGLISH},
]


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_counts_and_the_listing(tmp_path):
    args = ["--qwen-math", write(tmp_path / "q.jsonl", QWEN), "--math500", write(tmp_path / "m.jsonl", MATH500)]
    summary, listed = tables(run_benchmark("math_language.py", *args))
    head, rows = summary[0], {r[0]: dict(zip(summary[0], r, strict=True)) for r in summary[1:]}
    assert head[:4] == ["source", "texts", "pure ASCII", "ASCII dropped (false)"]
    cols = ["texts", "pure ASCII", "ASCII dropped (false)", "with CJK/Hangul", "CJK/Hangul dropped", "other non-ASCII"]
    counts = {name: [number(row[c]) for c in cols] for name, row in rows.items()}
    assert counts == {
        "MATH references (Qwen file)": [2, 2, 0, 0, 0, 0],
        "Qwen2.5-Math-7B-Instruct": [4, 2, 0, 1, 1, 1],
        "MATH-500 references": [2, 2, 0, 0, 0, 0],
    }
    assert {r["goal"] for r in rows.values()} == {"met"}
    assert [r[1:4] for r in listed[1:]] == [["0 answer 1", "cjk", "dropped"]] and listed[1][5].startswith("所以")


def test_an_english_text_dropped_misses_the_goal(tmp_path):
    french = "Nous additionnons les deux fractions, puis nous simplifions le résultat pour obtenir une moitié. " * 3
    rows = [{"idx": 0, "solution": ENGLISH, "code": [ENGLISH + "\n\n" + french.replace("é", "e")]}]
    out = run_benchmark("math_language.py", "--qwen-math", write(tmp_path / "q.jsonl", rows), codes=(1,))
    summary = tables(out)[0]
    model = dict(zip(summary[0], next(r for r in summary if r[0] == "Qwen2.5-Math-7B-Instruct"), strict=True))
    assert number(model["ASCII dropped (false)"]) == 1 and model["goal"] == "MISSED"
