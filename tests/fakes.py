"""The test suite's one scripted engine, for tests of control flow (the sampler's rounds, resume, retry, stages):
its answers come from a function, so a test says exactly what the model "wrote". Every feature also has a test on
the real engine; see the tests that build one from a recipe."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from factory.engines import Completion


class ScriptedEngine:
    """`answer(user_message, k)` writes the k-th sample this engine draws for a prompt (k counts per prompt from 0,
    across calls). `tokens`: each completion's token count (default: its words), or a function of (user message,
    k) for each its own. `fail_at`: the request, counted over all calls, at whose call a ^C is raised. `cut(user, k)`:
    whether the k-th sample ends at max_tokens (finish_reason "length"; default never)."""

    name = version = "scripted"

    def __init__(
        self,
        answer: Callable[[str, int], str],
        tokens: int | Callable[[str, int], int] | None = None,
        fail_at: int | None = None,
        cut: Callable[[str, int], bool] | None = None,
    ):
        self.answer, self.tokens, self.fail_at, self.cut = answer, tokens, fail_at, cut
        self.drawn: Counter = Counter()
        self.calls: list[list[int]] = []  # n per request, per call
        self.asked: list[str] = []  # each request's user message, in order

    def generate(self, requests, sampling=None) -> list[list[Completion]]:
        if len(self.asked) == self.fail_at:
            raise KeyboardInterrupt
        self.calls.append([r.n for r in requests])
        return [self._request(r) for r in requests]

    def _request(self, r) -> list[Completion]:
        user = r.messages[-1]["content"]
        self.asked.append(user)
        k, self.drawn[user] = self.drawn[user], self.drawn[user] + r.n
        return [self._one(user, i) for i in range(k, k + r.n)]

    def _one(self, user: str, k: int) -> Completion:
        text = self.answer(user, k)
        n = self.tokens(user, k) if callable(self.tokens) else self.tokens or len(text.split())
        return Completion(text, n, "length" if self.cut and self.cut(user, k) else "stop", n_prompt_tokens=10)

    def close(self) -> None:
        pass


def right_at(prompts, right: list[set[int]] | None = None, template: str = "{prompt}") -> Callable[[str, int], str]:
    """Answers prompt i right at the sample indices in `right[i]` (default: never), wrong ("x") otherwise."""
    right = right if right is not None else [set()] * len(prompts)
    script = {
        template.replace("{prompt}", p.prompt): (p.reference["answer"], r) for p, r in zip(prompts, right, strict=True)
    }

    def answer(user: str, k: int) -> str:
        ans, good = script[user]
        return f"Adding up.\n</think>\nThe answer is {ans if k in good else 'x'}."

    return answer
