"""Recall and false positives of the default decontamination (the registry's committed n-gram index).

Recall: each problem of a benchmark (`--leaks`, default MATH-500) rewritten as a leak would be, and each reference
solution put in a response under no benchmark prompt, must be caught:

- whitespace: runs of spaces and line breaks changed;
- latex: the notation spelled otherwise (\\( \\) for $, \\dfrac for \\frac, \\times for \\cdot, ^{2} for ^2,
  \\left/\\right dropped), numbers kept;
- sentence: an instruction added before and after;
- all three at once;
- solution: "Let me work through this." and the reference solution with its LaTeX respelled (caught by the
  solution n-grams, datatrove's method).

False positives: problems of other sets (`--clean NAME:SPLIT`, default the rest of MATH's test split, same style and
other problems, and GSM8K's training split) checked against the registry without their own set, prompts and
solutions alike, and GSM8K's training split against its own test split; every hit is listed, since some are the
same problem published twice or with other numbers.

    .venv/bin/python benchmarks/decontam_registry.py [--leaks math500] [--clean math:test --clean gsm8k:train]
        [--limit N]
"""

from __future__ import annotations

import argparse
import re

from common import table

from factory import benchmarks
from filters.decontam import DecontamConfig, Decontaminator, registry_index
from filters.ngram_index import words

INTRO, OUTRO = "Solve the following problem carefully.\n\n", "\n\nGive the answer in simplest form."


def respell(text: str) -> str:
    text = re.sub(r"\$([^$]+)\$", r"\\(\1\\)", text)
    text = text.replace("\\frac", "\\dfrac").replace("\\cdot", "\\times").replace("\\left", "").replace("\\right", "")
    return re.sub(r"\^(\w)", r"^{\1}", text)


def rewrites(problem: str) -> dict[str, str]:
    spaced = re.sub(r"\s+", lambda m: "  \n " if "\n" in m.group() else "   ", problem)
    return {"whitespace": spaced, "latex": respell(problem), "sentence": INTRO + problem + OUTRO,
            "all three": INTRO + respell(spaced) + OUTRO}  # fmt: skip


def recall(d: Decontaminator, items: list[benchmarks.Item]) -> list[list]:
    rows = []
    kinds = list(rewrites("x"))
    for kind in kinds:
        hits = sum(not d(rewrites(i.problem)[kind]).accepted for i in items)
        rows.append([kind, len(items), hits, f"{hits / max(1, len(items)):.1%}"])
    sols = [i for i in items if i.solution and len(words(i.solution)) >= d.cfg.solution_ngram]
    hits = sum(not d.response("Let me work through this. " + respell(i.solution)).accepted for i in sols)
    rows.append(["solution in a response", len(sols), hits, f"{hits / max(1, len(sols)):.1%}"])
    return rows


def clean(name: str, split: str, leaks: set[str], limit: int | None, own: bool = False) -> tuple[list, list]:
    """(the table's rows, the hits) for a set that must pass, checked against the registry less its own set, or
    (`own`) against its own test split alone (a training split beside its test split)."""
    cfg = DecontamConfig()
    problems, solutions = registry_index(cfg.ngram, cfg.min_words, cfg.solution_ngram)
    others = {name} if own else {b.name for b in benchmarks.test_sets()} - {name}
    d = Decontaminator(DecontamConfig(sources=[]))
    d.problems, d.solutions = problems.only(others), solutions.only(others)
    items = [i for i in benchmarks.items(name, split) if " ".join(words(i.problem)) not in leaks][:limit]
    label = f"{name}:{split}" + (f" vs {name}:test" if own else "")
    hits = []
    for i in items:
        for field, v in (("problem", d(i.problem)), ("solution", d.response(i.solution or ""))):
            if not v.accepted:
                hits.append([label, i.id, field, v.scores["benchmark"], v.scores["item"], v.scores["ngram"]])
    n_p = sum(h[2] == "problem" for h in hits)
    n_s = sum(h[2] == "solution" for h in hits)
    row = [label, len(items), n_p, f"{n_p / max(1, len(items)):.2%}", n_s, f"{n_s / max(1, len(items)):.2%}"]
    return [row], hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leaks", default="math500", help="the registered set whose problems are rewritten as leaks")
    ap.add_argument(
        "--clean",
        action="append",
        help="NAME:SPLIT of a set that must pass (repeatable); NAME:SPLIT:own"
        " checks a training split against its own set's test split",
    )
    ap.add_argument("--limit", type=int, default=None, help="at most N problems of each set")
    args = ap.parse_args()
    d = Decontaminator()
    items = benchmarks.items(args.leaks)[: args.limit]
    print(f"## Recall: {args.leaks} ({len(items)} problems) rewritten as leaks, against the whole registry\n")
    print(table(["rewrite", "problems", "caught", "recall"], recall(d, items)))
    leaks = {" ".join(words(i.problem)) for i in benchmarks.items(args.leaks)}
    rows, hits = [], []
    for spec in args.clean or ["math:test", "gsm8k:train", "gsm8k:train:own"]:
        name, split, own = (spec.split(":") + ["test", ""])[:3]
        r, h = clean(name, split, leaks, args.limit, own == "own")
        rows += r
        hits += h
    print("\n## False positives: other problems against the registry without their own set\n")
    print(table(["set", "problems", "prompt hits", "rate", "solution hits", "rate"], rows))
    print("\n## Every hit\n")
    print(table(["set", "item", "field", "benchmark", "benchmark item", "n-gram"], hits) if hits else "none")


if __name__ == "__main__":
    main()
