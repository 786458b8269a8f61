"""Adaptive rejection sampling against fixed-N sampling and against the oracle, on the same prompts and engine.

Fixed-N draws N = max_samples samples for every prompt at once; adaptive draws rounds of `round_size` until
`accept_per_prompt` pass or max_samples are spent (the recipe's default round size is one arm, and again without
`fill_engine`, the growth of rounds into empty engine places at the end of the job). All keep at most one answer
per prompt. The oracle is computed on the fixed-N arm's own samples: each prompt stopped at its first
accepted sample, no sample wasted. The measure is accepted examples per million generated tokens, as a share of
the oracle's; and, since small rounds must not slow the engine, tokens/s as a share of the ceiling (raw vLLM with
every fixed-N request in one call) in the same run.

    .venv/bin/python benchmarks/sampling_efficiency.py [--prompts 160] [--round-sizes 2 4] [--max-samples 8]

Each arm draws its own samples, so the share of the oracle moves with the luck of the draw: at 96 prompts the same
code gave 0.81 to 0.95, at 141 and more it moves by a few hundredths. The demo's source has 237 distinct problems.
"""

from __future__ import annotations

import argparse
from itertools import groupby

from common import build_engine, factory_run, load, table, timed
from generate_overhead import raw

from factory.recipe import RejectionConfig
from factory.workers import VerifyPool


def oracle(samples: list[tuple]) -> tuple[int, int]:
    """(accepted, tokens) had each prompt stopped at its first accepted sample."""
    accepted = tokens = 0
    for _, rows in groupby(sorted(samples), key=lambda s: s[0]):
        for _, _, n_tokens, ok in rows:
            tokens += n_tokens
            if ok:
                accepted += 1
                break
    return accepted, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=160)
    ap.add_argument("--round-sizes", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--max-samples", type=int, default=8)
    ap.add_argument("--max-num-seqs", type=int, default=32)
    args = ap.parse_args()
    m, default = args.max_samples, RejectionConfig().round_size
    base = [f"rejection.max_samples={m}", "rejection.accept_per_prompt=1", "source.size=1000"]
    base += [f"engine.max_num_seqs={args.max_num_seqs}", "rejection.batch_prompts=0"]
    fixed, prompts = load([*base, f"rejection.round_size={m}"], args.prompts)
    arms = [(f"fixed N={m}", fixed), (f"default: rounds of {default}", load(base, args.prompts)[0])]
    unfilled = load([*base, "rejection.fill_engine=false"], args.prompts)[0]
    arms.append((f"rounds of {default}, fill_engine false", unfilled))
    for k in [k for k in args.round_sizes if k != default]:
        arms.append((f"adaptive rounds of {k}", load([*base, f"rejection.round_size={k}"], args.prompts)[0]))
    engine = build_engine(fixed)
    rows, samples = [], []
    with VerifyPool(fixed.verify.workers, fixed.verify.timeout) as pool:
        pool.wait_ready()
        raw(engine, fixed, prompts[:4], 1, 4)  # warm-up
        (tokens, _), secs = timed(lambda: raw(engine, fixed, prompts, m, len(prompts)))
        ceiling = tokens / secs
        for name, r in arms:
            t, secs = timed(lambda r=r: factory_run(r, prompts, engine, pool, samples if r is fixed else None))
            rows.append([name, t.new_candidates, t.new_tokens, t.examples, t.examples / t.new_tokens * 1e6, secs])
    engine.close()
    accepted, tokens = oracle(samples)
    best = accepted / tokens * 1e6
    out = [["oracle (fixed N's samples, stopped at the first accepted)", "", tokens, accepted, best, 1.0, "", ""]]
    for name, n, tok, ex, per_m, secs in rows:
        out.append([name, n, tok, ex, per_m, per_m / best, tok / secs, tok / secs / ceiling])
    print(f"{len(prompts)} prompts, accept_per_prompt 1, max_samples {m}, {fixed.model} on {engine.version},")
    print(f"engine max_num_seqs {args.max_num_seqs}; ceiling {ceiling:,.0f} tokens/s (raw vLLM, one call)")
    head = ["arm", "samples", "tokens", "accepted", "accepted / M tokens", "share of oracle", "tokens/s", "of ceiling"]
    print(table(head, out))


if __name__ == "__main__":
    main()
