"""`factory train sft|grpo|moe RECIPE [--db PATH] [--out DIR]`: pick the trainer and run its recipe.

Each trainer module has `run(recipe_path, db, out) -> Path` and is imported only here, when asked for, so
`import factory` stays free of torch's training stack and TRL.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from factory.errors import FactoryError

KINDS = ("sft", "grpo", "moe")


def train(kind: str, recipe: Path, db: Path, out: Path | None, overrides: list[str] = ()) -> Path:
    """Run the `kind` trainer on `recipe` over the store `db`; return the folder that holds the trained model.
    `overrides` are `key=value` settings on top of the recipe's (sft and grpo)."""
    if kind not in KINDS:
        raise FactoryError(f"factory train {kind!r}: the trainers are {', '.join(KINDS)}")
    if not Path(recipe).exists():
        raise FactoryError(f"recipe not found: {recipe}")
    logging.getLogger("trainers").setLevel(logging.INFO)  # what is trained on, resuming, where the model went
    module = importlib.import_module(f"trainers.{kind}")
    if overrides and kind == "moe":
        raise FactoryError("factory train moe takes no --set: edit the recipe")
    extra = {"overrides": list(overrides)} if overrides else {}
    return module.run(Path(recipe), Path(db), Path(out) if out else None, **extra)
