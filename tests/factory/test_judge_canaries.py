"""The judge's canaries: answers that say nothing (an empty answer, ":", "Thought process:", the question repeated, a
confident wrong number), graded before a run trusts the judge. Control flow on scripted judges here; the bundled
135M model, refused as a judge, in tests/factory/test_judge_run.py."""

from __future__ import annotations

import json
import re

import pytest
from fakes import ScriptedEngine

from factory import judging
from factory.recipe import Recipe
from factory.sources import make
from filters.judge import CANARIES

PROMPTS = [make("demo", "general", f"Name a use of {thing}.", {}) for thing in ("salt", "rope", "glue", "sand")]


def _answer(user: str) -> str:
    return re.search(r"\[Answer\]\n(.*?)\n\nGrade the answer", user, re.S).group(1)


def honest(user: str, k: int) -> str:
    """Grades an answer by whether it says something: a canary scores 1, a real answer 9."""
    question = re.search(r"\[Question\]\n(.*?)\n\n\[Answer\]", user, re.S).group(1)
    said = _answer(user).strip()
    empty = said in {canary(question) for canary in CANARIES.values()}
    return "Score: 1" if empty or "7291" in said else "Score: 9"


def judge(script, **settings) -> judging.Judge:
    r = Recipe()
    for k, v in settings.items():
        setattr(r.judge, k, v)
    return judging.Judge(r, ScriptedEngine(script), "scripted")


def test_an_honest_judge_passes_its_canaries():
    j = judge(honest)
    result = judging.check_canaries(j, PROMPTS)
    assert set(result["canaries"]) == set(CANARIES)
    assert all(r == {"passed": 0, "unparsable": 0, "of": 3, "scores": [1.0] * 3} for r in result["canaries"].values())
    judging.refuse_if_fooled(result)  # nothing raised
    assert len(j.engine.asked) == 3 * len(CANARIES)  # the first 3 prompts, each canary once
    line = judging.canary_line(json.dumps(result))
    assert f"graded all {len(CANARIES)} canary answers on 3 prompts below its threshold" in line
    assert honest(j.request(PROMPTS[0].prompt, None, "Salt preserves food.").messages[-1]["content"], 0) == "Score: 9"


@pytest.mark.parametrize("passes", ["colon", "question_repeated", "confident_wrong"])
def test_a_judge_that_passes_one_canary_is_refused_unless_the_run_says_flag(passes):
    def fooled(user: str, k: int) -> str:
        question = re.search(r"\[Question\]\n(.*?)\n\n\[Answer\]", user, re.S).group(1)
        canary = CANARIES[passes](question)
        return "Score: 8" if _answer(user) == canary else honest(user, k)

    result = judging.check_canaries(judge(fooled, canaries=2), PROMPTS)
    assert result["canaries"][passes]["passed"] == 2 and sum(r["passed"] for r in result["canaries"].values()) == 2
    with pytest.raises(judging.JudgeRefused, match=f"failed canary answers that say nothing .*'{passes}': passed 2,"):
        judging.refuse_if_fooled(result)
    flagged = judging.check_canaries(judge(fooled, canaries=2, on_canary="flag"), PROMPTS)
    judging.refuse_if_fooled(flagged)  # flagged, not refused
    assert "FLAGGED" in judging.canary_line(json.dumps(flagged))


def test_canary_settings_are_checked():
    from factory.errors import FactoryError
    from factory.recipe import parse

    with pytest.raises(FactoryError, match="judge.on_canary: 'warn' must be refuse or flag"):
        parse({"judge": {"on_canary": "warn"}, "source": {"kind": "jsonl", "path": "x.jsonl"}})


def test_a_judge_that_gives_no_score_is_refused_too():
    """A judge whose replies hold no score rejects every canary, and grades nothing: it is no judge either."""
    result = judging.check_canaries(judge(lambda user, k: "This answer is fine."), PROMPTS)
    assert all(r["passed"] == 0 and r["unparsable"] == 3 for r in result["canaries"].values())
    with pytest.raises(judging.JudgeRefused, match="'empty': passed 0, no score 3, of 3"):
        judging.refuse_if_fooled(result)


def test_the_canary_settings_leave_a_recipes_hash_alone():
    """How the judge is vetted is not what it keeps: a run begun before the settings existed resumes."""
    from factory.recipe import Recipe

    plain, vetted = Recipe(), Recipe()
    vetted.judge.canaries, vetted.judge.on_canary = 0, "flag"
    assert plain.hash() == vetted.hash()
