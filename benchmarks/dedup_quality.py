"""Precision and recall of MinHash dedup on the labelled near-duplicate set (benchmarks/near_duplicates.py).

Each pair runs through the real filter: a fresh `Deduper` keeps text a, then is asked about text b. A pair counts
as flagged when b is a `near_duplicate`. Beside it, the exact Jaccard of the same n-gram sets (no MinHash, no LSH)
at the same threshold shows what the sketch loses. Prints markdown tables: the grid over n-gram sizes and
thresholds for prompt-length and response-length texts, what each kind of pair does at the chosen n-gram size, the
effect of `match_numbers` on prompts, and of the number of permutations.

    .venv/bin/python benchmarks/dedup_quality.py [--ngrams 2 3 5 7] [--thresholds 0.5 0.6 0.7 0.8 0.9] [--ngram 3]
        [--every N]
"""

from __future__ import annotations

import argparse

from common import table
from near_duplicates import make, streams

from filters.dedup import DedupConfig, Deduper, shingles, words


def flagged(cfg: DedupConfig, pairs: list[dict]) -> list[bool]:
    out = []
    for p in pairs:
        d = Deduper(cfg)
        d.check("a", p["a"])
        out.append(not d.check("b", p["b"], insert=False).accepted)
    return out


def exact(cfg: DedupConfig, pairs: list[dict]) -> list[bool]:
    out = []
    for p in pairs:
        a, b = (set(shingles(t, cfg.ngram, cfg.numbers).tolist()) for t in (p["a"], p["b"]))
        out.append(len(a & b) / max(1, len(a | b)) >= cfg.threshold)
    return out


def prf(pred: list[bool], pairs: list[dict]) -> tuple[float, float, float]:
    tp = sum(f and p["duplicate"] for f, p in zip(pred, pairs, strict=True))
    fp = sum(f and not p["duplicate"] for f, p in zip(pred, pairs, strict=True))
    pos = sum(p["duplicate"] for p in pairs)
    precision, recall = tp / max(1, tp + fp), tp / max(1, pos)
    return precision, recall, 2 * precision * recall / max(1e-9, precision + recall)


def grid(pairs, field, ngrams, thresholds, **kw) -> str:
    rows = []
    for n in ngrams:
        for t in thresholds:
            cfg = DedupConfig(field=field, ngram=n, threshold=t, **kw)
            p, r, f = prf(flagged(cfg, pairs), pairs)
            rows.append([n, t, round(p, 3), round(r, 3), round(f, 3), round(prf(exact(cfg, pairs), pairs)[2], 3)])
    return table(["ngram", "threshold", "precision", "recall", "F1", "F1 exact Jaccard"], rows)


def by_kind(pairs, field, ngram, thresholds, **kw) -> str:
    kinds = sorted({p["kind"] for p in pairs}, key=lambda k: (not _dup(pairs, k), k))
    rates = {t: flagged(DedupConfig(field=field, ngram=ngram, threshold=t, **kw), pairs) for t in thresholds}
    rows = []
    for k in kinds:
        idx = [i for i, p in enumerate(pairs) if p["kind"] == k]
        row = [k, "yes" if _dup(pairs, k) else "no", len(idx)]
        rows.append(row + [round(sum(rates[t][i] for i in idx) / len(idx), 2) for t in thresholds])
    return table(["kind", "duplicate", "pairs"] + [f"flagged @{t}" for t in thresholds], rows)


def false_removals(cfg: DedupConfig, texts: list[str]) -> float:
    """The fraction of distinct texts a Deduper removes (exact repeats, after normalising, are not counted)."""
    d, seen, removed, distinct = Deduper(cfg), set(), 0, 0
    for t, v in zip(texts, d.check_many((str(i), t) for i, t in enumerate(texts)), strict=True):
        norm = " ".join(words(t))
        if norm not in seen:
            distinct += 1
            removed += not v.accepted
        seen.add(norm)
    return removed / max(1, distinct)


def stream_table(groups: dict[str, list[str]], ngrams, thresholds) -> str:
    rows = []
    for name, texts in groups.items():
        field = "response" if name.startswith("answers") else "prompt"
        row = [name, len(texts)]
        for n in ngrams:
            row += [round(false_removals(DedupConfig(field=field, ngram=n, threshold=t), texts), 3) for t in thresholds]
        rows.append(row)
    return table(["stream", "texts"] + [f"n{n} @{t}" for n in ngrams for t in thresholds], rows)


def _dup(pairs, kind) -> bool:
    return next(p["duplicate"] for p in pairs if p["kind"] == kind)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ngrams", type=int, nargs="+", default=[2, 3, 5, 7])
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    ap.add_argument("--ngram", type=int, default=DedupConfig.ngram, help="the n-gram size of the detail tables")
    ap.add_argument("--threshold", type=float, default=DedupConfig.threshold, help="for the permutations table")
    ap.add_argument("--stream-ngrams", type=int, nargs="+", default=[1, 2, 3, 5])
    ap.add_argument("--stream-thresholds", type=float, nargs="+", default=[0.5, 0.7])
    ap.add_argument("--every", type=int, default=1, help="every Nth pair and stream text only (a quick run)")
    args = ap.parse_args()
    pairs = make()[:: args.every]
    ts = args.thresholds
    for field in ("prompt", "response"):
        sub = [p for p in pairs if p["length"] == field]
        dup = sum(p["duplicate"] for p in sub)
        print(f"\n### {field}-length texts: {len(sub)} pairs ({dup} duplicates), match_numbers {field == 'prompt'}\n")
        print(grid(sub, field, args.ngrams, ts))
        print(f"\nFlagged fraction by kind, ngram {args.ngram}:\n")
        print(by_kind(sub, field, args.ngram, ts))
    prompts = [p for p in pairs if p["length"] == "prompt"]
    print(f"\n### prompt-length texts without match_numbers, ngram {args.ngram}\n")
    print(by_kind(prompts, "prompt", args.ngram, ts, match_numbers=False))
    print("\n### false removals in streams of distinct problems (n: ngram, @: threshold)\n")
    groups = {name: texts[:: args.every] for name, texts in streams().items()}
    print(stream_table(groups, args.stream_ngrams, args.stream_thresholds))
    print(f"\n### permutations, ngram {args.ngram}, threshold {args.threshold}\n")
    rows = []
    for field in ("prompt", "response"):
        sub = [p for p in pairs if p["length"] == field]
        for perm in (64, 128, 256):
            cfg = DedupConfig(field=field, ngram=args.ngram, threshold=args.threshold, num_perm=perm)
            rows.append([field, perm, *(round(x, 3) for x in prf(flagged(cfg, sub), sub))])
    print(table(["text", "num_perm", "precision", "recall", "F1"], rows))


if __name__ == "__main__":
    main()
