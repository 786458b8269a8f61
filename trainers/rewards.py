"""GRPO rewards from the filters: the checks generation keeps or drops by, as TRL reward functions.

A TRL reward function gets the batch's `completions` (message lists for a chat prompt, text otherwise) and every
other dataset column as a keyword list (`task`, `reference`), and returns one float per completion, or None where it
does not apply (a general prompt has no verifier; a code prompt's tests are broken). R1's rewards (DeepSeek-AI
2025, §2.2.2 and §2.3.2):

- `accuracy`: 1 when the answer checks out, else 0. The same verifiers as generation (math-verify, reasoning-gym's
  scorers, code run against its tests in the sandbox), in verification worker processes with a hard time limit.
- `format`: 1 when the completion follows the template (`filters.format`: with `think`, reasoning in one closed
  <think> block, then a summary), and was not cut off at max_completion_length, else 0.
- `language`: the proportion of target-language words (`filters.language.language_consistency`).

- `module:function`: a user's own stage (filters/registry.py), run in the verification workers: its number, or 1/0
  for a bool or a verdict; None where it failed (`stage_error`).

TRL logs each one's mean and std per step as `rewards/<name>/mean` (e.g. `rewards/accuracy_reward/mean`).
"""

from __future__ import annotations

import json
from functools import partial

from filters.base import Candidate
from filters.format import check_format
from filters.language import LanguageConfig, language_consistency
from filters.registry import is_user


def text(completion) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else completion


def accuracy_reward(completions, task, reference, *, pool, think: bool, **kwargs) -> list[float | None]:
    jobs = [
        (Candidate(text(c), t, json.loads(r), think=think), ["verify"])
        for c, t, r in zip(completions, task, reference, strict=True)
    ]
    # no verifier, or tests that are broken themselves (bad_reference): nothing said about the completion
    return [None if v.reason in ("no_verifier", "bad_reference") else float(v.accepted) for v in pool.verdicts(jobs)]


def format_reward(completions, completion_ids, *, think: bool, stop_ids: set[int], **kwargs) -> list[float]:
    out = []
    for c, ids in zip(completions, completion_ids, strict=True):
        cut = bool(ids) and ids[-1] not in stop_ids  # no end-of-turn token: cut off at max_completion_length
        v = check_format(Candidate(text(c), finish_reason="length" if cut else "stop", think=think))
        out.append(float(v.accepted))
    return out


def language_reward(completions, *, cfg: LanguageConfig, **kwargs) -> list[float]:
    return [language_consistency(text(c), cfg.target, cfg) for c in completions]


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
    """The recipe's rewards, in order, bound to their settings (a partial keeps the function's name for logs). Each
    is named by the stage whose check it scores with (filters.registry.STAGES)."""
    made = {
        "accuracy": lambda: partial(accuracy_reward, pool=pool, think=think),
        "format": lambda: partial(format_reward, think=think, stop_ids=stop_ids),
        "language": lambda: partial(language_reward, cfg=language),
    }
    return [_user(n, pool, think) if is_user(n) else made[n]() for n in names]
