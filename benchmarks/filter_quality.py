"""How well and how fast do the readability and language filters judge? Labelled sets and 4k-token traces, one run.

Quality: precision and recall (drop = positive) on data/labelled/readability_cases.jsonl and language_cases.jsonl
(the development sets), then on data/labelled/heldout/ (written apart from the filters, never tuned on), per
category, with a baseline in the same run: the format check alone for readability, script counts without langdetect
for language. Speed: candidates per second of CPU time, one process, on synthetic ~4k-token traces built
from the labelled sets' own sentences (tokens counted with the bundled SmolLM2 tokenizer); the language filter's
langdetect cache is cleared before every candidate, so no trace profits from another.

    .venv/bin/python benchmarks/filter_quality.py [--traces 40] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path

from common import table

from filters import language as lang_mod
from filters.answer import split_think
from filters.base import Candidate
from filters.format import check_format
from filters.language import LanguageConfig, language
from filters.readability import readability

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT / "data" / "labelled"
TOKENIZER = ROOT / "data" / "models" / "smollm2-135m-instruct" / "tokenizer.json"


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (LABELLED / name).read_text(encoding="utf-8").splitlines()]


def candidate(c: dict) -> Candidate:
    return Candidate(c["text"], c.get("task", "math"), {}, c.get("finish_reason", "stop"), c.get("think", True))


def ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "-"


def quality(cases: list[dict], judge, reasons: bool) -> list[list]:
    """One row per category and one for all: cases, drops labelled, dropped, precision, recall (, reason right)."""
    groups: dict[str, list] = defaultdict(list)
    for c in cases:
        v = judge(c)
        groups[c["category"]].append((c["label"] == "drop", not v.accepted, v.reason == c["reason"], c["hard"]))
    groups["**all**"] = [x for rows in list(groups.values()) for x in rows]
    groups["**hard cases**"] = [x for x in groups["**all**"] if x[3]]
    rows = []
    for name, xs in groups.items():
        tp = sum(w and d for w, d, _, _ in xs)
        fp = sum(d and not w for w, d, _, _ in xs)
        fn = sum(w and not d for w, d, _, _ in xs)
        row = [name, len(xs), sum(w for w, *_ in xs), tp + fp, ratio(tp, tp + fp), ratio(tp, tp + fn)]
        if reasons:
            row.append(ratio(sum(w and d and r for w, d, r, _ in xs), tp))
        rows.append(row)
    return rows


def summary_row(name: str, cases: list[dict], judge) -> list:
    *_, p, r = quality(cases, judge, reasons=False)[-2]
    return [name, p, r]


def paragraphs_of(cases: list[dict], target: str) -> list[str]:
    out = []
    for c in cases:
        if c["label"] == "keep" and c.get("target", "en") == target and "```" not in c["text"]:
            reasoning = split_think(c["text"])[0] or ""
            out += [p.strip() for p in reasoning.split("\n\n") if len(p.strip()) > 20]
    return sorted(set(out))


def synthetic(paragraphs: list[str], count: int, tokens: int, count_tokens, seed: int = 0) -> list[Candidate]:
    """`count` traces of about `tokens` tokens: distinct paragraphs while they last, then fresh mixes of two."""
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        pool = paragraphs[:]
        rnd.shuffle(pool)
        body, n = [], 0
        while n < tokens:
            para = pool.pop() if pool else " ".join(rnd.sample(paragraphs, 2))
            body.append(para)
            n += count_tokens(para)
        out.append(Candidate("<think>\n" + "\n\n".join(body) + "\n</think>\n\nThe answer is \\(\\boxed{5}\\)."))
    return out


def token_counter():
    try:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(TOKENIZER))
        return lambda text: len(tok.encode(text, add_special_tokens=False).ids), "SmolLM2 tokens"
    except Exception:  # no tokenizers package or no bundled model: about 4 characters a token
        return lambda text: len(text) // 4, "characters / 4"


def rate(traces: list[Candidate], judge, seconds: float) -> tuple[float, float]:
    """(candidates per CPU second, accepted share), cycling through the traces for at least `seconds`."""
    done = accepted = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        for c in traces:
            lang_mod._probabilities.cache_clear()
            accepted += judge(c).accepted
            done += 1
    return done / (time.process_time() - start), accepted / done


def report(title: str, read_cases: list[dict], lang_cases: list[dict]) -> None:
    """Precision and recall of both filters on one pair of labelled sets, with their baselines."""
    header = ["category", "cases", "drop (labelled)", "dropped", "precision", "recall"]
    print(f"# On {title}\n")
    print(f"## Readability ({len(read_cases)} labelled cases, drop = positive)\n")
    print(table(header + ["reason right"], quality(read_cases, lambda c: readability(candidate(c)), True)))
    print("\nBaseline in the same run:\n")
    print(table(["filter", "precision", "recall"], [
        summary_row("format check only (filters/format.py)", read_cases, lambda c: check_format(candidate(c))),
        summary_row("readability", read_cases, lambda c: readability(candidate(c))),
    ]))  # fmt: skip

    def lang(cfg):
        return lambda c: language(Candidate(c["text"]), cfg, c["target"])

    print(f"\n## Language mixing ({len(lang_cases)} labelled cases, drop = positive, threshold 0.95)\n")
    print(table(header, quality(lang_cases, lang(LanguageConfig()), False)))
    print("\nBaselines in the same run:\n")
    print(table(["detector", "precision", "recall"], [
        summary_row("script only (no langdetect)", lang_cases, lang(LanguageConfig(detector="script"))),
        summary_row("langdetect (pure Python)", lang_cases, lang(LanguageConfig(detector="langdetect"))),
        summary_row("langdetect-rs (default)", lang_cases, lang(LanguageConfig())),
    ]))  # fmt: skip
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=40, help="synthetic traces per language")
    ap.add_argument("--tokens", type=int, default=4096, help="tokens per synthetic trace")
    ap.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per speed measurement")
    args = ap.parse_args()

    read_cases, lang_cases = load("readability_cases.jsonl"), load("language_cases.jsonl")
    report("the development sets (the filters were tuned on them)", read_cases, lang_cases)
    if (LABELLED / "heldout").is_dir():
        report(
            "the held-out sets (written apart from the filters, never tuned on)",
            load("heldout/readability_cases.jsonl"),
            load("heldout/language_cases.jsonl"),
        )

    count_tokens, unit = token_counter()
    en = synthetic(paragraphs_of(read_cases + lang_cases, "en"), args.traces, args.tokens, count_tokens)
    zh = synthetic(paragraphs_of(lang_cases, "zh"), args.traces, args.tokens, count_tokens)
    fr = synthetic(paragraphs_of(lang_cases, "fr"), args.traces, args.tokens, count_tokens)
    size = sum(count_tokens(c.text) for c in en) / len(en)
    chars = sum(len(c.text) for c in en) / len(en)
    arms = [
        ("format (baseline)", en, lambda c: check_format(c)),
        ("readability", en, lambda c: readability(c)),
        ("language en, langdetect-rs", en, lambda c: language(c, target="en")),
        ("language en, langdetect (pure Python)", en[:5], lambda c: language(c, LanguageConfig(detector="langdetect"))),
        ("language en, script only", en, lambda c: language(c, LanguageConfig(detector="script"))),
        ("language fr, langdetect-rs", fr, lambda c: language(c, target="fr")),
        ("language zh (scripts, no langdetect needed)", zh, lambda c: language(c, target="zh")),
        ("format + readability + language (en)", en, lambda c: [check_format(c), readability(c), language(c)][-1]),
    ]
    rows = []
    for name, traces, judge in arms:
        per_s, kept = rate(traces, judge, args.seconds)
        rows.append([name, per_s, 1000 / per_s, kept])
    print(f"\n## Speed: synthetic traces of ~{size:,.0f} {unit} (~{chars:,.0f} characters), one process, CPU time\n")
    print(table(["filter", "candidates/s", "ms/candidate", "accepted share"], rows))
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{os.cpu_count()} CPUs, load average {load_avg:.1f} while measuring.")


if __name__ == "__main__":
    main()
