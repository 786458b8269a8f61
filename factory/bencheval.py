"""`factory eval MODEL --benchmark NAME`: a model's score on registered test sets, with the standard prompt.

    factory eval smollm2-135m-instruct --benchmark math500 --benchmark gsm8k
    factory eval runs/sft/final --benchmark aime24 --samples 16 --json

Greedy pass@1 (one answer at temperature 0) by default; with `--samples n`, n answers per problem at the recipe's
temperature, and pass@k for k = 1, 2, 4, ... n by the unbiased estimator of Chen et al. 2021 (arXiv 2107.03374):
1 - C(n-c, k) / C(n, k) per problem, averaged. Answers are judged by the verify stage that generation uses (math:
the final answer against the reference; code: the tests in the sandbox). Intervals are Wilson's (greedy) or the
normal one over problems (sampled). MATH-style sets are also scored per subject and per level.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from factory import models
from factory.chat import messages
from factory.engines import Request
from factory.evaluate import wilson
from factory.recipe import Recipe, SourceConfig
from factory.sources import Prompt
from filters.base import Candidate

DEFAULT_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "benchmark_eval.yaml"
# the prompts evaluation toolkits use (Qwen2.5-Math's and DeepSeek-R1's for math; HumanEval's completion for code;
# MBPP's own, from its paper)
STANDARD = {
    "math": "{prompt}\nPlease reason step by step, and put your final answer within \\boxed{}.",
    "code": "Complete the following Python function. Reply with the whole function in a ```python block.\n\n{prompt}",
}
BY_SET = {  # a set whose problem is not a function to complete (MBPP's: a task, then the tests its code must pass)
    "mbpp": "You are an expert Python programmer, and here is your task: {prompt}\n\nReply with the code in a ```python"
    " block.",
}


@dataclass
class Result:
    """One problem's answers: how many were right of how many, and why the others were not."""

    prompt: Prompt
    n: int
    correct: int
    tokens: list[int] = field(default_factory=list)
    truncated: int = 0
    misses: dict = field(default_factory=dict)


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of k answers drawn from n (c of them right) is right, without replacement."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def ks(n: int) -> list[int]:
    return sorted({k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, n) if k <= n})


def prepare(
    name: str, recipe: Recipe, samples: int, limit: int | None, standard: bool = True
) -> tuple[Recipe, list[Prompt]]:
    """The recipe aimed at a benchmark's test split (with the standard prompt of its task, or the recipe's own),
    greedy unless `samples` > 1; its problems."""
    import copy

    from factory import benchmarks, sources

    b = benchmarks.get(name)
    r = copy.deepcopy(recipe)
    r.source = SourceConfig(kind="benchmark", name=name, split="test", task=b.task)
    if standard:
        r.prompt.template = BY_SET.get(name, STANDARD[b.task])
    if samples <= 1:
        r.sampling.temperature = 0.0
    return r, sources.load(r.source, limit)


def run(r: Recipe, prompts: list[Prompt], pool, samples: int, bar=lambda *a, **k: None) -> list[Result]:
    """Every problem's answers from the recipe's engine, judged in the verification pool."""
    from factory import engines

    n = max(samples, 1)
    model = r.model if r.engine.kind in ("openai", "replay") else models.resolve(r.model)
    engine = engines.build(r, model, seed=r.sampling.seed)
    out = []
    try:
        step = r.rejection.batch_prompts or max(1, 256 // n)
        for i in range(0, len(prompts), step):
            bar("evaluating", len(prompts), i)
            chunk = prompts[i : i + step]
            comps = engine.generate([Request(messages(r, p), n, p.prompt) for p in chunk])
            out += _judge(r, chunk, comps, pool)
        bar("evaluating", len(prompts), len(prompts))
    finally:
        engine.close()
    return out


def _judge(r: Recipe, chunk: list[Prompt], comps, pool) -> list[Result]:
    jobs = [
        (Candidate(c.text, p.task, p.reference, c.finish_reason, r.prompt.think), ["verify"])
        for p, cs in zip(chunk, comps, strict=True)
        for c in cs
    ]
    verdicts = iter(pool.verdicts(jobs))
    results = []
    for p, cs in zip(chunk, comps, strict=True):
        res = Result(p, len(cs), 0)
        for c in cs:
            v = next(verdicts)
            res.correct += v.accepted
            res.tokens.append(c.n_tokens)
            res.truncated += c.finish_reason == "length"
            if not v.accepted:
                res.misses[v.reason or "rejected"] = res.misses.get(v.reason or "rejected", 0) + 1
        results.append(res)
    return results


def summary(name: str, results: list[Result], samples: int, seconds: float) -> dict:
    """The score of one benchmark: overall, per subject and per level where the set has them."""
    out = {"benchmark": name, "problems": len(results), "samples": max(samples, 1), "seconds": round(seconds, 1)}
    out |= _score(results, samples)
    tokens = [t for r in results for t in r.tokens]
    out["mean_tokens"] = sum(tokens) / len(tokens) if tokens else 0.0
    out["truncated"] = sum(r.truncated for r in results)
    misses: dict[str, int] = defaultdict(int)
    for r in results:
        for k, v in r.misses.items():
            misses[k] += v
    out["misses"] = dict(sorted(misses.items(), key=lambda kv: -kv[1]))
    for key in ("subject", "level"):
        groups = defaultdict(list)
        for r in results:
            if key in r.prompt.metadata:
                groups[r.prompt.metadata[key]].append(r)
        if groups:
            out[f"by_{key}"] = {g: {"problems": len(rs)} | _score(rs, samples) for g, rs in sorted(groups.items())}
    return out


def _score(results: list[Result], samples: int) -> dict:
    n = len(results)
    if samples <= 1:
        c = sum(r.correct for r in results)
        lo, hi = wilson(c, n)
        return {"correct": c, "pass@1": c / n if n else 0.0, "ci95": [lo, hi]}
    out = {}
    for k in ks(samples):
        vals = [pass_at_k(r.n, r.correct, k) for r in results]
        mean = sum(vals) / n if n else 0.0
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
        half = 1.96 * sd / math.sqrt(n) if n else 0.0
        out[f"pass@{k}"] = mean
        out[f"pass@{k}_ci95"] = [max(0.0, mean - half), min(1.0, mean + half)]
    return out


def evaluate(
    name: str, recipe: Recipe, pool, samples: int = 1, limit: int | None = None, bar=None, standard: bool = True
) -> dict:
    r, prompts = prepare(name, recipe, samples, limit, standard)
    started = time.monotonic()
    results = run(r, prompts, pool, samples, bar or (lambda *a, **k: None))
    return summary(name, results, samples, time.monotonic() - started)
