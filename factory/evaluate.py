"""`factory eval`: a model's greedy accuracy on a recipe's source, with the recipe's prompt and the same verifiers
that generation uses, on the same engines.

    factory eval smollm2-135m-instruct recipes/arithmetic_demo.yaml --limit 200
    factory eval runs/r1/final recipes/arithmetic_demo.yaml --set source.seed=7 --json
    factory eval runs/rft/sft recipes/r1/eval.yaml --training runs/rft/store.duckdb

A source of fresh problems (another seed) can still repeat problems the model trained on: a small family like
two-term arithmetic does often. `--training` names what the model trained on (stores, whose prompts it holds;
recipes, whose source it drew), and the accuracy on the prompts none of them holds is reported beside the whole.

One greedy answer per prompt (temperature 0, whatever the recipe samples with), judged by the recipe's `format`
and `verify` stages: the quality filters (readability, language, dedup) say whether an answer is good training
data, not whether it is right, so they do not count here.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from factory import models
from factory.chat import messages
from factory.engines import Request
from factory.errors import FactoryError
from factory.recipe import Recipe
from factory.sources import Prompt
from filters.base import Candidate

GREEDY = [
    "sampling.temperature=0",
    "rejection.max_samples=1",
    "rejection.round_size=1",
    "rejection.accept_per_prompt=1",
]
CHECKS = ("format", "verify")  # the stages that decide right or wrong
STEP = 256  # prompts per engine call when the recipe sets no rejection.batch_prompts


@dataclass
class Score:
    model: str
    recipe: str
    n: int = 0
    correct: int = 0
    tokens: list[int] = field(default_factory=list)
    truncated: int = 0
    misses: Counter = field(default_factory=Counter)  # reason -> count
    seconds: float = 0.0
    unseen_n: int = 0  # prompts that no training store or recipe holds (all of them when none is named)
    unseen_correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson's 95% interval: right at 0 and n, where the normal approximation says [0, 0]."""
        return wilson(self.correct, self.n, z)

    def as_dict(self) -> dict:
        lo, hi = self.interval()
        return {
            "model": self.model,
            "recipe": self.recipe,
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "ci95": [lo, hi],
            "mean_tokens": self.mean_tokens,
            "truncated": self.truncated,
            "misses": dict(self.misses.most_common()),
            "seconds": self.seconds,
            "unseen": {
                "n": self.unseen_n,
                "correct": self.unseen_correct,
                "accuracy": self.unseen_accuracy,
                "ci95": list(wilson(self.unseen_correct, self.unseen_n)),
            },
        }

    @property
    def unseen_accuracy(self) -> float:
        return self.unseen_correct / self.unseen_n if self.unseen_n else 0.0

    @property
    def mean_tokens(self) -> float:
        return sum(self.tokens) / len(self.tokens) if self.tokens else 0.0

    def line(self) -> str:
        return f"accuracy {self.correct}/{self.n} = {100 * self.accuracy:.1f}%"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def prepare(model: str, recipe: Path, overrides: list[str], limit: int | None) -> tuple[Recipe, list[Prompt]]:
    """The recipe made greedy, with `model` in place of its own; its prompts, validated like generate's."""
    from factory.run import prepare as prepare_run

    r, prompts = prepare_run(recipe, limit, [*overrides, *GREEDY])
    r.model = model
    return r, prompts


def same_text(text: str) -> str:
    """A prompt as compared with training data: case and runs of whitespace do not make a problem new."""
    return " ".join(text.split()).casefold()


def trained_on(paths: list[Path]) -> set[str]:
    """The prompt texts a model trained on (`same_text` of each): every prompt of a store, every prompt of a recipe's
    source (a generation recipe's `source`, or a GRPO recipe's when it draws its prompts from one)."""
    seen: set[str] = set()
    for path in paths:
        if not path.exists():
            raise FactoryError(f"--training {path}: no such store or recipe")
        if path.suffix in (".yaml", ".yml"):
            seen.update(same_text(p.prompt) for p in _recipe_prompts(path))
            continue
        from factory.store import StoreReader

        try:
            store = StoreReader(path)
        except FactoryError as e:
            raise FactoryError(f"--training {path}: not a recipe (.yaml), and as a store: {e}") from None
        try:
            seen.update(same_text(text) for text in store.prompt_texts())
        finally:
            store.close()
    return seen


def _recipe_prompts(path: Path) -> list[Prompt]:
    from factory import sources
    from factory.recipe import read

    raw = read(path)
    if isinstance(raw.get("prompts"), dict) and "kind" in raw["prompts"]:  # a GRPO recipe
        from trainers import recipe as trainer_recipes

        g = trainer_recipes.load(trainer_recipes.GRPORecipe, path)
        if g.prompts.kind != "source":
            raise FactoryError(f"--training {path}: its prompts come from a store; name that store instead")
        return sources.load(g.source, g.prompts.limit)
    from factory import recipe as recipes

    r = recipes.load(path, needs_source=False)
    if r.source is None:
        raise FactoryError(f"--training {path}: the recipe has no source")
    return sources.load(r.source)


def evaluate(r: Recipe, prompts: list[Prompt], pool, bar=lambda *a, **k: None, seen: set[str] = frozenset()) -> Score:
    """Greedy answers for `prompts` from the recipe's engine, judged by its checks in the verification pool; the
    prompts whose text is in `seen` (what the model trained on) count toward the whole but not toward `unseen`."""
    from factory import engines

    checks = [f for f in r.filters if f in CHECKS] or ["verify"]
    if "verify" not in checks:
        checks.append("verify")
    score = Score(model=r.model, recipe=r.name)
    bar(f"loading {r.model} on {r.engine.kind}")
    model = r.model if r.engine.kind in ("openai", "replay") else models.resolve(r.model)
    engine = engines.build(r, model, seed=r.sampling.seed)
    started = time.monotonic()
    try:
        step = r.rejection.batch_prompts or STEP
        for i in range(0, len(prompts), step):
            bar("evaluating", len(prompts), i)
            chunk = prompts[i : i + step]
            outs = engine.generate([Request(messages(r, p), 1, p.prompt) for p in chunk])
            jobs = [
                (Candidate(c[0].text, p.task, p.reference, c[0].finish_reason, r.prompt.think), checks)
                for p, c in zip(chunk, outs, strict=True)
            ]
            for p, (cand, _), verdict, comps in zip(chunk, jobs, pool.verdicts(jobs), outs, strict=True):
                score.n += 1
                score.correct += verdict.accepted
                if same_text(p.prompt) not in seen:
                    score.unseen_n += 1
                    score.unseen_correct += verdict.accepted
                score.tokens.append(comps[0].n_tokens)
                score.truncated += cand.finish_reason == "length"
                if not verdict.accepted:
                    score.misses[verdict.reason or "rejected"] += 1
        bar("evaluating", len(prompts), len(prompts))
    finally:
        engine.close()
    score.seconds = time.monotonic() - started
    return score
