"""What does `factory` cost over raw vLLM? The same engine, prompts and sampling, in one run.

Raw: `vllm.LLM.generate` over all prompts, n samples each. factory: its sampling loop end to end (generation,
verification in worker processes, a DuckDB commit per batch), with one round per prompt so that both draw the
same number of samples. Arms alternate, `--reps` times each; tokens/s is generated tokens over wall time.

    .venv/bin/python benchmarks/generate_overhead.py [--prompts 64] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics

from common import build_engine, factory_run, load, table, timed

from factory.engines import chat_ids
from factory.sampler import messages
from factory.workers import VerifyPool


def raw(engine, r, prompts, n: int, batch: int) -> int:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    s = r.sampling
    ids = [TokensPrompt(prompt_token_ids=chat_ids(engine.tokenizer, messages(r, p))) for p in prompts]
    params = SamplingParams(n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)
    tokens = 0
    for i in range(0, len(ids), batch):
        outs = engine.llm.generate(ids[i : i + batch], params, use_tqdm=False)
        tokens += sum(len(c.token_ids) for o in outs for c in o.outputs)
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--small-batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    n, small = args.n, args.small_batch
    one_round = ["source.size=200", f"rejection.round_size={n}", f"rejection.max_samples={n}"]
    one_round.append(f"rejection.accept_per_prompt={n}")
    r, prompts = load([*one_round, f"rejection.batch_prompts={args.prompts}"], args.prompts)
    r_small, _ = load([*one_round, f"rejection.batch_prompts={small}"], args.prompts)
    engine = build_engine(r)
    runs = {}  # (arm, batch) -> [(tokens, seconds)]
    with VerifyPool(r.verify.workers, r.verify.timeout) as pool:
        pool.wait_ready()
        raw(engine, r, prompts[:4], 1, 4)  # warm-up
        for _ in range(args.reps):
            for batch, recipe in ((len(prompts), r), (small, r_small)):
                tokens, secs = timed(lambda batch=batch: raw(engine, r, prompts, n, batch))
                runs.setdefault(("raw vllm.LLM.generate", batch), []).append((tokens, secs))
                t, secs = timed(lambda recipe=recipe: factory_run(recipe, prompts, engine, pool))
                assert t.new_candidates == len(prompts) * n, t
                runs.setdefault(("factory generate loop", batch), []).append((t.new_tokens, secs))
    engine.close()
    rate = {k: statistics.median(tok / s for tok, s in v) for k, v in runs.items()}
    rows = [
        [
            arm,
            batch,
            sum(t for t, _ in v) // len(v),
            rate[arm, batch],
            rate[arm, batch] / rate["raw vllm.LLM.generate", batch],
        ]
        for (arm, batch), v in sorted(runs.items(), key=lambda kv: (-kv[0][1], kv[0][0] != "raw vllm.LLM.generate"))
    ]
    print(f"{len(prompts)} prompts x {n} samples, {r.model} on {engine.version}, median of {args.reps} runs")
    print(table(["arm", "prompts per call", "tokens/run", "tokens/s", "ratio to raw, same batch"], rows))


if __name__ == "__main__":
    main()
