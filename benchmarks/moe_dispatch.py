"""MoE dispatch speed and load balance, each against its baseline in the same run.

1. Dispatch: the routed experts' forward + backward on the same tokens, routing and weights, at 8, 16 and 64
   fine-grained experts (top-k = experts / 8, at least 2, as DeepSeek-V3's 8 of 256 scaled down):
   - masked loop: every expert over every token, multiplied by a mostly-zero gate weight (the baseline);
   - sorted + split: pairs sorted by expert, one matmul per expert on its contiguous block;
   - sorted + grouped_mm: the same blocks in one `torch._grouped_mm` per projection (what the trainer runs).
   Goal: sorted/grouped >= 3x the masked loop's tokens/s at 16+ experts.
2. Balance: the trainer's tiny DeepSeekMoE trained the same steps on the same windows of a store's examples,
   with the aux-loss-free bias update at several speeds (0 = off); max/mean load over the last steps, worst layer.
   Goal: <= 1.3 with the update.

    .venv/bin/python benchmarks/moe_dispatch.py [--db data/factory.duckdb] [--tokens 2048] [--steps 100]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from common import table

from trainers import moe, moe_model
from trainers.moe_model import masked_experts, sorted_experts


def split_experts(x, idx, weights, gate_up, down):
    return sorted_experts(x, idx, weights, gate_up, down, grouped=False)


def dispatch_rows(tokens: int, hidden: int, width: int, repeats: int) -> list[list]:
    rows = []
    for n in (8, 16, 64):
        k = max(2, n // 8)
        torch.manual_seed(0)
        x = torch.randn(tokens, hidden, requires_grad=True)
        gate_up = (torch.randn(n, 2 * width, hidden) * 0.05).requires_grad_()
        down = (torch.randn(n, hidden, width) * 0.05).requires_grad_()
        idx = torch.rand(tokens, n).topk(k, dim=-1).indices
        weights = torch.rand(tokens, k)
        arms = {"masked": masked_experts, "split": split_experts, "grouped": sorted_experts}
        best = dict.fromkeys(arms, float("inf"))
        for rep in range(repeats + 1):  # arms interleaved, so that a busy machine slows them alike; best time
            for name, fn in arms.items():
                t = time.perf_counter()
                fn(x, idx, weights, gate_up, down).square().mean().backward()
                best[name] = min(best[name], time.perf_counter() - t) if rep else best[name]  # rep 0: warm-up
        speed = {name: tokens / b for name, b in best.items()}
        ratio = speed["grouped"] / speed["masked"]
        rows.append([n, k, speed["masked"], speed["split"], speed["grouped"], f"{ratio:.1f}x"])
    return rows


def balance_rows(db: Path, steps: int, speeds: list[float]) -> list[list]:
    from transformers import AutoTokenizer

    from factory.models import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve("smollm2-135m-instruct"))
    recipe = moe.MoERecipe()
    recipe.model = moe_model.MoEModelConfig(
        hidden=32, layers=3, heads=2, intermediate=64, moe_intermediate=16,
        kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
    )  # fmt: skip
    recipe.data.seq_len = 64
    recipe.train.steps, recipe.train.batch_size, recipe.train.log_every = steps, 4, 10**9
    tokens = moe.load_tokens(db, recipe.data, tokenizer)
    rows, last = [], max(1, steps // 6)
    for speed in speeds:
        recipe.train.bias_speed = speed
        torch.manual_seed(0)
        model = moe_model.build_model(recipe.model, tokenizer)
        t = time.perf_counter()
        hist = moe.train(model, tokens, recipe)
        loads = torch.tensor([h["tokens_per_expert"] for h in hist[-last:]]).sum(0)
        stats = moe_model.load_stats(loads)
        first = hist[0]["max_over_mean"]
        rows.append([speed, steps, first, stats["max_over_mean"], stats["cv"], hist[-1]["loss"],
                     hist[-1]["bias_norm"], time.perf_counter() - t])  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, default=Path("data/factory.duckdb"))
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--width", type=int, default=128, help="one routed expert's intermediate size")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--speeds", default="0,0.001,0.01", help="bias update speeds (0: off; empty: no balance part)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    print(f"dispatch: {args.tokens} tokens, hidden {args.hidden}, expert width {args.width}, forward + backward")
    header = ["experts", "top-k", "masked tok/s", "sorted+split tok/s", "sorted+grouped_mm tok/s", "grouped/masked"]
    print(table(header, dispatch_rows(args.tokens, args.hidden, args.width, args.repeats)))
    if not args.speeds:
        return
    print(f"\nbalance: tiny DeepSeekMoE (2 MoE layers, 8 routed top-2 + 1 shared) on {args.db}, same data and seed")
    header = ["bias speed", "steps", "max/mean step 1", f"max/mean last {max(1, args.steps // 6)}", "cv", "loss",
              "bias norm", "seconds"]  # fmt: skip
    print(table(header, balance_rows(args.db, args.steps, [float(s) for s in args.speeds.split(",")])))


if __name__ == "__main__":
    main()
