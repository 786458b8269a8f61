"""The built-in stages' GRPO rewards, as TRL reward functions: each scores by its stage's check (filters.registry
names it beside the stage; trainers.rewards binds them to a recipe's settings).

A TRL reward function gets the batch's `completions` (message lists for a chat prompt, text otherwise) and every
other dataset column as a keyword list (`task`, `reference`), and returns one float per completion, or None where it
does not apply (a general prompt has no verifier; a code prompt's tests are broken). R1's rewards (DeepSeek-AI
2025, §2.2.2 and §2.3.2):

- `accuracy`: 1 when the answer checks out, else 0. The same verifiers as generation (math-verify, reasoning-gym's
  scorers, code run against its tests in the sandbox), in the verification workers (`pool`) with a hard time limit.
- `format`: 1 when the completion follows the template (`filters.format`: with `think`, reasoning in one closed
  <think> block, then a summary), and was not cut off at max_completion_length, else 0.
- `language`: the proportion of target-language words (`filters.language.language_consistency`).
"""

from __future__ import annotations

import json

from filters.base import Candidate
from filters.format import check_format
from filters.language import LanguageConfig, language_consistency


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


def language_reward(completions, *, language: LanguageConfig, **kwargs) -> list[float]:
    return [language_consistency(text(c), language.target, language) for c in completions]
