"""MoE trainer: a tiny DeepSeekMoE built in the test trains a few steps on CPU; behaviour, not exact numbers.

The slow test trains on `demo_store` (conftest: a real demo run with --limit 8) and generates with the result.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, rows, run_cli

from factory.errors import FactoryError
from factory.models import resolve
from trainers import moe
from trainers.moe_model import (
    MoEModelConfig,
    build_model,
    masked_experts,
    moe_blocks,
    patch_moe,
    sorted_experts,
    update_bias,
)

TINY = {"hidden": 32, "layers": 2, "first_k_dense": 1, "heads": 2, "intermediate": 64, "moe_intermediate": 16,
        "n_routed": 8, "n_shared": 1, "top_k": 2, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 8, "v_head_dim": 8}  # fmt: skip
# vLLM's CPU MLA kernels take only DeepSeek's latent size, kv_lora_rank + qk_rope_head_dim = 512 + 64
TINY_VLLM = TINY | {"kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 32, "v_head_dim": 32}


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer  # here, not at the top: every test process collects this file

    return AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))


def recipe_file(tmp_path: Path, model: dict = TINY, **train) -> Path:
    raw = {"model": model, "data": {"seq_len": 32}, "train": {"steps": 12, "batch_size": 4, "lr": 0.003} | train}
    path = tmp_path / "moe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_sorted_dispatch_matches_masked_experts():
    torch.manual_seed(0)
    x, idx, w = torch.randn(40, 16), torch.randint(0, 8, (40, 2)), torch.rand(40, 2)
    gate_up, down = torch.randn(8, 2 * 12, 16), torch.randn(8, 16, 12)
    idx[:, 1] = (idx[:, 0] + 1) % 8  # two distinct experts per token; expert 7 may get none
    torch.testing.assert_close(sorted_experts(x, idx, w, gate_up, down), masked_experts(x, idx, w, gate_up, down))


def test_training_forward_matches_transformers(tokenizer):
    model = build_model(MoEModelConfig(**TINY), tokenizer).eval()
    ids = torch.randint(0, 1000, (2, 12))
    with torch.no_grad():
        before = model(ids).logits
        patch_moe(model)
        torch.testing.assert_close(model(ids).logits, before)


def test_bias_moves_load_toward_balance(tokenizer):
    """With a router skewed to expert 0, only the bias update (no gradient steps) brings the load back."""
    torch.manual_seed(0)
    model = build_model(MoEModelConfig(**TINY), tokenizer).train()
    blocks = patch_moe(model)
    blocks[0].gate.weight.data[0] += 0.5  # expert 0 wins for most hidden states
    ids = torch.randint(0, 1000, (4, 32))
    ratios = []
    for _ in range(40):
        with torch.no_grad():
            model(ids)
        loads = update_bias(blocks, speed=0.01)
        ratios.append(float(loads.max() / loads.mean()))
    assert ratios[-1] < ratios[0]
    assert ratios[-1] < 2.0
    assert blocks[0].gate.e_score_correction_bias[0] < 0  # the favoured expert was pushed down


def test_recipe_rejects_unknown_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: {n_routed: 8, experts: 4}\ntrain: {steps: many}\nwat: 1\n")
    with pytest.raises(FactoryError) as e:
        moe.load_recipe(path)
    msg = str(e.value)
    assert "3 problem" in msg and "model.experts" in msg and "allowed" in msg and "train.steps: 'many'" in msg


def test_shipped_recipes_load():
    for name in ("moe_tiny", "moe_gpu"):
        assert moe.load_recipe(ROOT / "recipes" / f"{name}.yaml").model.n_routed >= 8


@pytest.mark.slow
def test_train_on_store_saves_a_transformers_model(tmp_path, demo_store, tokenizer):
    recipe = recipe_file(tmp_path, TINY_VLLM, warmup=2, balance_alpha=0.0001, bias_speed=0.01)
    out = moe.run(recipe, demo_store, tmp_path / "ckpt")
    steps = [yaml.safe_load(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps]
    assert len(steps) == 12 and all(map(torch.isfinite, torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # falling
    per_expert = torch.tensor([r["tokens_per_expert"] for r in steps]).sum(0)
    assert (per_expert > 0).all(), per_expert  # every expert received tokens
    assert {"max_over_mean", "cv", "bias_norm"} <= steps[-1].keys() and steps[-1]["bias_norm"] > 0
    assert all(r["balance_loss"] > 0 for r in steps)  # the sequence-wise balance loss was computed

    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.manual_seed(0)  # the trainer's seed: the same initial weights
    fresh = build_model(MoEModelConfig(**TINY_VLLM), tokenizer)
    changed = [n for n, p in loaded.named_parameters() if not torch.equal(p, fresh.state_dict()[n])]
    assert any("experts" in n for n in changed) and any("gate.weight" in n for n in changed)
    assert any(b.gate.e_score_correction_bias.abs().sum() > 0 for b in moe_blocks(loaded))  # the bias is saved

    ids = torch.tensor([tokenizer("What is 2 + 3?")["input_ids"]])
    with torch.no_grad():
        expected = loaded(ids).logits
        patch_moe(loaded)
        torch.testing.assert_close(loaded(ids).logits, expected)  # inference == training-time forward
    assert loaded.generate(ids, max_new_tokens=4, do_sample=False).shape[1] == ids.shape[1] + 4

    # the trained model as a `factory generate` recipe's model, on vLLM (its CPU MLA kernels want bfloat16)
    db = tmp_path / "gen.duckdb"
    sets = [f"model={out}", "engine.dtype=bfloat16", "sampling.max_tokens=8", "rejection.max_samples=2"]
    done = run_cli("generate", str(ROOT / "recipes" / "arithmetic_demo.yaml"), "--db", str(db), "--limit", "2",
                   *[a for s in sets for a in ("--set", s)])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert rows(db, "SELECT count(*) FROM candidates")[0][0] >= 2
    assert rows(db, "SELECT model FROM runs")[0][0] == str(out)


def test_a_stopped_run_resumes_from_its_checkpoint_with_the_same_losses(tmp_path, demo_store, monkeypatch):
    import json

    recipe = recipe_file(tmp_path, TINY, steps=6, save_every=2, warmup=2, bias_speed=0.01)
    whole = moe.run(recipe, demo_store, tmp_path / "whole")
    losses = [json.loads(line)["loss"] for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and not (whole / "resume.pt").exists()  # a finished run keeps no checkpoint

    save = moe._save

    def save_then_stop(path, recipe, model, opt, gen, step):
        save(path, recipe, model, opt, gen, step)
        if step == 4:
            raise KeyboardInterrupt  # ^C right after the second checkpoint

    monkeypatch.setattr(moe, "_save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        moe.run(recipe, demo_store, tmp_path / "cut")
    assert (tmp_path / "cut" / "resume.pt").exists() and not (tmp_path / "cut" / "config.json").exists()
    monkeypatch.setattr(moe, "_save", save)
    trained, stats = [], moe.load_stats
    monkeypatch.setattr(moe, "load_stats", lambda loads: trained.append(1) or stats(loads))  # once a step
    out = moe.run(recipe, demo_store, tmp_path / "cut")  # the same command again
    assert len(trained) == 2  # steps 5 and 6 only: it went on from the checkpoint, not from the start
    again = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in again] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in again] == losses  # the same batches, weights, optimizer and router bias
    from transformers import AutoModelForCausalLM

    a, b = (AutoModelForCausalLM.from_pretrained(d).state_dict() for d in (whole, out))
    assert all(torch.equal(a[k], b[k]) for k in a)

    changed = recipe_file(tmp_path, TINY, steps=6, save_every=2, warmup=2, bias_speed=0.02)
    monkeypatch.setattr(moe, "_save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        moe.run(changed, demo_store, tmp_path / "other")
    monkeypatch.setattr(moe, "_save", save)
    other = recipe_file(tmp_path, TINY, steps=6, save_every=2, warmup=2, bias_speed=0.03)
    with pytest.raises(FactoryError, match="saved by another recipe"):
        moe.run(other, demo_store, tmp_path / "other")
