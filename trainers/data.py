"""The store as training data: `datasets.Dataset`s in the formats TRL's trainers read.

- SFT: each example's `messages` becomes a conversational prompt (every message before the reply) and completion
  (the assistant's reply), so TRL tokenizes both with the model's chat template and puts the loss on the reply only.
- GRPO: prompts from the store (a SQL condition, and a window on each prompt's pass rate over its stored candidates)
  or from a prompt source, written with the recipe's template and system message like generation writes them. The
  `task` and `reference` columns go to the reward functions.
"""

from __future__ import annotations

import json
from pathlib import Path

from factory import policies
from factory.errors import FactoryError
from factory.recipe import PromptConfig
from factory.sources import Prompt, make
from factory.store import StoreReader
from trainers.recipe import GRPORecipe, SFTData


def sft_rows(db: Path, data: SFTData) -> list[dict]:
    """The candidates `data.policy` picks (after `data.where`) within the budget, in store order or shuffled, as
    {prompt, completion} message lists."""
    return [_sft_row(p) for p in sft_picks(db, data)]


def sft_picks(db: Path, data: SFTData) -> list[policies.Pick]:
    picks = [  # every chat ends with the reply
        p for p in policies.pick(db, data.policy, data.where, data.shuffle) if p.messages[-1]["role"] == "assistant"
    ]
    picks = policies.budget(picks, data.limit, data.tokens)
    if not picks:
        picked = f" matching {data.where!r}" if data.where else ""
        raise FactoryError(
            f"no examples{picked} under policy {data.policy!r} in {db}; see what it holds by source and task:"
            f" `factory stats --db {db}`"
        )
    return picks


def _sft_row(p: policies.Pick) -> dict:
    return {"prompt": p.messages[:-1], "completion": p.messages[-1:]}


def sft_dataset(db: Path, data: SFTData, record: Path | None = None):
    """The SFT dataset; with `record`, a JSON file saying what it holds (policy, examples, reply tokens, how many
    the verifier accepted), which `factory ablate` reports as each arm's budget spent."""
    from datasets import Dataset

    picks = sft_picks(db, data)
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        tokens, accepted = sum(p.n_tokens for p in picks), sum(bool(p.accepted) for p in picks)
        facts = {"policy": data.policy, "where": data.where, "shuffle": data.shuffle, "examples": len(picks)}
        record.write_text(json.dumps(facts | {"tokens": tokens, "accepted": accepted}) + "\n")
    return Dataset.from_list([_sft_row(p) for p in picks])


def store_prompts(db: Path, recipe: GRPORecipe) -> list[tuple[Prompt, float | None]]:
    """(prompt, pass rate or None when never sampled) for the store's prompts the recipe picks."""
    p = recipe.prompts
    with StoreReader(db) as store:
        rows = store.prompts_by_pass_rate(p.where, p.pass_rate, p.limit)
    out = []
    for source, task, text, reference, metadata, rate in rows:
        prompt = make(source, task, text, json.loads(reference or "{}"), json.loads(metadata or "{}"))
        out.append((prompt, rate))
    return out


def grpo_prompts(db: Path | None, recipe: GRPORecipe) -> list[Prompt]:
    if recipe.prompts.kind == "source":
        from factory.sources import load

        prompts = load(recipe.source, recipe.prompts.limit)
    else:
        if db is None:
            raise FactoryError("prompts.kind is store: name the store with --db")
        prompts = [prompt for prompt, _ in store_prompts(db, recipe)]
    if not prompts:
        raise FactoryError(
            f"recipe {recipe.name}: no prompts match prompts.where={recipe.prompts.where!r} and"
            f" prompts.pass_rate={recipe.prompts.pass_rate}; see the pass rates with `factory export --what prompts"
            f" --columns prompt_id,pass_rate --out pass_rates.jsonl --db {db}`"
        )
    return prompts


def render(cfg: PromptConfig, prompt: Prompt, chat: bool) -> list[dict] | str:
    """The prompt as generation writes it: messages for a chat model, plain text for a model with no chat template."""
    user = cfg.template.replace("{prompt}", prompt.prompt)
    if chat:
        system = [{"role": "system", "content": cfg.system}] if cfg.system else []
        return [*system, {"role": "user", "content": user}]
    return f"{cfg.system}\n\n{user}" if cfg.system else user


def grpo_rows(prompts: list[Prompt], cfg: PromptConfig, chat: bool) -> list[dict]:
    # reference as JSON text: its shape differs by task, and an Arrow column wants one type
    return [
        {"prompt": render(cfg, p, chat), "task": p.task, "reference": json.dumps(p.reference), "prompt_id": p.prompt_id}
        for p in prompts
    ]


def grpo_dataset(prompts: list[Prompt], cfg: PromptConfig, chat: bool):
    from datasets import Dataset

    return Dataset.from_list(grpo_rows(prompts, cfg, chat))
