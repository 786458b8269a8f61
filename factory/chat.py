"""How a prompt is put to the model and its answer kept: the chat messages, the reply as stored for training, and
the `examples` row of an accepted candidate."""

from __future__ import annotations

from factory.recipe import Recipe
from factory.sources import Prompt
from factory.store import now


def messages(recipe: Recipe, p: Prompt) -> list[dict]:
    user = recipe.prompt.template.replace("{prompt}", p.prompt)
    system = [{"role": "system", "content": recipe.prompt.system}] if recipe.prompt.system else []
    return [*system, {"role": "user", "content": user}]


def assistant_text(text: str, think: bool) -> str:
    """The reply as stored for training: templates that open <think> in the prompt leave it out of the text."""
    text = text.strip()
    if think and "</think>" in text and "<think>" not in text:
        text = "<think>\n" + text
    return text


def example(recipe: Recipe, p: Prompt, run_id: str, cid: str, text: str, n_tokens: int) -> dict:
    """The `examples` row of an accepted candidate: the chat as SFT reads it."""
    reply = assistant_text(text, recipe.prompt.think)
    return {
        "example_id": "ex-" + cid,
        "candidate_id": cid,
        "prompt_id": p.prompt_id,
        "run_id": run_id,
        "messages": [*messages(recipe, p), {"role": "assistant", "content": reply}],
        "task": p.task,
        "source": p.source,
        "n_tokens": n_tokens,
        "created_at": now(),
    }
