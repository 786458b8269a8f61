"""Trainer recipes: flat YAML parsed into dataclasses, checked the way generation recipes are.

`load(SFTRecipe, path)` reads a file, applies `key=value` overrides, rejects unknown keys and wrong types, and lists
every problem at once (field, value, what is allowed) before anything is loaded or trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from factory.errors import FactoryError
from factory.models import DEFAULT_MODEL
from factory.policies import condition
from factory.recipe import PromptConfig, SourceConfig, VerifyConfig, build, check_families, read
from filters.language import LanguageConfig
from filters.registry import REWARDS as STAGE_REWARDS
from filters.registry import is_user, user_problem
from filters.sandbox import Limits

PRECISIONS = ("auto", "fp32", "bf16")
REWARDS = STAGE_REWARDS  # each built on a stage's check (filters.registry, trainers.rewards)
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo")  # TRL's GRPOConfig.loss_type
SCALE_REWARDS = ("group", "batch", "none")


@dataclass
class TrainConfig:
    """The loop, shared by SFT and GRPO: what becomes TRL's config (a transformers TrainingArguments)."""

    max_steps: int = -1  # optimizer steps; -1: run `epochs` over the data
    epochs: float = 1.0
    batch_size: int = 8  # sequences (GRPO: completions) per device per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    learning_rate: float = 2.0e-5
    lr_scheduler: str = "linear"
    warmup: float = 0.0  # linear warmup: steps, or a fraction (< 1) of all steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # transformers' optimizer by name: adamw_torch keeps two states a weight (checkpoints three times the model's
    # size); adafactor, sgd (none), adamw_bnb_8bit (a GPU with bitsandbytes) keep less
    optim: str = "adamw_torch"
    precision: str = "auto"  # auto: bf16 on a GPU that has it, fp32 elsewhere (a CPU is slow at bf16)
    gradient_checkpointing: bool = False  # trade compute for memory (long sequences, big models)
    logging_steps: int = 1
    save_steps: int = 500  # a checkpoint (model, optimizer, scheduler, RNG) every this many steps
    save_total_limit: int | None = 2  # older checkpoints are deleted
    resume: bool = True  # continue from the last checkpoint in the output folder, if there is one
    seed: int = 0
    report_to: list[str] = field(default_factory=list)  # e.g. [wandb, tensorboard]; the metrics file is always kept


@dataclass
class SFTData:
    policy: str = "verified"  # which candidates to train on: a keep-policy of factory/policies.py, e.g. all
    # SQL condition on the candidates (the examples' columns, and accepted, reason, pass_rate, ...: factory/policies.py)
    # before the policy picks, e.g. "task = 'math' AND n_tokens < 2048"
    where: str | None = None
    limit: int | None = None  # at most this many examples (in store order, or shuffled)
    tokens: int | None = None  # at most this many reply tokens in all (as sampled: candidates.n_tokens)
    shuffle: int | None = None  # a seed: take the policy's picks in an order shuffled by it; null: store order


@dataclass
class SFTSettings:
    max_length: int = 1024  # tokens per sequence (prompt and reply); longer ones are cut
    packing: bool = False  # several examples per sequence of max_length (best-fit), no padding
    completion_only_loss: bool = True  # loss on the assistant's reply only, not on the prompt
    chat_template: str | None = None  # a tokenizer folder or .jinja file, for a base model that has none


@dataclass
class SFTRecipe:
    model: str = DEFAULT_MODEL  # the bundled model's name, a folder (a trained model too), or a hub id
    data: SFTData = field(default_factory=SFTData)
    sft: SFTSettings = field(default_factory=SFTSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str = ""  # checkpoints, metrics and the final model; default data/runs/<name> (--out wins)
    name: str = ""  # defaults to the file's stem

    def problems(self) -> list[str]:
        p = _train_problems(self.train)
        for key in ("limit", "tokens"):
            if getattr(self.data, key) is not None and getattr(self.data, key) < 1:
                p.append(f"data.{key}: {getattr(self.data, key)} must be >= 1 (or null: all)")
        try:
            condition(self.data.policy)
        except FactoryError as e:
            p.append(f"data.policy: {e}")
        if self.sft.max_length < 16:
            p.append(f"sft.max_length: {self.sft.max_length} must be >= 16 tokens")
        return p


@dataclass
class PromptsConfig:
    kind: str = "store"  # store: the store's prompts (where, pass_rate); source: the recipe's `source` section
    where: str | None = None  # SQL condition on the store's `prompts` and their pass_rate, e.g. "task = 'math'"
    # [low, high]: prompts whose pass rate over stored candidates lies in the window (inclusive); null: any prompt,
    # sampled or not. Prompts every sample solves (1.0) or none does (0.0) give GRPO no signal
    pass_rate: list[float] | None = None
    limit: int | None = None


@dataclass
class GRPOSettings:
    num_generations: int = 8  # group size: completions per prompt, whose rewards are compared
    beta: float = 0.0  # KL coefficient against the starting model (R1: 0.001; 0 loads no reference model)
    epsilon: float = 0.2  # clipping of the policy ratio
    epsilon_high: float | None = None  # upper clip when it differs (DAPO's clip-higher: 0.28)
    loss_type: str = "dapo"  # grpo | dr_grpo | dapo | bnpo | cispo | sapo (TRL's)
    scale_rewards: str = "group"  # group | batch | none (Dr. GRPO: none)
    num_iterations: int = 1  # updates per generated batch (μ in the GRPO paper)
    temperature: float = 1.0
    top_p: float = 1.0
    max_prompt_length: int = 512  # longer prompts are left out
    max_completion_length: int = 256
    mask_truncated_completions: bool = False  # DAPO: cut-off completions give no loss
    use_vllm: bool = False  # generate with vLLM (GPU): colocated in the training process
    vllm_memory_utilization: float = 0.3
    log_completions: bool = False  # print a table of sampled completions at each logging step


@dataclass
class GRPORecipe:
    model: str = DEFAULT_MODEL  # R1-Zero: a base model; otherwise an instruct or SFT'd (cold-start) model
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    source: SourceConfig = field(default_factory=SourceConfig)  # when prompts.kind is source
    prompt: PromptConfig = field(default_factory=PromptConfig)  # template, system and think, as in generation
    rewards: list[str] = field(default_factory=lambda: ["accuracy", "format"])
    reward_weights: list[float] | None = None  # one per reward; null: all 1
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)  # target of the language reward
    verify: VerifyConfig = field(default_factory=VerifyConfig)  # accuracy: worker processes (0: one per core)
    sandbox: Limits = field(default_factory=Limits)  # code answers run against their tests in the sandbox
    out: str = ""
    name: str = ""

    def problems(self) -> list[str]:
        p = _train_problems(self.train)
        g, pr = self.grpo, self.prompts
        if pr.kind not in ("store", "source"):
            p.append(f"prompts.kind: {pr.kind!r} is not one of store, source")
        if pr.pass_rate is not None and not (len(pr.pass_rate) == 2 and 0 <= pr.pass_rate[0] <= pr.pass_rate[1] <= 1):
            p.append(f"prompts.pass_rate: {pr.pass_rate} must be [low, high] with 0 <= low <= high <= 1")
        if pr.kind == "source" and self.source.kind == "reasoning_gym":
            check_families(self.source, p)
        for i, name in enumerate(self.rewards):
            if is_user(name) and (problem := user_problem(name)):
                p.append(f"rewards[{i}]: {problem}")
            elif not is_user(name) and name not in REWARDS:
                p.append(f"rewards[{i}]: {name!r} is not a reward; allowed: {', '.join(REWARDS)}, or module:function")
        if not self.rewards:
            p.append(f"rewards: name at least one of {', '.join(REWARDS)}")
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            p.append(f"reward_weights: {len(self.reward_weights)} weights for {len(self.rewards)} rewards")
        if g.num_generations < 2:
            p.append(f"grpo.num_generations: {g.num_generations} must be >= 2 (a group compares its completions)")
        elif (self.train.batch_size * self.train.grad_accum) % g.num_generations:
            p.append(
                f"train.batch_size x train.grad_accum ({self.train.batch_size} x {self.train.grad_accum}) must be a"
                f" multiple of grpo.num_generations ({g.num_generations}): each step takes whole groups"
            )
        if g.loss_type not in LOSS_TYPES:
            p.append(f"grpo.loss_type: {g.loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
        if g.scale_rewards not in SCALE_REWARDS:
            p.append(f"grpo.scale_rewards: {g.scale_rewards!r} is not one of {', '.join(SCALE_REWARDS)}")
        if g.beta < 0 or g.epsilon <= 0 or g.temperature <= 0:
            p.append("grpo.beta must be >= 0, grpo.epsilon and grpo.temperature > 0")
        if g.max_completion_length < 1:
            p.append(f"grpo.max_completion_length: {g.max_completion_length} must be >= 1")
        if "{prompt}" not in self.prompt.template:
            p.append(f"prompt.template: {self.prompt.template!r} must contain {{prompt}}")
        return p


def _train_problems(t: TrainConfig) -> list[str]:
    p = []
    if t.precision not in PRECISIONS:
        p.append(f"train.precision: {t.precision!r} is not one of {', '.join(PRECISIONS)}")
    for name in ("batch_size", "grad_accum", "logging_steps", "save_steps"):
        if getattr(t, name) < 1:
            p.append(f"train.{name}: {getattr(t, name)} must be >= 1")
    if t.max_steps == 0 or t.max_steps < -1:
        p.append(f"train.max_steps: {t.max_steps} must be >= 1, or -1 to run train.epochs")
    if t.learning_rate <= 0:
        p.append(f"train.learning_rate: {t.learning_rate} must be > 0")
    if t.optim != TrainConfig.optim:  # transformers (and torch) imported only to check one the user chose
        from transformers.training_args import OptimizerNames

        names = [o.value for o in OptimizerNames]
        if t.optim not in names:
            p.append(f"train.optim: {t.optim!r} is not one of transformers' optimizers ({', '.join(names[:6])}, ...)")
    return p


def load(cls, path: str | Path, overrides: list[str] = ()):
    """Read a trainer recipe of type `cls` (SFTRecipe, GRPORecipe); raise FactoryError listing every problem."""
    return build(cls, read(path, overrides), str(path), lambda r, problems: problems.extend(r.problems()))
