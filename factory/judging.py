"""The judge stage: runs filters.judge's prompts through an engine, in batches, greedily.

By default the run's own engine judges (no second model in memory); `judge.model` names another, which is then
loaded with the same engine kind.
"""

from __future__ import annotations

import dataclasses

from factory.engines import Request
from factory.recipe import Recipe, SamplingConfig
from filters.base import Verdict
from filters.judge import judge_messages, verdict
from filters.registry import JUDGE


class Judge:
    def __init__(self, recipe: Recipe, engine, model: str):
        self.cfg, self.engine, self.model = recipe.judge, engine, model
        self.sampling = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=recipe.judge.max_tokens)

    def __call__(self, items: list[tuple[str, str | None, str]]) -> list[Verdict]:
        """Judge (prompt, reference answer or None, completion) triples."""
        if not items:
            return []
        outs = self.engine.generate([self.request(*item) for item in items], self.sampling)
        return [self.verdict(o) for o in outs]

    def request(self, prompt: str, reference: str | None, completion: str) -> Request:
        return Request(judge_messages(self.cfg, prompt, reference, completion), 1)

    def verdict(self, completions: list) -> Verdict:
        return verdict(self.cfg, self.model, completions[0].text)


def build(recipe: Recipe, run_engine=None):
    """The recipe's judge, or None when its filters do not name one. It shares `run_engine` when it can."""
    from factory import engines, models

    if JUDGE not in recipe.filters:
        return None
    name = recipe.judge.model or recipe.model
    if run_engine is not None and name == recipe.model and recipe.engine.kind != "replay":  # a replay cannot judge
        return Judge(recipe, run_engine, name)
    path = name if recipe.engine.kind == "openai" else models.resolve(name)
    if recipe.engine.kind == "replay":  # recorded answers, judged by a real model
        recipe = dataclasses.replace(recipe, engine=dataclasses.replace(recipe.engine, kind="vllm"))
    return Judge(recipe, engines.build(dataclasses.replace(recipe, model=name), path, seed=recipe.sampling.seed), name)
