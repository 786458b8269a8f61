"""Train a DeepSeekMoE-style mixture-of-experts model with next-token loss on the store's examples.

Run: factory train moe recipes/moe_tiny.yaml --db data/factory.duckdb [--out DIR]   (trainers.moe.run(recipe, db, out))

The model is transformers' DeepseekV3ForCausalLM at a small size (trainers/moe_model.py): dense first layers,
then MoE layers with shared and fine-grained routed experts, top-k sigmoid routing, DeepSeek-V3's
auxiliary-loss-free balancing (a per-expert selection bias nudged toward balance after every step) and an optional
small sequence-wise balance loss. Examples (`examples.messages`) are rendered with the tokenizer's chat template,
joined into one token stream and cut into random windows (nanoGPT-style packing: no padding, every token counts).

Each logged step prints loss, balance (max/mean load, coefficient of variation), bias norm and tokens per expert;
every step goes to `metrics.jsonl` in the output folder, next to the saved model (`save_pretrained` + tokenizer),
which `AutoModelForCausalLM.from_pretrained`, vLLM and a `factory generate` recipe's `model:` can load.

Every `train.save_every` steps the model, optimizer, step and data sampler's state go to `OUT/resume.pt` (written
whole, then moved into place); the same command run again after a crash or ^C continues from there, with the same
batches and the same losses as a run that was never stopped, and keeps the metrics of the steps before it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from factory import recipe as recipes
from factory.errors import FactoryError
from trainers.moe_model import (
    MoEModelConfig,
    balance_loss,
    bias_norm,
    build_model,
    load_stats,
    patch_moe,
    update_bias,
)

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    tokenizer: str = "smollm2-135m-instruct"  # a model name factory.models.resolve knows, or a folder
    where: str | None = None  # SQL condition on the examples table, e.g. "task = 'math'"
    seq_len: int = 128  # tokens per training window
    limit: int = 0  # at most this many examples (0: all)


@dataclass
class TrainConfig:
    steps: int = 60
    batch_size: int = 8
    lr: float = 3e-3
    min_lr: float = 3e-4  # cosine decay floor
    warmup: int = 5
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    bias_speed: float = 0.001  # DeepSeek-V3's bias update speed gamma; 0 turns the aux-loss-free balancing off
    balance_alpha: float = 0.0  # sequence-wise balance loss weight; DeepSeek-V3 uses 0.0001
    seed: int = 0
    log_every: int = 10
    save_every: int = 20  # steps between resumable checkpoints (OUT/resume.pt); 0: none
    device: str = "auto"  # auto: cuda if present, else cpu
    dtype: str = "float32"  # float32 or bfloat16 (autocast on cuda)


@dataclass
class MoERecipe:
    model: MoEModelConfig = field(default_factory=MoEModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str = "data/checkpoints/moe"
    name: str = ""


# ---- recipe -----------------------------------------------------------------------------------------------------


def load_recipe(path: str | Path, overrides: list[str] = ()) -> MoERecipe:
    """Flat YAML to dataclasses; every unknown key and wrong type is reported at once (field, value, allowed)."""
    return recipes.build(MoERecipe, recipes.read(path, overrides), str(path), _check)


def _check(r: MoERecipe, problems: list[str]) -> None:
    m, t = r.model, r.train
    rules = [
        (1 <= m.top_k <= m.n_routed, f"model.top_k: {m.top_k} must be in 1..n_routed ({m.n_routed})"),
        (m.n_routed >= 2, f"model.n_routed: {m.n_routed} must be >= 2"),
        (0 <= m.first_k_dense < m.layers, f"model.first_k_dense: {m.first_k_dense} must be in 0..layers-1"),
        (m.n_shared >= 0, f"model.n_shared: {m.n_shared} must be >= 0"),
        (r.data.seq_len >= 8, f"data.seq_len: {r.data.seq_len} must be >= 8"),
        (t.steps >= 1 and t.batch_size >= 1, "train.steps and train.batch_size must be >= 1"),
        (t.save_every >= 0, f"train.save_every: {t.save_every} must be >= 0"),
        (t.bias_speed >= 0 and t.balance_alpha >= 0, "train.bias_speed and train.balance_alpha must be >= 0"),
        (t.device in ("auto", "cpu", "cuda"), f"train.device: {t.device!r} is not one of auto, cpu, cuda"),
        (t.dtype in ("float32", "bfloat16"), f"train.dtype: {t.dtype!r} is not one of float32, bfloat16"),
    ]
    problems += [msg for ok, msg in rules if not ok]


# ---- data -------------------------------------------------------------------------------------------------------


def load_tokens(db: Path, cfg: DataConfig, tokenizer):
    """All selected examples rendered with the chat template, as one 1-D token tensor."""
    import torch

    from factory.store import StoreReader

    with StoreReader(db) as store:
        rows = store.messages(cfg.where, cfg.limit, order="id")
    if not rows:
        picked = f" matching data.where {cfg.where!r}" if cfg.where else ""
        raise FactoryError(f"{db}: no examples{picked} to train on; run `factory generate` first")
    ids: list[int] = []
    for messages in rows:
        ids += tokenizer.apply_chat_template(list(messages), tokenize=True, return_dict=False)
    log.info("%d examples, %d tokens", len(rows), len(ids))
    return torch.tensor(ids, dtype=torch.long)


def batches(tokens, batch_size: int, seq_len: int, generator):
    """Endless random windows of seq_len + 1 tokens (inputs and shifted targets)."""
    import torch

    while len(tokens) < seq_len + 2:  # a tiny store: repeat it
        tokens = torch.cat([tokens, tokens])
    while True:
        start = torch.randint(len(tokens) - seq_len - 1, (batch_size,), generator=generator)
        yield torch.stack([tokens[s : s + seq_len + 1] for s in start.tolist()])


# ---- training ---------------------------------------------------------------------------------------------------


def lr_at(step: int, t: TrainConfig) -> float:
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    frac = (step - t.warmup) / max(1, t.steps - t.warmup)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1 + math.cos(math.pi * frac))


def train(model, tokens, recipe: MoERecipe, metrics_path: Path | None = None, resume: Path | None = None) -> list[dict]:
    """Train `model` in place on `tokens`; return one metrics dict per step (also appended to metrics_path). With
    `resume`, continue from the checkpoint there if one was saved, and save one every `save_every` steps."""
    import torch

    t = recipe.train
    device = next(model.parameters()).device
    blocks = patch_moe(model, balance_loss=t.balance_alpha > 0)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(t.seed)
    start = _restore(resume, recipe, model, opt, gen) if resume else 0
    data = batches(tokens, t.batch_size, recipe.data.seq_len, gen)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.dtype == "bfloat16")
    if metrics_path:  # the steps a resumed run did before its checkpoint, and none after
        kept = metrics_path.read_text().splitlines()[:start] if start and metrics_path.exists() else []
        metrics_path.write_text("".join(line + "\n" for line in kept))
    history, sink = [], metrics_path.open("a") if metrics_path else None
    model.train()
    for step in range(start, t.steps):
        begin = time.perf_counter()
        batch = next(data).to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, t)
        with autocast:
            loss = model(input_ids=batch, labels=batch).loss  # transformers shifts the labels
            aux = balance_loss(blocks)
            total = loss + t.balance_alpha * aux if aux is not None else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        loads = update_bias(blocks, t.bias_speed)
        aux = None if aux is None else round(aux.item(), 6)
        row = {"step": step + 1, "loss": round(loss.item(), 4), "balance_loss": aux}
        row |= load_stats(loads) | {"bias_norm": round(bias_norm(blocks), 5), "lr": lr_at(step, t)}
        row |= {"tokens_per_s": round(batch.numel() / (time.perf_counter() - begin), 1)}
        row["tokens_per_expert"] = loads.long().tolist()  # [moe layer][expert]
        history.append(row)
        if sink:
            sink.write(json.dumps(row) + "\n")
            sink.flush()
        if resume and t.save_every and (step + 1) % t.save_every == 0 and step + 1 < t.steps:
            _save(resume, recipe, model, opt, gen, step + 1)
        if step % t.log_every == 0 or step + 1 == t.steps:
            log.info(
                "step %d/%d loss %.4f max/mean %.2f cv %.3f bias %.4f %.0f tok/s experts %s",
                step + 1,
                t.steps,
                row["loss"],
                row["max_over_mean"],
                row["cv"],
                row["bias_norm"],
                row["tokens_per_s"],
                row["tokens_per_expert"][-1],
            )
    if sink:
        sink.close()
    return history


def _save(path: Path, recipe: MoERecipe, model, opt, gen, step: int) -> None:
    import torch

    state = {
        "step": step,
        "recipe": dataclasses.asdict(recipe),
        "model": model.state_dict(),
        "opt": opt.state_dict(),
        "gen": gen.get_state(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # whole, or the previous one


def _restore(path: Path, recipe: MoERecipe, model, opt, gen) -> int:
    """Load the checkpoint at `path` into the model, optimizer and sampler; the step to go on from (0: none)."""
    import torch

    if not path.exists():
        return 0
    state = torch.load(path, map_location=next(model.parameters()).device, weights_only=False)
    if state["recipe"] != dataclasses.asdict(recipe):
        raise FactoryError(f"{path} was saved by another recipe: delete it to start over, or use another --out")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    gen.set_state(state["gen"])
    log.info("resuming from step %d of %d (%s)", state["step"], recipe.train.steps, path)
    return state["step"]


def run(recipe_path: Path, db: Path, out: Path | None) -> Path:
    """Train the recipe's model on the store `db`; save it (and metrics.jsonl) to `out` or the recipe's `out`."""
    import torch
    from transformers import AutoTokenizer

    from factory.models import resolve

    recipe = load_recipe(recipe_path)
    out = Path(out or recipe.out)
    t = recipe.train
    device = "cuda" if t.device == "auto" and torch.cuda.is_available() else t.device.replace("auto", "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise FactoryError(f"{recipe_path}: train.device is cuda but torch sees no CUDA GPU; set train.device: cpu")
    torch.manual_seed(t.seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve(recipe.data.tokenizer))
    tokens = load_tokens(Path(db), recipe.data, tokenizer)
    model = build_model(recipe.model, tokenizer).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("%s: %.1fM parameters on %s, %d steps, saving to %s", recipe.name, n_params / 1e6, device, t.steps, out)
    out.mkdir(parents=True, exist_ok=True)
    metrics, resume = out / "metrics.jsonl", out / "resume.pt"
    train(model, tokens, recipe, metrics, resume)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "moe_recipe.yaml").write_text(yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))
    resume.unlink(missing_ok=True)  # finished: the next run starts over
    losses = [json.loads(line)["loss"] for line in metrics.read_text().splitlines()]
    log.info("saved %s (loss %.4f -> %.4f); metrics in %s", out, losses[0], losses[-1], metrics)
    return out
