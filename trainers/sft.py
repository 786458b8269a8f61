"""Supervised fine-tuning on the store's verified examples, with TRL's SFTTrainer.

Each example's messages go through the model's chat template; the loss is on the assistant's reply only (the
prompt's labels are -100). Packing, gradient accumulation, checkpoints and resuming are TRL's and transformers'.
The output folder ends up holding the trained model, which transformers, vLLM and `factory generate` load.

Run: factory train sft recipes/sft_tiny.yaml --db data/factory.duckdb [--out data/runs/sft_tiny]
"""

from __future__ import annotations

import logging
from pathlib import Path

from trainers.common import fit, loop_args, metrics_file, model_path, out_dir, tokenizer, trl
from trainers.data import sft_dataset
from trainers.recipe import SFTRecipe, load

log = logging.getLogger(__name__)
DATA_RECORD = "data.json"  # what the model trained on: policy, examples, reply tokens (trainers.data.sft_dataset)


def sft_config(recipe: SFTRecipe, out: Path):
    s = recipe.sft
    return trl().SFTConfig(
        **loop_args(recipe.train, out),
        max_length=s.max_length,
        packing=s.packing,
        packing_strategy="bfd",  # best-fit, examples whole; transformers masks across them from position_ids
        completion_only_loss=s.completion_only_loss,
        chat_template_path=s.chat_template,
        dataset_num_proc=None,
    )


def build(recipe: SFTRecipe, db: Path, out: Path):
    """The SFTTrainer for `recipe` on the store `db`, writing to `out` (not trained yet)."""
    path = model_path(recipe.model)
    trainer = trl().SFTTrainer(
        model=path,
        args=sft_config(recipe, out),
        train_dataset=sft_dataset(db, recipe.data, out / DATA_RECORD),
        processing_class=tokenizer(path),
        callbacks=[metrics_file(out)],
    )
    log.info("SFT on %d examples from %s: %s -> %s", len(trainer.train_dataset), db, recipe.model, out)
    return trainer


def train(recipe: SFTRecipe, db: Path, out: Path | None = None):
    """Build and run the trainer; return it (its `state.log_history` holds every logged metric)."""
    out = out_dir(recipe, out)
    trainer = build(recipe, db, out)
    fit(trainer, out, recipe.train.resume)
    return trainer


def run(recipe_path: Path, db: Path, out: Path | None = None, overrides: list[str] = ()) -> Path:
    """`factory train sft RECIPE`: returns the output folder (the trained model)."""
    recipe = load(SFTRecipe, recipe_path, overrides)
    trainer = train(recipe, Path(db), out)
    return Path(trainer.args.output_dir)
