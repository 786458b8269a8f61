"""Adaptive rejection sampling against fixed-N sampling and against the oracle, on the same prompts and engine.

Fixed-N draws N = max_samples samples for every prompt at once; adaptive draws rounds of `round_size` until
`accept_per_prompt` pass or max_samples are spent (the recipe's default round size is one arm, and again without
`fill_engine`, the growth of rounds into empty engine places at the end of the job). All keep at most one answer
per prompt. The oracle is computed on the fixed-N arm's own samples: each prompt stopped at its first
accepted sample, no sample wasted. The measure is accepted examples per million generated tokens, as a share of
the oracle's; and, since small rounds must not slow the engine, tokens/s as a share of the ceiling (raw vLLM with
every fixed-N request in one call) in the same run. Adaptive arms draw more of their samples from the hard
prompts, whose answers run longer, so their requests may cost the engine more a token than fixed N's: the last
row is raw vLLM on the default arm's own requests (its prompts, each with as many samples as it drew) in one
call, to tell what its requests cost from what the loop costs (here within the noise: 0.93x-1.11x the ceiling).

    .venv/bin/python benchmarks/sampling_efficiency.py [--prompts 160] [--round-sizes 2 4] [--max-samples 8]
        [--max-num-seqs 32] [--reps 1] [--max-tokens N]

Each arm draws its own samples, so the share of the oracle moves with the luck of the draw: at 96 prompts the same
code gave 0.81 to 0.95, at 141 and more it moves by a few hundredths. The demo's source has 237 distinct problems.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from itertools import groupby

from common import build_engine, factory_run, load, table, timed
from generate_overhead import raw

from factory.chat import messages
from factory.engines import chat_ids
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
    ap.add_argument("--reps", type=int, default=1, help="runs of every arm, each against its own ceiling")
    ap.add_argument("--max-tokens", type=int, help="cap the answers (a quick run; default: the demo recipe's)")
    args = ap.parse_args()
    m, default = args.max_samples, RejectionConfig().round_size
    base = [f"rejection.max_samples={m}", "rejection.accept_per_prompt=1", "source.size=1000"]
    base += [f"sampling.max_tokens={args.max_tokens}"] if args.max_tokens else []
    base += [f"engine.max_num_seqs={args.max_num_seqs}", "rejection.batch_prompts=0"]
    fixed, prompts = load([*base, f"rejection.round_size={m}"], args.prompts)
    arms = [(f"fixed N={m}", fixed), (f"default: rounds of {default}", load(base, args.prompts)[0])]
    unfilled = load([*base, "rejection.fill_engine=false"], args.prompts)[0]
    arms.append((f"rounds of {default}, fill_engine false", unfilled))
    for k in [k for k in args.round_sizes if k != default]:
        arms.append((f"adaptive rounds of {k}", load([*base, f"rejection.round_size={k}"], args.prompts)[0]))
    engine = build_engine(fixed)
    head = ["arm", "samples", "tokens", "accepted", "accepted / M tokens", "share of oracle", "tokens/s", "of ceiling"]
    runs = []
    with VerifyPool(fixed.verify.workers, fixed.verify.timeout) as pool:
        pool.wait_ready()
        raw(engine, fixed, prompts[:4], 1, 4)  # warm-up
        for i in range(args.reps):
            ceiling, out = one_run(engine, pool, fixed, arms, prompts, m)
            runs.append(out)
            print(f"{len(prompts)} prompts, accept_per_prompt 1, max_samples {m}, {fixed.model} on {engine.version},")
            print(f"engine max_num_seqs {args.max_num_seqs}; run {i + 1}/{args.reps}: ceiling {ceiling:,.0f} tokens/s")
            print(table(head, out) + "\n", flush=True)
    engine.close()
    if args.reps > 1:  # each arm's share and ratio against its own run's oracle and ceiling
        rows = []
        for j, row in enumerate(runs[0][1:], start=1):
            share, ratio = ([run[j][k] for run in runs] for k in (5, 7))
            rows.append([row[0], *(spread(share) if share[0] != "" else ("", "")), *spread(ratio)])
        print(f"median of {args.reps} runs, the range in brackets")
        print(table(["arm", "share of oracle", "(range)", "of ceiling", "(range)"], rows))


def one_run(engine, pool, fixed, arms, prompts, m) -> tuple[float, list[list]]:
    """The ceiling, then each arm, on one engine; rows of the table with the oracle on fixed N's samples first."""
    rows, samples, drawn = [], [], []
    (tokens, _), secs = timed(lambda: raw(engine, fixed, prompts, m, len(prompts)))
    ceiling = tokens / secs
    for i, (name, r) in enumerate(arms):
        keep = samples if r is fixed else drawn if i == 1 else None  # arms[1] is the default
        t, secs = timed(lambda r=r, keep=keep: factory_run(r, prompts, engine, pool, keep))
        rows.append([name, t.new_candidates, t.new_tokens, t.examples, t.examples / t.new_tokens * 1e6, secs])
    accepted, tokens = oracle(samples)
    best = accepted / tokens * 1e6
    out = [["oracle (fixed N's samples, stopped at the first accepted)", "", tokens, accepted, best, 1.0, "", ""]]
    for name, n, tok, ex, per_m, secs in rows:
        out.append([name, n, tok, ex, per_m, per_m / best, tok / secs, tok / secs / ceiling])
    per_prompt = Counter(pid for pid, *_ in drawn)
    asked = [(p, per_prompt[p.prompt_id]) for p in prompts if per_prompt[p.prompt_id]]
    (tokens, _), secs = timed(lambda: raw_requests(engine, fixed, asked))
    out.append(["raw vLLM, the default's requests in one call", sum(per_prompt.values()), tokens, "", "", "",
                tokens / secs, tokens / secs / ceiling])  # fmt: skip
    return ceiling, out


def raw_requests(engine, r, asked: list[tuple]) -> tuple[int, list[int]]:
    """`raw`, with n samples of its own for each prompt: [(prompt, n)] in one call."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    s = r.sampling
    ids = [TokensPrompt(prompt_token_ids=chat_ids(engine.tokenizer, messages(r, p))) for p, _ in asked]
    params = [SamplingParams(n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens) for _, n in asked]
    lengths = [len(c.token_ids) for o in engine.llm.generate(ids, params, use_tqdm=False) for c in o.outputs]
    return sum(lengths), lengths


def spread(values: list[float]) -> tuple[str, str]:
    return f"{statistics.median(values):.3f}", f"{min(values):.3f}-{max(values):.3f}"


if __name__ == "__main__":
    main()
