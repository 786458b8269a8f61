"""Adaptive rejection sampling against fixed-N sampling, on the same prompts, engine and budget cap.

Fixed-N draws N = max_samples samples for every prompt at once; adaptive draws rounds of `round_size` until
`accept_per_prompt` pass or max_samples are spent. Both keep at most accept_per_prompt answers per prompt. The
measure is accepted examples per million generated tokens, with the prompts that got no accepted answer.

    .venv/bin/python benchmarks/sampling_efficiency.py [--prompts 96] [--round-sizes 2 4] [--max-samples 8]
"""

from __future__ import annotations

import argparse

from common import build_engine, factory_run, load, table

from factory.workers import VerifyPool


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--round-sizes", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--max-samples", type=int, default=8)
    args = ap.parse_args()
    m = args.max_samples
    base = [f"rejection.max_samples={m}", "rejection.accept_per_prompt=1", "source.size=200"]
    fixed, prompts = load([*base, f"rejection.round_size={m}"], args.prompts)
    arms = [(f"fixed N={m}", fixed)]
    for k in args.round_sizes:
        arms.append((f"adaptive rounds of {k}, cap {m}", load([*base, f"rejection.round_size={k}"], args.prompts)[0]))
    engine = build_engine(fixed)
    rows = []
    with VerifyPool(fixed.verify.workers, fixed.verify.timeout) as pool:
        pool.wait_ready()
        for name, r in arms:
            t = factory_run(r, prompts, engine, pool)
            per_m = t.examples / t.new_tokens * 1e6
            base_m = per_m if not rows else rows[0][-2]
            solved = t.prompts_solved
            rows.append(
                [name, t.new_candidates, t.new_tokens, t.examples, solved, len(prompts) - solved, per_m, per_m / base_m]
            )
    engine.close()
    print(f"{len(prompts)} prompts, accept_per_prompt 1, {fixed.model} on {engine.version}")
    head = [
        "arm",
        "samples",
        "tokens",
        "accepted",
        "prompts solved",
        "unsolved",
        "accepted / M tokens",
        "ratio to fixed",
    ]
    print(table(head, rows))


if __name__ == "__main__":
    main()
