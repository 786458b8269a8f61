"""Does `factory generate` keep the engine as busy as it can be? Against the ceiling, on the same engine, in one run.

Ceiling: raw `vllm.LLM.generate` with every request in one call (n samples per prompt), the most the engine can
do with these requests. Arms on the same prompts and sampling, each drawing exactly n samples per prompt:

- `raw, calls of B prompts`: how a loop that waits for each batch's longest answer does (the old design);
- `factory, one round of n`: the sampling loop end to end (engine stream, verification workers, dedup-free
  commits to a DuckDB store), each prompt's n samples in one request;
- `factory, rounds of 1`: the same with n rounds of one sample, the next round queued as soon as the previous one
  is committed (what adaptive sampling does).

Beside tokens/s, where the engine core runs in this process (the CPU default), what the engine itself saw: the
share of wall time it spent in its steps (the rest it waited for the loop) and the sequences it ran per step (its
batch; the ceiling's drain at the end lowers it too). Tokens/s on a shared machine moves by 10% between two runs of
the same arm; these two do not, and they say whether the loop kept the engine busy and full.

Two workloads: `short` (the demo's arithmetic, answers a few dozen to a few hundred tokens) and `long-tail` (a
long-CoT prompt with `max_tokens` far above the median answer, so lengths spread as reasoning traces do). The
engine runs `--max-num-seqs` sequences at once, well under the workload's prompts, as a GPU engine holds far fewer
sequences than a real job has prompts (with fewer prompts than slots, rounds of 1 could not fill it). Arms
alternate, `--reps` times; tokens/s is generated tokens over wall time. Each arm draws samples of its own, and one
run of it moves by up to 10% with their lengths and the machine's load, so the table gives medians: 4 runs take
about 45 minutes for the long-tail workload and 15 for the short one on 2 cores.

    .venv/bin/python benchmarks/generate_overhead.py [--prompts 32] [--n 4] [--max-num-seqs 12] [--reps 4]
        [--workloads short long-tail] [--max-tokens N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from common import build_engine, factory_run, load, table, timed

from factory.chat import messages
from factory.engines import chat_ids
from factory.workers import VerifyPool

LONG_COT = (
    "{prompt}\nThink it through step by step before you answer: restate the problem, try a method, check each step,"
    " and if unsure try another way. Then give the final answer."
)
WORKLOADS = {
    "short": ["prompt.template='{prompt}'", "sampling.max_tokens=320"],
    "long-tail": [f"prompt.template={json.dumps(LONG_COT)}", "sampling.max_tokens=768", "sampling.temperature=1.0"],
}


def raw(engine, r, prompts, n: int, batch: int) -> tuple[int, list[int]]:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    s = r.sampling
    ids = [TokensPrompt(prompt_token_ids=chat_ids(engine.tokenizer, messages(r, p))) for p in prompts]
    params = SamplingParams(n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)
    lengths = []
    for i in range(0, len(ids), batch):
        outs = engine.llm.generate(ids[i : i + batch], params, use_tqdm=False)
        lengths += [len(c.token_ids) for o in outs for c in o.outputs]
    return sum(lengths), lengths


class EngineMeter:
    """Wall time inside the engine's steps and sequences per step, read off vLLM's in-process engine core."""

    def __init__(self, engine):
        client = engine.llm.llm_engine.engine_core
        core = getattr(client, "engine_core", None)  # only the in-process client holds the core itself
        self.on = core is not None and hasattr(core, "scheduler")
        self.busy = self.steps = self.seqs = 0
        if not self.on:
            return
        schedule, get_output = core.scheduler.schedule, client.get_output

        def counted(*a, **k):
            out = schedule(*a, **k)
            self.seqs += len(out.num_scheduled_tokens)
            return out

        def timed_step(*a, **k):
            t = time.perf_counter()
            try:
                return get_output(*a, **k)
            finally:
                self.busy += time.perf_counter() - t
                self.steps += 1

        core.scheduler.schedule, client.get_output = counted, timed_step

    def measure(self, fn):
        """(fn's result, seconds, share of them in engine steps, sequences per step)."""
        self.busy = self.steps = self.seqs = 0
        out, secs = timed(fn)
        if not self.on:
            return out, secs, None, None
        return out, secs, self.busy / secs, self.seqs / max(1, self.steps)


def pct(xs: list[int], q: float) -> int:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--small-batch", type=int, default=8)
    ap.add_argument("--max-num-seqs", type=int, default=12)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--max-tokens", type=int, help="cap every workload's answers (a quick run; default: theirs)")
    args = ap.parse_args()
    n, small = args.n, args.small_batch
    engine_args = [f"engine.max_num_seqs={args.max_num_seqs}", "engine.max_model_len=2048", "source.size=200"]
    if args.max_tokens:
        for w in WORKLOADS.values():
            w.append(f"sampling.max_tokens={args.max_tokens}")
    fixed = ["rejection.max_samples={n}", "rejection.accept_per_prompt={n}"]
    fixed = [f.format(n=n) for f in fixed]
    arms = {"factory, one round of n": f"rejection.round_size={n}", "factory, rounds of 1": "rejection.round_size=1"}
    base, prompts = load([*engine_args, *fixed], args.prompts)
    engine = build_engine(base)
    meter = EngineMeter(engine)
    runs: dict = {}  # (workload, arm) -> [(tokens, seconds, engine busy share, sequences per step)]
    lengths: dict = {}
    with VerifyPool(base.verify.workers, base.verify.timeout) as pool:
        pool.wait_ready()
        raw(engine, base, prompts[:4], 1, 4)  # warm-up
        for rep in range(args.reps):
            for w in args.workloads:
                r, _ = load([*engine_args, *fixed, *WORKLOADS[w]], args.prompts)
                order = [("ceiling: raw, one call", len(prompts)), (f"raw, calls of {small} prompts", small)]
                order += [(arm, None) for arm in arms]
                for arm, batch in order[rep % len(order) :] + order[: rep % len(order)]:  # each rep starts elsewhere
                    if batch:
                        (tokens, lens), *m = meter.measure(lambda batch=batch, r=r: raw(engine, r, prompts, n, batch))
                        runs.setdefault((w, arm), []).append((tokens, *m))
                        lengths.setdefault(w, []).extend(lens)
                        continue
                    recipe, _ = load([*engine_args, *fixed, *WORKLOADS[w], arms[arm]], args.prompts)
                    t, *m = meter.measure(lambda recipe=recipe: factory_run(recipe, prompts, engine, pool))
                    assert t.new_candidates == len(prompts) * n, t
                    runs.setdefault((w, arm), []).append((t.new_tokens, *m))
    engine.close()
    rate = {k: statistics.median(r[0] / r[1] for r in v) for k, v in runs.items()}
    med = lambda v, i: statistics.median(r[i] for r in v) if v[0][i] is not None else "n/a"  # noqa: E731
    rows = [
        [w, arm, sum(r[0] for r in v) // len(v), rate[w, arm], rate[w, arm] / rate[w, "ceiling: raw, one call"]]
        + [med(v, 2), med(v, 3)]
        for (w, arm), v in sorted(runs.items(), key=lambda kv: (args.workloads.index(kv[0][0]), kv[0][1][0] != "c"))
    ]
    print(f"{len(prompts)} prompts x {n} samples, {base.model} on {engine.version}, engine max_num_seqs")
    print(f"{args.max_num_seqs}, median of {args.reps} runs")
    head = ["workload", "arm", "tokens/run", "tokens/s", "ratio to ceiling", "engine busy", "seqs/step"]
    print(table(head, rows))
    print()
    print("each run's ratio to the ceiling of its own rep, for the spread:")
    for (w, arm), v in runs.items():
        ceil = runs[w, "ceiling: raw, one call"]
        each = [(r[0] / r[1]) / (c[0] / c[1]) for r, c in zip(v, ceil, strict=True)]
        print(f"  {w}, {arm}: " + ", ".join(f"{x:.3f}" for x in each))
    print()
    dist = [
        [w, len(v), pct(v, 0.1), pct(v, 0.5), pct(v, 0.9), max(v), sum(x >= m for x in v) / len(v)]
        for w, v in lengths.items()
        for m in [load(WORKLOADS[w], 1)[0].sampling.max_tokens]
    ]
    print("answer lengths in tokens (the raw arms' samples)")
    print(table(["workload", "samples", "p10", "median", "p90", "max", "share at max_tokens"], dist))


if __name__ == "__main__":
    main()
