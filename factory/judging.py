"""The judge stage: runs filters.judge's prompts through an engine, in batches, greedily; the cascade's second half
(`decide`: what the judge's answer makes of a verdict the second opinion disputed, filters/cascade.py); and its
canaries, answers that say nothing, graded before a run trusts the judge and again every `judge.recheck_every`
answers it judged.

By default the run's own engine judges (no second model in memory); `judge.model` names another, which is then
loaded with the same engine kind.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from factory.engines import Request
from factory.errors import FactoryError
from factory.recipe import Recipe, SamplingConfig
from filters import cascade
from filters.base import Verdict
from filters.judge import CANARIES, judge_messages, verdict
from filters.registry import JUDGE


class Judge:
    def __init__(self, recipe: Recipe, engine, model: str):
        self.cfg, self.engine, self.model = recipe.judge, engine, model
        self.sampling = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=recipe.judge.max_tokens)
        self.every = JUDGE in recipe.filters  # a filter: it judges every accepted answer, not only the cascade's

    def asked(self, verdicts: list[Verdict]) -> list[int]:
        """The verdicts it answers: every accepted one where it is a filter, and the cascade's disputed ones."""
        return [
            i for i, v in enumerate(verdicts) if (self.every and v.accepted) or v.scores.get("cascade") == cascade.ASKED
        ]

    def settle(self, verdicts: list[Verdict], items: list[tuple[str, str | None, str]]) -> None:
        """Judge (prompt, reference answer or None, completion) for each verdict it answers, and apply the answer
        (`decide`), in place: how `factory filter` uses it; a run asks through its stream instead."""
        todo = self.asked(verdicts)
        for i, v in zip(todo, self([items[i] for i in todo]), strict=True):
            verdicts[i] = decide(verdicts[i], v)

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


def decide(rule: Verdict, judged: Verdict) -> Verdict:
    """The verdict once the judge has answered: its own where it is a filter; for a verdict the cascade disputed, the
    judge's pass rescues a reject and its fail overrules an accept (a reply with no score leaves the rule standing)."""
    scores = {**rule.scores, **judged.scores}
    if rule.scores.get("cascade") != cascade.ASKED:
        return dataclasses.replace(rule, accepted=judged.accepted, reason=judged.reason, scores=scores)
    if judged.reason == "judge_unparsable" or judged.accepted == rule.accepted:
        return dataclasses.replace(rule, scores=scores)
    if judged.accepted:
        return dataclasses.replace(rule, accepted=True, reason=cascade.RESCUED, scores=scores)
    return dataclasses.replace(rule, accepted=False, reason=cascade.OVERRULED, scores=scores)


class JudgeRefused(FactoryError):
    """The judge passed a canary answer, or could not grade one: its verdicts cannot be trusted."""


def check_canaries(judge: Judge, prompts: list) -> dict:
    """Grade every canary answer (filters.judge.CANARIES) on the first `judge.cfg.canaries` prompts: per canary, how
    many the judge passed, how many it gave no score it could be held to (an unparsable reply), of how many, and its
    scores. A judge passes a canary only by grading it, below its threshold."""
    asks = canary_asks(judge, prompts[: judge.cfg.canaries])
    outs = judge.engine.generate([request for _, request in asks], judge.sampling)
    return grade(judge, [name for name, _ in asks], outs)


def canary_asks(judge: Judge, prompts: list) -> list[tuple[str, Request]]:
    """Each canary answer to each prompt, as a question to the judge: (canary name, request)."""
    return [
        (name, judge.request(p.prompt, p.reference.get("answer"), CANARIES[name](p.prompt)))
        for name in CANARIES
        for p in prompts
    ]


def grade(judge: Judge, names: list[str], outs: list) -> dict:
    """The judge's answers to canary questions (`canary_asks`), graded."""
    result: dict[str, dict] = {name: {"passed": 0, "unparsable": 0, "of": 0, "scores": []} for name in CANARIES}
    for name, out in zip(names, outs, strict=True):
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


RUN_FIX = (
    "name a stronger judge (judge.model), or set judge.on_canary=flag to go on with the run flagged in the store and"
    " the dataset card"
)


def refuse_if_fooled(result: dict, fix: str = RUN_FIX) -> None:
    bad = failed(result)
    if not bad or result["on_canary"] != "refuse":
        return
    said = "; ".join(
        f"{name!r}: passed {r['passed']}, no score {r.get('unparsable', 0)}, of {r['of']} (scores {r['scores']})"
        for name, r in bad.items()
    )
    when = f" after {result['after']} answers it judged" if result.get("after") else ""
    raise JudgeRefused(
        f"the judge {result['judge_model']}{when} failed canary answers that say nothing (a judge must grade each one,"
        f" below its threshold {result['threshold']}): {said}. Its verdicts cannot be trusted: {fix}"
    )


@dataclass(frozen=True)
class Canary:
    """The key of a canary question in an engine stream: which recheck, and which of its questions."""

    check: int
    i: int


class Recheck:
    """The canaries graded again every `judge.recheck_every` answers the judge gives (in this process), on the prompt
    it judged last, through the run's own stream: a judge that passes one now is refused mid-run (or, with
    `on_canary: flag`, flagged), and every check lands in the run's row (`runs.canaries`, under `rechecks`)."""

    def __init__(self, judge: Judge, store, run_id: str):
        self.judge, self.store, self.run_id = judge, store, run_id
        self.every, self.judged = judge.cfg.recheck_every if judge.cfg.canaries else 0, 0  # canaries: 0 is all off
        self.open: dict[int, tuple[int, str, list[str], list]] = {}  # check -> (after, prompt_id, names, answers)

    def count(self, prompt) -> list[tuple[Canary, Request]]:
        """One more answer judged, to `prompt`; the canary questions to ask now, or none."""
        self.judged += 1
        if not self.every or self.judged % self.every:
            return []
        asks, n = canary_asks(self.judge, [prompt]), self.judged // self.every
        self.open[n] = (self.judged, prompt.prompt_id, [name for name, _ in asks], [None] * len(asks))
        return [(Canary(n, i), request) for i, (_, request) in enumerate(asks)]

    def answered(self, key: Canary, completions: list) -> None:
        """A canary answer in; once a check has all of them, it is graded, kept, and the judge refused if fooled."""
        after, prompt_id, names, outs = self.open[key.check]
        outs[key.i] = completions
        if any(o is None for o in outs):
            return
        del self.open[key.check]
        result = {**grade(self.judge, names, outs), "after": after, "prompt_id": prompt_id}
        self.store.add_canaries(self.run_id, result)
        refuse_if_fooled(result)


def build(recipe: Recipe, run_engine=None):
    """The recipe's judge, or None when its filters do not name one. It shares `run_engine` when it can."""
    from factory import engines, models

    if JUDGE not in recipe.filters and not recipe.verify.cascade:
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
    rechecks = result.get("rechecks", [])
    again = [r for r in rechecks if failed(r)]
    later = f"; graded again {len(rechecks)} times during the run" if rechecks else ""
    if again:
        later += f", FLAGGED at {len(again)} (after {', '.join(str(r['after']) for r in again)} answers judged)"
    if not fooled:
        return f"judge {result['judge_model']} graded all {tried} below its threshold {result['threshold']}{later}"
    at = f"(threshold {result['threshold']})"
    return f"judge {result['judge_model']} FLAGGED: failed {', '.join(fooled)} of {tried} {at}{later}"


def cascade_line(c: dict) -> str | None:
    """The judge cascade's work in one sentence (`stats()["cascade"]`), or None when it sent the judge nothing."""
    if not c or not c["asked"]:
        return None
    upheld = c["asked"] - c["rescued"] - c["overruled"]
    return (
        f"the judge cascade sent the judge {c['asked']} verdicts to settle (disputed by the second opinion, or of a"
        f" reason verify.cascade_reasons lists): {c['rescued']}"
        f" rescued (rejected by the rules, passed by the judge), {c['overruled']} overruled (accepted by the rules,"
        f" failed by the judge), {upheld} left as the rules had them"
    )
