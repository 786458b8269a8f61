"""Adaptive rejection sampling against fixed-N sampling, on the same prompts, engine and budget cap.

Fixed-N draws N = max_samples samples for every prompt at once; adaptive draws rounds of `round_size` until
`accept_per_prompt` pass or max_samples are spent. Both keep at most accept_per_prompt answers per prompt. The
measure is accepted examples per million generated tokens, with the prompts that got no accepted answer.

    .venv/bin/python benchmarks/sampling_efficiency.py [--prompts 96] [--round-size 4] [--max-samples 8]
"""

from __future__ import annotations

import argparse

from common import build_engine, factory_run, load, table

from factory.workers import VerifyPool


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--round-size", type=int, default=4)
    ap.add_argument("--max-samples", type=int, default=8)
    args = ap.parse_args()
    m = args.max_samples
    base = [f"rejection.max_samples={m}", "rejection.accept_per_prompt=1", "source.size=200"]
    fixed, prompts = load([*base, f"rejection.round_size={m}"], args.prompts)
    adaptive, _ = load([*base, f"rejection.round_size={args.round_size}"], args.prompts)
    engine = build_engine(fixed)
    rows, per_m = [], {}
    with VerifyPool(fixed.verify.workers, fixed.verify.timeout) as pool:
        pool.wait_ready()
        for name, r in ((f"fixed N={m}", fixed), (f"adaptive rounds of {args.round_size}, cap {m}", adaptive)):
            t = factory_run(r, prompts, engine, pool)
            per_m[name] = t.examples / t.new_tokens * 1e6
            rows.append(
                [name, t.new_candidates, t.new_tokens, t.examples, len(prompts) - t.prompts_solved, per_m[name]]
            )
    engine.close()
    names = list(per_m)
    print(f"{len(prompts)} prompts, accept_per_prompt 1, {fixed.model} on {engine.version}")
    print(table(["arm", "samples", "tokens", "accepted", "prompts unsolved", "accepted / M tokens"], rows))
    print(f"ratio adaptive / fixed: {per_m[names[1]] / per_m[names[0]]:.2f}x")


if __name__ == "__main__":
    main()
