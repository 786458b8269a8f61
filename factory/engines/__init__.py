"""Generation engines: vLLM (on a GPU), llama.cpp (on a CPU: `auto` picks, see factory.engines.auto), transformers
(a fallback), any OpenAI-compatible server, and a replay of recorded completions.

Each engine takes chat requests (messages, n) and returns n completions per request, two ways: `generate` for a
list at once, and `stream(engine)` for requests added one by one and collected as each finishes, which is how the
sampler keeps an engine full. `import factory` imports none of their libraries; an engine imports its own when it
is built and says which extra to install if missing.

Each completion says what it cost: its prompt and completion tokens and `seconds`, the engine's wall time spent on
it. Engines run many samples at once, so that is a share: vLLM's stream shares each engine step's time equally among
the samples running in it (the first `capacity` it holds: vLLM schedules first come, first served), llama.cpp's
shares each decode's time by the sample's tokens in that batch (a prompt slice weighs its tokens), an OpenAI server's
sample is its request's time over `concurrency` (the requests it runs beside), and an engine that only generates
lists (`Batched`) has each call's time shared by the completions' tokens, prompt and completion. So a run's sum is
the engine's busy time, give or take the judge's requests that share it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from factory.errors import FactoryError
from factory.recipe import Recipe, SamplingConfig

log = logging.getLogger(__name__)


@dataclass
class Request:
    messages: list[dict]
    n: int
    prompt: str | None = None  # the source's prompt before the template (what a replay matches)
    first: int = 0  # the prompt's sample index of the first of the n samples (where a replay starts)


@dataclass
class Completion:
    text: str
    n_tokens: int
    finish_reason: str  # stop | length
    n_prompt_tokens: int = 0
    seconds: float = 0.0  # the engine's wall time spent on it: a share of a batch's (see above)


def share_time(completions: list[list[Completion]], seconds: float) -> list[list[Completion]]:
    """A batch call's `seconds` shared among its completions by their tokens, prompt and completion (those that
    carry their own time keep it)."""
    weight = lambda c: c.n_tokens + c.n_prompt_tokens or 1  # noqa: E731
    total = sum(weight(c) for cs in completions for c in cs if not c.seconds)
    return [
        [c if c.seconds else dataclasses.replace(c, seconds=seconds * weight(c) / total) for c in cs]
        for cs in completions
    ]


class Engine(Protocol):
    """What the sampler and `factory eval` need of an engine: every engine here, and any object a program brings.
    One that can also `stream()` (a `Stream`) is kept full; one that cannot is called a batch at a time."""

    def generate(self, requests: list[Request], sampling: SamplingConfig | None = None) -> list[list[Completion]]:
        """For each request, its n completions (fewer where it has no more: a replay that ran out)."""
        ...

    def close(self) -> None: ...


class Stream(Protocol):
    """Requests added one at a time and collected as each finishes (`engine.stream()`, or `Batched`)."""

    capacity: int | None  # samples the engine runs at once (None: it does not say)

    @property
    def unfinished(self) -> int:
        """Requests added and not yet returned by `poll`."""
        ...

    @property
    def samples(self) -> int:
        """Samples of those requests still generating."""
        ...

    def add(self, key: Hashable, request: Request, sampling: SamplingConfig | None = None) -> None: ...

    def poll(self) -> list[tuple[Hashable, list[Completion]]]:
        """(key, completions) of the requests that finished, waiting a moment when some are unfinished."""
        ...

    def close(self) -> None: ...


def build(recipe: Recipe, model: str, seed: int) -> Engine:
    """The recipe's engine, loaded and ready; `model` is a resolved path or name, `seed` seeds the engine."""
    kind = resolve_kind(recipe.engine.kind)
    if kind == "vllm":
        from factory.engines.vllm_engine import VLLMEngine as cls
    elif kind == "transformers":
        from factory.engines.hf_engine import TransformersEngine as cls
    elif kind == "llamacpp":
        from factory.engines.llamacpp_engine import LlamaCppEngine as cls
    elif kind == "replay":
        from factory.engines.replay_engine import ReplayEngine as cls
    else:
        from factory.engines.openai_engine import OpenAIEngine as cls
    try:
        return cls(model, recipe.sampling, recipe.engine, seed)
    except (OSError, ValueError, RuntimeError) as e:  # a model that is not there, or does not fit
        log.debug("engine start failed", exc_info=True)
        raise FactoryError(f"the {kind} engine could not load {model!r}: {e}") from None


def resolve_kind(kind: str) -> str:
    """The engine a recipe's `engine.kind` names; `auto` is chosen here (factory.engines.auto), said once."""
    if kind != "auto":
        return kind
    from factory.engines import auto

    chosen, why = auto.choose()
    if why not in _SAID:
        _SAID.add(why)
        log.warning("engine.kind auto: %s", why)
    return chosen


_SAID: set[str] = set()


def chat_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the chat template applied to `messages`, ready for the assistant's turn."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def stream(engine: Engine) -> Stream:
    """A stream of requests on `engine`: its own when it has one (kept full), else one `generate` per poll."""
    return engine.stream() if hasattr(engine, "stream") else Batched(engine)


class Batched:
    """The stream of an engine that only generates lists: one `generate` at a time, in a thread, over everything
    added since the last one began (so the sampler goes on verifying and committing while it runs).

    A stream takes `add(key, request, sampling=None)`; `poll()` returns [(key, completions)] for requests that
    finished (waiting a moment for them when some are unfinished); `unfinished` counts requests not yet returned,
    `samples` the samples they asked for that are not (here a request's all come back at once); `close()` drops
    what has not started and waits for what has."""

    capacity = None  # it says nothing of the engine's

    def __init__(self, engine: Engine):
        self.engine, self.added, self.running = engine, [], None
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="factory-engine")
        self.unfinished = self.samples = 0

    def add(self, key, request: Request, sampling=None) -> None:
        self.added.append((key, request, sampling))
        self.unfinished += 1
        self.samples += request.n

    def poll(self) -> list[tuple]:
        if self.running is None and self.added:
            self.running, self.added = self.thread.submit(self._generate, self.added), []
        if self.running is None:
            return []
        done, _ = wait([self.running], timeout=0.05)
        if not done:
            return []
        (out, asked), self.running = self.running.result(), None
        self.unfinished -= len(out)
        self.samples -= asked
        return out

    def _generate(self, added: list) -> tuple[list[tuple], int]:
        out, asked = [], sum(r.n for _, r, _ in added)
        while added:  # one generate per sampling settings, in the order they were added
            s = added[0][2]
            group, added = [a for a in added if a[2] is s], [a for a in added if a[2] is not s]
            reqs = [r for _, r, _ in group]
            t = time.perf_counter()
            comps = self.engine.generate(reqs, s) if s is not None else self.engine.generate(reqs)
            comps = share_time(comps, time.perf_counter() - t)
            out += [(key, c) for (key, _, _), c in zip(group, comps, strict=True)]
        return out, asked

    def close(self) -> None:
        self.added = []
        self.thread.shutdown(wait=True)
