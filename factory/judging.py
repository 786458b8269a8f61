"""The judge stage: runs filters.judge's prompts through an engine, in batches, greedily; and its canaries, answers
that say nothing, graded before a run trusts the judge.

By default the run's own engine judges (no second model in memory); `judge.model` names another, which is then
loaded with the same engine kind.
"""

from __future__ import annotations

import dataclasses
import json

from factory.engines import Request
from factory.errors import FactoryError
from factory.recipe import Recipe, SamplingConfig
from filters.base import Verdict
from filters.judge import CANARIES, judge_messages, verdict
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


class JudgeRefused(FactoryError):
    """The judge passed a canary answer, or could not grade one: its verdicts cannot be trusted."""


def check_canaries(judge: Judge, prompts: list) -> dict:
    """Grade every canary answer (filters.judge.CANARIES) on the first `judge.cfg.canaries` prompts: per canary, how
    many the judge passed, how many it gave no score it could be held to (an unparsable reply), of how many, and its
    scores. A judge passes a canary only by grading it, below its threshold."""
    chosen = prompts[: judge.cfg.canaries]
    asks = [(name, p) for name in CANARIES for p in chosen]
    outs = judge.engine.generate(
        [judge.request(p.prompt, p.reference.get("answer"), CANARIES[name](p.prompt)) for name, p in asks],
        judge.sampling,
    )
    result: dict[str, dict] = {name: {"passed": 0, "unparsable": 0, "of": 0, "scores": []} for name in CANARIES}
    for (name, _), out in zip(asks, outs, strict=True):
        v = judge.verdict(out)
        result[name]["of"] += 1
        result[name]["passed"] += v.accepted
        result[name]["unparsable"] += v.reason == "judge_unparsable"
        result[name]["scores"].append(v.scores.get("judge_score"))
    cfg = judge.cfg
    return {"judge_model": judge.model, "threshold": cfg.threshold, "on_canary": cfg.on_canary, "canaries": result}


def failed(result: dict) -> dict[str, dict]:
    """The canaries the judge passed or could not grade."""
    return {name: r for name, r in result["canaries"].items() if r["passed"] or r.get("unparsable")}


def refuse_if_fooled(result: dict) -> None:
    bad = failed(result)
    if not bad or result["on_canary"] != "refuse":
        return
    said = "; ".join(
        f"{name!r}: passed {r['passed']}, no score {r.get('unparsable', 0)}, of {r['of']} (scores {r['scores']})"
        for name, r in bad.items()
    )
    raise JudgeRefused(
        f"the judge {result['judge_model']} failed canary answers that say nothing (a judge must grade each one,"
        f" below its threshold {result['threshold']}): {said}. Its verdicts cannot be trusted: name a stronger judge"
        " (judge.model), or set judge.on_canary=flag to go on with the run flagged in the store and the dataset card"
    )


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


def canary_line(raw: str | None) -> str | None:
    """A run's canary grades in one sentence (for the card and the report), or None when its judge had none."""
    if not raw:
        return None
    result = json.loads(raw)
    c = result["canaries"]
    fooled = [
        f"{name!r} ({r['passed']} passed, {r.get('unparsable', 0)} not graded, of {r['of']})"
        for name, r in failed(result).items()
    ]
    tried = f"{len(c)} canary answers on {max((r['of'] for r in c.values()), default=0)} prompts"
    if not fooled:
        return f"judge {result['judge_model']} graded all {tried} below its threshold {result['threshold']}"
    at = f"(threshold {result['threshold']})"
    return f"judge {result['judge_model']} FLAGGED: failed {', '.join(fooled)} of {tried} {at}"
