"""GRPO: the filters as rewards (accuracy through the verification workers, code in the sandbox, format, language),
prompts picked from the store by pass rate, and a few steps on the bundled model on the demo store: the rewards are
called and logged, the loss is finite, the weights change and the model is saved."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from conftest import ROOT
from safetensors import safe_open

from factory.errors import FactoryError
from factory.workers import VerifyPool
from filters.language import LanguageConfig
from filters.registry import Settings
from filters.sandbox import Limits
from trainers import grpo
from trainers.common import model_path, read_metrics
from trainers.data import grpo_rows, store_prompts
from trainers.recipe import GRPORecipe, load
from trainers.rewards import accuracy_reward, format_reward, language_reward

RECIPE = ROOT / "recipes" / "grpo_tiny.yaml"
REWARDS = ("accuracy_reward", "format_reward", "language_reward", "brevity_reward")


def brevity(c) -> float:
    """A user's own reward (`test_grpo:brevity` in the recipe), run in the verification workers."""
    return 1.0 if len(c.text) < 40 else 0.5


def reply(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_recipes_load():
    for name in ("grpo_tiny", "grpo_gpu"):
        recipe = load(GRPORecipe, ROOT / "recipes" / f"{name}.yaml")
        assert recipe.name == name and recipe.rewards


def test_recipe_problems_are_listed_at_once():
    bad = ["grpo.num_generations=3", "rewards=[accuracy,speed]", "grpo.loss_type=ppo", "prompts.pass_rate=[0.9,0.1]"]
    with pytest.raises(FactoryError) as e:
        load(GRPORecipe, RECIPE, bad)
    msg = str(e.value)
    for part in ("multiple of grpo.num_generations (3)", "rewards[1]: 'speed'", "grpo.loss_type: 'ppo'",
                 "prompts.pass_rate: [0.9, 0.1]", "reward_weights: 3 weights for 2 rewards"):  # fmt: skip
        assert part in msg, msg


def test_accuracy_reward_uses_the_verifiers():
    math_ref = json.dumps({"answer": "7"})
    code_ref = json.dumps({"test": "def check(candidate):\n    assert candidate(2, 3) == 5\n", "entry_point": "add"})
    completions = [reply("3 + 4 = 7"), reply("8"), reply("```python\ndef add(a, b):\n    return a + b\n```"),
                   reply("```python\ndef add(a, b):\n    return a - b\n```"), reply("Paris is lovely.")]  # fmt: skip
    broken = json.dumps(
        {"test": "def check(candidate):\n    assert candidate(2, 3) == helper(5)\n", "entry_point": "add"}
    )
    completions.append(completions[2])  # a right answer to tests that use a name nothing defines
    tasks = ["math", "math", "code", "code", "general", "code"]
    refs = [math_ref, math_ref, code_ref, code_ref, json.dumps({}), broken]
    lim = Limits(wall_s=20, cpu_s=2, memory_mb=256, processes=16, file_mb=4, output_kb=64)  # room on a busy machine
    with VerifyPool(workers=1, timeout=30, settings=Settings(sandbox=lim)) as pool:
        got = accuracy_reward(completions, tasks, refs, pool=pool, think=False)
    # the general prompt has no verifier, the last code prompt broken tests: neither is this reward's to judge
    assert got == [1.0, 0.0, 1.0, 0.0, None, None]


def test_format_and_language_rewards():
    stop = {2}
    texts = ["<think>3 and 4 make 7.</think>\nThe answer is 7.", "<think>3 and 4 make", "The answer is 7."]
    ids = [[5, 6, 2], [5, 6, 7], [5, 2]]  # the second ran out of tokens: cut off
    assert format_reward([reply(t) for t in texts], ids, think=True, stop_ids=stop) == [1.0, 0.0, 0.0]
    assert format_reward([reply(texts[2])], [[5, 2]], think=False, stop_ids=stop) == [1.0]
    mixed = "We add the numbers first. 然后我们把两个数字相加得到结果 and then the answer is seven."
    en, zh = language_reward([reply("We add the numbers and get seven."), reply(mixed)], language=LanguageConfig())
    assert en == 1.0 and 0 < zh < 1


@pytest.mark.slow
def test_prompts_by_pass_rate(demo_store):
    recipe = load(GRPORecipe, RECIPE, ["prompts.pass_rate=[0.0,0.0]", "prompts.limit=null"])
    never = store_prompts(demo_store, recipe)
    recipe.prompts.pass_rate = None
    every = store_prompts(demo_store, recipe)
    assert never and all(rate == 0.0 for _, rate in never) and len(every) > len(never)
    for where, n in (("task = 'math'", len(every)), ("p.task = 'math'", len(every)), ("task = 'code'", 0)):
        recipe.prompts.where = where  # the columns by name, as an SFT recipe's `where`; `p.` as before still works
        assert len(store_prompts(demo_store, recipe)) == n
    recipe.prompts.where, recipe.prompts.pass_rate = "pass_rate = 0", None
    assert len(store_prompts(demo_store, recipe)) == len(never)
    row = grpo_rows([never[0][0]], recipe.prompt, chat=True)[0]
    assert row["prompt"][-1]["content"].endswith("Give only the final answer.")  # the recipe's template
    assert "reasoning_gym" in json.loads(row["reference"])
    plain = grpo_rows([never[0][0]], recipe.prompt, chat=False)[0]  # a base model with no chat template (R1-Zero)
    assert plain["prompt"] == row["prompt"][-1]["content"]


@pytest.fixture(scope="module")
def trained(demo_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("grpo")
    # 2 prompts x 4 completions a step; completions this short are often cut off, so the format reward varies.
    # sgd keeps no state, where AdamW's would add 1 GB to the checkpoint
    recipe = load(GRPORecipe, RECIPE, ["train.max_steps=2", "prompts.pass_rate=null", "prompts.limit=8",
                                       "rewards=[accuracy,format,language,test_grpo:brevity]",
                                       "reward_weights=[1.0,0.5,0.5,0.1]",
                                       "grpo.max_completion_length=16", "train.learning_rate=1.0e-5",
                                       "train.optim=sgd"])  # fmt: skip
    return out, grpo.train(recipe, demo_store, out)


@pytest.mark.slow
def test_rewards_are_called_and_logged(trained):
    out, trainer = trained
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2
    for h in logs:
        assert math.isfinite(h["loss"])
        for name in REWARDS:
            assert 0.0 <= h[f"rewards/{name}/mean"] <= 1.0
        assert h["rewards/brevity_reward/mean"] >= 0.5  # the user's numbers, not a verdict's 0 or 1
    on_disk = [m for m in read_metrics(out) if "loss" in m]
    assert [m["step"] for m in on_disk] == [1, 2] and "rewards/accuracy_reward/mean" in on_disk[0]


@pytest.mark.slow
def test_weights_change_and_the_model_is_saved(trained):
    out, trainer = trained
    name = "model.layers.0.self_attn.q_proj.weight"
    with safe_open(f"{model_path('smollm2-135m-instruct')}/model.safetensors", "pt") as base:
        before = base.get_tensor(name).float()
    after = dict(trainer.model.named_parameters())[name].detach().float()
    assert not torch.equal(before, after)
    assert (out / "config.json").exists() and (out / "checkpoint-2").is_dir()
    assert os.path.samefile(out / "model.safetensors", out / "checkpoint-2" / "model.safetensors")  # written once
