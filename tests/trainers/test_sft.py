"""SFT on a store made by the demo (the `demo_store` fixture): recipes are checked before anything loads, the prompt
is masked out of the loss, the loss falls and the weights change, a second run resumes from the last checkpoint, and
the saved folder loads in transformers and, evaluated by `factory eval`, in vLLM."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli
from safetensors import safe_open

from factory.errors import FactoryError
from factory.models import resolve
from trainers import sft
from trainers.common import read_metrics
from trainers.data import sft_rows
from trainers.recipe import SFTRecipe, load

RECIPE = ROOT / "recipes" / "sft_tiny.yaml"
# two short examples seen again and again: the loss must fall within a few steps (plain gradient descent on the
# whole set at once; sgd keeps no state, where AdamW's would add 1 GB to each checkpoint)
TINY = ["data.limit=2", "train.batch_size=2", "train.grad_accum=1", "train.learning_rate=1.0e-4",
        "sft.max_length=96", "train.save_steps=3", "train.optim=sgd"]  # fmt: skip
PARAM = "model.layers.0.self_attn.q_proj.weight"


def tiny(*more: str) -> SFTRecipe:
    return load(SFTRecipe, RECIPE, [*TINY, *more])


def test_recipes_load():
    for name in ("sft_tiny", "sft_gpu"):
        recipe = load(SFTRecipe, ROOT / "recipes" / f"{name}.yaml")
        assert recipe.name == name and recipe.train.max_steps != 0


def test_recipe_problems_are_listed_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: x\ntrain: {batch_size: 0, precision: fp8, learning_rate: fast, optim: adam_fast}\n"
                   "sft: {packing: maybe}\n")  # fmt: skip
    with pytest.raises(FactoryError) as e:
        load(SFTRecipe, bad)
    msg = str(e.value)
    for part in ("modle: unknown key", "train.batch_size: 0", "train.precision: 'fp8'", "train.learning_rate: 'fast'",
                 "train.optim: 'adam_fast'", "sft.packing: 'maybe'", str(bad)):  # fmt: skip
        assert part in msg, msg


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("train: {learning_rate: 1e-5}\n")  # YAML 1.1 reads this as a string
    assert load(SFTRecipe, ok).train.learning_rate == 1e-5


def test_unknown_trainer_kind_is_refused():
    res = run_cli("train", "ppo", str(RECIPE), "--db", "/nonexistent.duckdb")
    assert res.returncode == 2 and "sft, grpo, moe" in res.stderr


@pytest.mark.slow
def test_prompt_tokens_are_masked(demo_store, tmp_path):
    recipe = tiny()
    trainer = sft.build(recipe, demo_store, tmp_path)
    first = sft_rows(demo_store, recipe.data)[0]  # the dataset keeps store order
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    tok = trainer.processing_class
    prompt = tok.apply_chat_template(first["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False)
    n = len(prompt)
    assert ids[:n].tolist() == prompt
    assert (labels[:n] == -100).all()  # no loss on the prompt
    assert (labels[n:] == ids[n:]).all()  # the reply (and its end-of-turn token) is learned
    assert first["completion"][0]["content"].strip() in tok.decode(ids[n:])


@pytest.mark.slow
def test_packing_puts_whole_examples_in_one_sequence(demo_store, tmp_path):
    trainer = sft.build(tiny("data.limit=6", "sft.packing=true", "sft.max_length=512"), demo_store, tmp_path)
    assert len(trainer.train_dataset) < 6  # short examples share a sequence
    batch = trainer.data_collator([trainer.train_dataset[0]])
    starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist()
    assert len(starts) > 1 and (batch["labels"][0, starts] == -100).all()  # no label crosses into the next example
    with torch.no_grad():
        loss = trainer.model(**{k: batch[k] for k in ("input_ids", "position_ids", "labels")}).loss
    assert math.isfinite(loss.item())


@pytest.fixture(scope="module")
def trained(demo_store, tmp_path_factory):
    """Three steps, then a second run of the same recipe with five: it must resume at step 3."""
    out = tmp_path_factory.mktemp("sft")
    first = sft.train(tiny("train.max_steps=3"), demo_store, out)
    assert os.path.samefile(out / "model.safetensors", out / "checkpoint-3" / "model.safetensors")  # linked
    second = sft.train(tiny("train.max_steps=5"), demo_store, out)
    return out, first, second


@pytest.mark.slow
def test_loss_falls_and_weights_change(trained):
    out, first, _ = trained
    losses = [h["loss"] for h in first.state.log_history if "loss" in h]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    with safe_open(Path(resolve("smollm2-135m-instruct")) / "model.safetensors", "pt") as base:
        before = base.get_tensor(PARAM).float()
    with safe_open(out / "model.safetensors", "pt") as trained_file:
        after = trained_file.get_tensor(PARAM).float()
    assert before.shape == after.shape and not torch.equal(before, after)


@pytest.mark.slow
def test_second_run_resumes_from_last_checkpoint(trained):
    out, first, second = trained
    assert first.state.global_step == 3 and second.state.global_step == 5
    history = lambda t: [(h["step"], h["loss"]) for h in t.state.log_history if "loss" in h]  # noqa: E731
    assert history(second)[:3] == history(first)  # the checkpoint's state, loaded
    assert [step for step, _ in history(second)] == [1, 2, 3, 4, 5]
    logged = [m["step"] for m in read_metrics(out) if "loss" in m]
    assert logged == [1, 2, 3, 4, 5]  # steps 1-3 were not trained again: one metrics file across both runs
    assert (out / "checkpoint-5" / "trainer_state.json").exists()
    assert not (out / "checkpoint-3").exists()  # save_total_limit: 1
    # the final model is the last checkpoint's files (checkpoint-3's, linked by the first run, gave way to them)
    assert os.path.samefile(out / "model.safetensors", out / "checkpoint-5" / "model.safetensors")
    assert not list(out.glob("optimizer.pt")) and not list(out.glob("rng_state*"))


@pytest.mark.slow
def test_saved_model_loads_and_generates(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = trained[0]
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)  # fmt: skip
    gen = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]


@pytest.mark.slow
def test_the_trained_folder_is_evaluated_on_vllm(trained, demo_recipe):
    """The folder is a model vLLM loads: `factory eval` scores it on the real engine as it does any model, greedily
    (whatever the recipe samples with), every miss with its reason. (The suite's real-engine test of `factory eval`;
    test_moe names a trained folder as a generate recipe's model.)"""
    out = trained[0]
    res = run_cli("eval", str(out), str(demo_recipe), "--limit", "8", "--set", "sampling.temperature=0.9",
                  COLUMNS="400")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert str(out) in res.stdout  # the model evaluated, by its folder
    last = res.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"accuracy (\d+)/8 = (\d+\.\d)%", last)
    assert m, res.stdout
    k = int(m[1])
    assert float(m[2]) == round(100 * k / 8, 1)
    assert "95% interval" in res.stdout and "greedy" in res.stdout
    misses = re.search(r"misses\s+(.*)", res.stdout)[1]
    assert sum(int(n) for n in re.findall(r"\w+ (\d+)", misses)) == 8 - k  # every miss has its reason
