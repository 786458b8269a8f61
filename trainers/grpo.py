"""GRPO on verifiable prompts, with TRL's GRPOTrainer and rewards from the filters (trainers/rewards.py).

Prompts come from the store (a SQL condition, and a window on each prompt's pass rate: prompts every sample
solves, or none does, give a group no signal) or from a prompt source. Each prompt gets `num_generations`
completions; their rewards (accuracy, format, language consistency) are compared within the group. Group size, KL
coefficient, clipping, loss type and temperature are recipe settings. Started from a base model, this is R1-Zero.

Run: factory train grpo recipes/grpo_tiny.yaml --db data/factory.duckdb [--out data/runs/grpo_tiny]
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from factory.workers import VerifyPool
from filters.registry import Settings, is_user
from trainers.common import fit, loop_args, metrics_file, model_path, out_dir, tokenizer, trl
from trainers.data import grpo_dataset, grpo_prompts, render
from trainers.recipe import GRPORecipe, load
from trainers.rewards import reward_functions

log = logging.getLogger(__name__)


def grpo_config(recipe: GRPORecipe, out: Path):
    g = recipe.grpo
    return trl(vllm=g.use_vllm).GRPOConfig(
        **loop_args(recipe.train, out),
        num_generations=g.num_generations,
        beta=g.beta,
        epsilon=g.epsilon,
        epsilon_high=g.epsilon_high,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        num_iterations=g.num_iterations,
        temperature=g.temperature,
        top_p=g.top_p,
        max_completion_length=g.max_completion_length,
        mask_truncated_completions=g.mask_truncated_completions,
        reward_weights=recipe.reward_weights,
        use_vllm=g.use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=g.vllm_memory_utilization,
        log_completions=g.log_completions,
    )


def _fits(tok, prompt, chat: bool, limit: int) -> bool:
    if chat:
        ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    else:
        ids = tok(prompt)["input_ids"]
    return len(ids) <= limit


def build(recipe: GRPORecipe, db: Path | None, out: Path, pool: VerifyPool | None):
    """The GRPOTrainer for `recipe`, its accuracy reward judged by `pool` (not trained yet)."""
    path = model_path(recipe.model)
    tok = tokenizer(path)
    chat = bool(tok.chat_template)  # a base model without one gets plain-text prompts (R1-Zero's template)
    prompts = grpo_prompts(db, recipe)
    kept = [p for p in prompts if _fits(tok, render(recipe.prompt, p, chat), chat, recipe.grpo.max_prompt_length)]
    if len(kept) < len(prompts):
        log.warning("left out %d prompts longer than grpo.max_prompt_length", len(prompts) - len(kept))
    stop_ids: set[int] = set()  # filled from the trainer below: the tokens that end a completion
    rewards = reward_functions(
        recipe.rewards, pool=pool, think=recipe.prompt.think, stop_ids=stop_ids, language=recipe.language
    )
    trainer = trl(vllm=recipe.grpo.use_vllm).GRPOTrainer(
        model=path,
        reward_funcs=rewards,
        args=grpo_config(recipe, out),
        train_dataset=grpo_dataset(kept, recipe.prompt, chat),
        processing_class=tok,
        callbacks=[metrics_file(out)],
    )
    stop_ids.update([*trainer.eos_token_ids, tok.pad_token_id])
    log.info("GRPO on %d prompts, rewards %s: %s -> %s", len(kept), ", ".join(recipe.rewards), recipe.model, out)
    return trainer


def train(recipe: GRPORecipe, db: Path | None, out: Path | None = None):
    """Build and run the trainer; return it (its `state.log_history` holds the rewards and losses per step)."""
    out = out_dir(recipe, out)
    pool = contextlib.nullcontext()  # only the accuracy reward and a user's own need verification workers
    if "accuracy" in recipe.rewards or any(is_user(n) for n in recipe.rewards):
        settings = Settings(sandbox=recipe.sandbox, language=recipe.language)
        workers = recipe.verify.workers or os.cpu_count() or 1
        pool = VerifyPool(workers=workers, timeout=recipe.verify.timeout, settings=settings)
    with pool as judge:
        trainer = build(recipe, db, out, judge)
        fit(trainer, out, recipe.train.resume)
    return trainer


def run(recipe_path: Path, db: Path | None, out: Path | None = None, overrides: list[str] = ()) -> Path:
    """`factory train grpo RECIPE`: returns the output folder (the trained model)."""
    recipe = load(GRPORecipe, recipe_path, overrides)
    trainer = train(recipe, Path(db) if db else None, out)
    return Path(trainer.args.output_dir)
