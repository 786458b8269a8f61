"""Generation engines: vLLM (the default), transformers (a fallback), and any OpenAI-compatible server.

Each engine takes chat requests (messages, n) and returns n completions per request. `import factory` imports
none of their libraries; an engine imports its own when it is built and says which extra to install if missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from factory.errors import FactoryError
from factory.recipe import Recipe

log = logging.getLogger(__name__)


@dataclass
class Request:
    messages: list[dict]
    n: int


@dataclass
class Completion:
    text: str
    n_tokens: int
    finish_reason: str  # stop | length
    n_prompt_tokens: int = 0


def build(recipe: Recipe, model: str, seed: int):
    """The recipe's engine, loaded and ready; `model` is a resolved path or name, `seed` seeds the engine."""
    kind = recipe.engine.kind
    if kind == "vllm":
        from factory.engines.vllm_engine import VLLMEngine as cls
    elif kind == "transformers":
        from factory.engines.hf_engine import TransformersEngine as cls
    else:
        from factory.engines.openai_engine import OpenAIEngine as cls
    try:
        return cls(model, recipe.sampling, recipe.engine, seed)
    except (OSError, ValueError, RuntimeError) as e:  # a model that is not there, or does not fit
        log.debug("engine start failed", exc_info=True)
        raise FactoryError(f"the {kind} engine could not load {model!r}: {e}") from None


def chat_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of the chat template applied to `messages`, ready for the assistant's turn."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)
