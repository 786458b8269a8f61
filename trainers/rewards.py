"""GRPO rewards for a recipe: the built-in stages' (filters/rewards.py, named in filters.registry) and a user's own
`module:function` stages, as TRL reward functions bound to the recipe's settings.

A user's stage runs in the verification workers: its number, or 1/0 for a bool or a verdict; None where it failed
(`stage_error`). TRL logs each reward's mean and std per step as `rewards/<name>/mean` (e.g.
`rewards/accuracy_reward/mean`).
"""

from __future__ import annotations

import json
from functools import partial

from filters.base import Candidate
from filters.language import LanguageConfig
from filters.registry import REWARD_FUNCTIONS, is_user
from filters.rewards import accuracy_reward, format_reward, language_reward, text  # noqa: F401  (their home before)


def user_reward(completions, task, reference, *, name: str, pool, think: bool, **kwargs) -> list[float | None]:
    jobs = [
        (Candidate(text(c), t, json.loads(r), think=think), [name])
        for c, t, r in zip(completions, task, reference, strict=True)
    ]
    short = name.partition(":")[2]
    return [None if v.reason == "stage_error" else _score(v.scores.get(short), v.accepted) for v in pool.verdicts(jobs)]


def _score(value, accepted: bool) -> float:
    """The stage's number where it gave one, else 1 or 0 for its verdict."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float(accepted)


def _user(name: str, pool, think: bool):
    """`user_reward` for one stage, named after its function for TRL's logs (`rewards/<function>_reward/mean`)."""

    def reward(completions, task, reference, **kwargs):
        return user_reward(completions, task, reference, name=name, pool=pool, think=think)

    reward.__name__ = f"{name.partition(':')[2]}_reward"
    return reward


def reward_functions(names: list[str], *, pool, think: bool, stop_ids: set[int], language: LanguageConfig) -> list:
    """The recipe's rewards, in order, each bound to every setting (a reward takes the ones it needs; a partial keeps
    the function's name for TRL's logs)."""
    settings = {"pool": pool, "think": think, "stop_ids": stop_ids, "language": language}
    return [_user(n, pool, think) if is_user(n) else partial(REWARD_FUNCTIONS[n], **settings) for n in names]
