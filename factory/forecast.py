"""The bill before paying it: a pilot of the job's prompts, sampled for real, forecasts the whole job.

`factory generate RECIPE --forecast --pilot 2%` draws a seeded random share of the prompts (`pilot`) and samples
them in the recipe's own run under its own rules, so the samples are real, stay in the store, and the full run
resumes from them (the run's status is then `pilot`). From what each pilot prompt cost (`PromptCost`: samples drawn
until `accept_per_prompt` were kept or `max_samples` spent, tokens, cut at max_tokens, examples kept) the job's
totals are forecast: the pilot's own, plus the other prompts at the pilot's mean, with a 90% interval from the
estimator of a population total under simple random sampling without replacement, Var = N^2 (1 - n/N) s^2 / n
(Cochran, Sampling Techniques, 1977, ch. 2); the examples kept, at most accept_per_prompt a prompt, get Wilson's
score interval of a proportion instead, which a pilot that solved none or all of its prompts does not make zero
wide. Per prompt class (source, task, difficulty by the pilot's pass rate, factory/costs.py) the table shows what a
prompt of that class costs.

Time is forecast at a rate of completion tokens per second: here, the pilot's own (its sampling time; the engine's
loading is not counted). A pilot too small to fill the engine's running batch decodes fewer tokens per second than
the full job will (on the demo, 237 prompts on two shared cores, the pilot's rate was a third of the job's), so the
time here is an upper bound; per GPU at the rate the user gives (`--gpu-tokens-per-s`), else at a figure quoted in
QUOTED for a model whose name matches, said as quoted. Those were not measured here: they are vLLM output tokens/s
published by others (their prompts, lengths and settings), a first guess to be replaced by a measurement.

One thing the pilot cannot see: at the end of a job, once every prompt is begun, rounds may grow into the engine's
empty places (`rejection.fill_engine`). A pilot smaller than the engine's window of prompts runs wholly in that
regime; so where the full job is much bigger than the window, its samples per prompt are an upper bound.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from factory import costs
from factory.sources import Prompt

Z90 = 1.6448536269514722  # a two-sided 90% interval
_QUOTE = "https://www.morphllm.com/vllm-benchmarks (third-party vLLM benchmarks, 2025-2026)"
# model name part -> (GPU, output tokens/s, where it is quoted from); the first that the recipe's model contains
QUOTED = {
    "r1-distill-qwen-7b": ("1x A100 80GB", 3363.0, _QUOTE),
    "r1-distill-qwen-14b": ("1x A100 80GB", 3004.0, _QUOTE),
    "r1-distill-qwen-32b": ("1x A100 80GB", 577.0, _QUOTE),
    "llama-3.1-8b": ("1x H100 80GB", 12500.0, _QUOTE),
}


def quoted(model: str) -> tuple[str, float, str] | None:
    """A quoted GPU rate for a model of this name, or None."""
    name = model.lower()
    return next((q for part, q in QUOTED.items() if part in name), None)


METRICS = ("samples", "prompt_tokens", "tokens", "truncated", "examples")


@dataclass
class PromptCost:
    """What the run spent on one pilot prompt (all zero for one set aside before sampling)."""

    source: str
    task: str
    samples: int = 0
    passed: int = 0
    examples: int = 0
    tokens: int = 0  # completion tokens
    prompt_tokens: int = 0
    truncated: int = 0  # candidates cut at max_tokens
    seconds: float = 0.0  # engine seconds


@dataclass
class Forecast:
    prompts: int  # in the job
    pilot: int  # of them, sampled in the pilot
    classes: list[dict]  # per prompt class: its share of prompts and what one of its prompts costs
    totals: dict[str, tuple[float, float, float]]  # metric -> (forecast, low, high), the job's whole
    tokens_per_s: float  # completion tokens per second in the pilot, here
    gpu: tuple[str, float, str] | None = None  # (GPU, completion tokens/s, "given" or where it is quoted from)
    pilot_seconds: float = 0.0  # the pilot's sampling time here (0: sampled before)
    notes: list[str] = field(default_factory=list)

    def hours(self, rate: float | None) -> tuple[float, float, float] | None:
        """The job's generation time in hours at `rate` completion tokens per second."""
        if not rate:
            return None
        return tuple(t / rate / 3600 for t in self.totals["tokens"])


def pilot(prompts: Sequence[Prompt], share: float, seed: int) -> list[Prompt]:
    """A seeded random `share` of the distinct prompts (one at least), in the source's order."""
    first: dict[str, int] = {}
    for i, p in enumerate(prompts):
        first.setdefault(p.prompt_id, i)
    n = min(len(first), max(1, round(share * len(first))))
    picked = sorted(random.Random(f"pilot/{seed}").sample(sorted(first.values()), n))
    return [prompts[i] for i in picked]


def share(text: str) -> float:
    """`--pilot 2%` or `--pilot 0.02` as a share in (0, 1]."""
    from factory.errors import FactoryError

    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise FactoryError(f"--pilot {text!r}: a share of the prompts, e.g. 2% or 0.02 (more than 0, at most 100%)")
    return value


def forecast(
    pilot_costs: list[PromptCost], prompts: int, tokens_per_s: float, gpu: tuple | None = None, kept_most: int = 0
) -> Forecast:
    """The job of `prompts` prompts forecast from its pilot's; `gpu`: (GPU, tokens/s, whence) to time it on;
    `kept_most`: the examples a prompt keeps at most (accept_per_prompt), which bounds the examples' interval."""
    n = len(pilot_costs)
    totals = {m: total([getattr(c, m) for c in pilot_costs], prompts) for m in METRICS}
    if kept_most:
        totals["examples"] = total([c.examples for c in pilot_costs], prompts, kept_most)
    return Forecast(prompts, n, by_class(pilot_costs), totals, tokens_per_s, gpu)


def total(values: list[float], population: int, bound: float = 0.0) -> tuple[float, float, float]:
    """The sum over `population` prompts of a quantity known for the pilot's `values` (a simple random sample of
    them, without replacement): the pilot's own plus the rest at its mean; a 90% interval, never below the pilot's.
    A quantity between 0 and `bound` a prompt (examples kept, at most accept_per_prompt) gets Wilson's score
    interval on its share of the bound instead: the normal interval comes from the pilot's own spread, which a small
    pilot that solved none of its prompts (or all) does not have, so it would be zero wide."""
    n, have = len(values), sum(values)
    mean = have / n
    point = have + (population - n) * mean
    if bound:
        lo, hi = wilson(mean / bound, n * (population - 1) / max(1, population - n))  # n, corrected for the whole
        return point, max(have, population * bound * lo), min(have + (population - n) * bound, population * bound * hi)
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    half = Z90 * population * math.sqrt((1 - n / population) * var / n)
    return point, max(have, point - half), point + half


def wilson(p: float, n: float, z: float = Z90) -> tuple[float, float]:
    """Wilson's score interval of a proportion p seen in n trials (Wilson 1927)."""
    if n == math.inf or n <= 0:
        return p, p
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, center - half), min(1.0, center + half)


def by_class(pilot_costs: list[PromptCost]) -> list[dict]:
    """Per prompt class: share of the pilot's prompts, and per prompt of it samples, tokens per sample (prompt and
    completion), the share cut and examples."""
    groups: dict[tuple, list[PromptCost]] = {}
    for c in pilot_costs:
        rate = c.passed / c.samples if c.samples else 0.0
        key = (c.source, c.task, costs.difficulty(rate) if c.samples else "set aside")
        groups.setdefault(key, []).append(c)
    out = []
    for (source, task, level), cs in groups.items():
        samples = sum(c.samples for c in cs)
        out.append(
            {
                "source": source,
                "task": task,
                "difficulty": level,
                "prompts": len(cs),
                "share": len(cs) / len(pilot_costs),
                "samples_per_prompt": samples / len(cs),
                "prompt_tokens_per_sample": sum(c.prompt_tokens for c in cs) / samples if samples else 0.0,
                "tokens_per_sample": sum(c.tokens for c in cs) / samples if samples else 0.0,
                "truncated_share": sum(c.truncated for c in cs) / samples if samples else 0.0,
                "examples_per_prompt": sum(c.examples for c in cs) / len(cs),
            }
        )
    order = [*costs.ORDER, "set aside"]
    return sorted(out, key=lambda r: (r["source"], r["task"], order.index(r["difficulty"])))


def class_rows(f: Forecast) -> tuple[list[str], list[list[str]]]:
    """The per-class table: columns and rows, as printed (tokens per sample: prompt + completion)."""
    cols = ["class (pass rate)", "prompts", "samples/prompt", "tokens/sample", "cut", "examples/prompt"]
    rows = [
        [
            f"{c['source']} {c['task']} {c['difficulty']} ({costs.RANGES.get(c['difficulty'], '-')})",
            f"{c['share']:.0%} ({c['prompts']})",
            f"{c['samples_per_prompt']:.2f}",
            f"{c['prompt_tokens_per_sample']:,.0f} + {c['tokens_per_sample']:,.0f}",
            f"{c['truncated_share']:.1%}",
            f"{c['examples_per_prompt']:.2f}",
        ]
        for c in f.classes
    ]
    return cols, rows


def total_rows(f: Forecast) -> list[list[str]]:
    """The job's totals, each with its 90% interval, and its time here and per GPU."""
    names = {
        "samples": "samples",
        "prompt_tokens": "prompt tokens",
        "tokens": "completion tokens",
        "truncated": "cut at max_tokens",
        "examples": "examples kept",
    }
    out = [[name, f"{_n(f.totals[m][0])}", f"{_n(f.totals[m][1])} - {_n(f.totals[m][2])}"] for m, name in names.items()]
    here = f.hours(f.tokens_per_s)
    if here:
        rate = f"at {f.tokens_per_s:,.0f} tokens/s, the pilot's: at most, a full engine is faster"
        out.append(["time here", _h(here[0]), f"{_h(here[1])} - {_h(here[2])} {rate}"])
    if f.gpu:
        gpu, rate, whence = f.gpu
        g = f.hours(rate)
        how = "given" if whence == "given" else f"quoted: {whence}"
        out.append([f"time on {gpu}", _h(g[0]), f"{_h(g[1])} - {_h(g[2])} at {rate:,.0f} tokens/s ({how})"])
    return out


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _h(hours: float) -> str:
    return f"{hours * 60:.1f} min" if hours < 1 else f"{hours:,.1f} h"
