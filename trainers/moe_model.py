"""A DeepSeekMoE-style model on transformers' own DeepSeek-V3 classes, with a training-time MoE forward.

The model is `DeepseekV3ForCausalLM` built from a small config: the first `first_k_dense` layers dense, the rest
mixture-of-experts with `n_shared` shared experts and `n_routed` fine-grained routed experts, `top_k` per token,
sigmoid routing with a per-expert `e_score_correction_bias` that is added to the scores for selection only
(DeepSeek-V3's auxiliary-loss-free load balancing). Because the weights live in transformers' classes,
`save_pretrained` writes a folder that `AutoModelForCausalLM.from_pretrained` (and vLLM) load as is.

For training, `patch_moe` swaps each MoE block's forward for one that
  - routes with the model's own router (same selection as inference),
  - sorts the (token, expert) pairs by expert and runs every expert on its contiguous block with one grouped
    matmul (`torch._grouped_mm`; a split + per-expert matmul where torch lacks it) instead of masking,
  - counts tokens per expert (for the bias update and the logs) and, if asked, the sequence-wise balance loss.
`update_bias` nudges each bias toward balance after an optimizer step: b_i += speed * sign(mean load - load_i).
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MoEModelConfig:
    hidden: int = 64
    layers: int = 3
    first_k_dense: int = 1  # DeepSeek-V3: the first 3 of 61 layers are dense
    heads: int = 4
    intermediate: int = 256  # dense layers' MLP width
    moe_intermediate: int = 32  # one routed (fine-grained) expert's width
    n_routed: int = 8
    n_shared: int = 1
    top_k: int = 2
    # multi-head latent attention (MLA) as DeepSeek-V3. vLLM's CPU MLA kernels take only DeepSeek's latent size
    # kv_lora_rank + qk_rope_head_dim = 512 + 64, so a model meant for vLLM keeps those two even when tiny.
    kv_lora_rank: int = 512
    q_lora_rank: int | None = None  # None: queries without a low-rank projection (DeepSeek-V2-Lite)
    qk_nope_head_dim: int = 32
    qk_rope_head_dim: int = 64
    v_head_dim: int = 32
    routed_scaling: float = 1.0  # DeepSeek-V3: 2.5
    max_positions: int = 2048
    tie_embeddings: bool = False


def build_model(cfg: MoEModelConfig, tokenizer) -> nn.Module:
    """A freshly initialised DeepseekV3ForCausalLM with `cfg`'s shape and `tokenizer`'s vocabulary."""
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    config = DeepseekV3Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden,
        intermediate_size=cfg.intermediate,
        moe_intermediate_size=cfg.moe_intermediate,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        n_shared_experts=cfg.n_shared,
        n_routed_experts=cfg.n_routed,
        num_experts_per_tok=cfg.top_k,
        first_k_dense_replace=cfg.first_k_dense,
        n_group=1,
        topk_group=1,
        norm_topk_prob=True,
        routed_scaling_factor=cfg.routed_scaling,
        kv_lora_rank=cfg.kv_lora_rank,
        q_lora_rank=cfg.q_lora_rank,
        qk_nope_head_dim=cfg.qk_nope_head_dim,
        qk_rope_head_dim=cfg.qk_rope_head_dim,
        v_head_dim=cfg.v_head_dim,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=cfg.tie_embeddings,
        num_mtp_layers=0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
    )
    # what DeepSeek-V3's own config.json says and vLLM reads (transformers' class assumes both)
    config.topk_method, config.scoring_func = "noaux_tc", "sigmoid"
    return DeepseekV3ForCausalLM(config)


def moe_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's MoE blocks (those with a router), in layer order."""
    return [m for m in model.modules() if hasattr(m, "gate") and hasattr(m, "experts")]


# ---- dispatch -------------------------------------------------------------------------------------------------


def _gmm(x: torch.Tensor, w: torch.Tensor, counts: torch.Tensor, grouped: bool = True) -> torch.Tensor:
    """Grouped matmul: rows of `x` sorted by expert, `counts[e]` of them for expert e, times w[e] ([E, in, out])."""
    # torch._grouped_mm: any dtype on CPU, bfloat16 on CUDA; otherwise split into per-expert blocks
    if x.is_cuda and torch.is_autocast_enabled("cuda"):  # autocast does not cover _grouped_mm
        x = x.to(torch.get_autocast_dtype("cuda"))
    if grouped and hasattr(torch, "_grouped_mm") and (x.device.type == "cpu" or x.dtype == torch.bfloat16):
        offs = counts.cumsum(0).to(torch.int32)
        return torch._grouped_mm(x, w.to(x.dtype), offs=offs)
    blocks = x.split(counts.tolist())
    return torch.cat([b @ w[e] for e, b in enumerate(blocks)])


def sorted_experts(x, idx, weights, gate_up, down, act=F.silu, grouped: bool = True) -> torch.Tensor:
    """Routed experts' output for tokens `x` [T, D] sent to experts `idx` [T, K] with `weights` [T, K].

    `gate_up` [E, 2I, D] and `down` [E, D, I] are transformers' stacked expert weights. Each (token, expert) pair is
    computed once: pairs are sorted by expert so that every expert multiplies one contiguous block.
    """
    n_experts, k = gate_up.shape[0], idx.shape[1]
    flat = idx.reshape(-1)
    order = flat.argsort(stable=True)
    counts = torch.bincount(flat, minlength=n_experts)
    token = order // k
    h = _gmm(x[token], gate_up.transpose(1, 2), counts, grouped)
    gate, up = h.chunk(2, dim=-1)
    y = _gmm(act(gate) * up, down.transpose(1, 2), counts, grouped)
    y = y * weights.reshape(-1)[order, None].to(y.dtype)
    return torch.zeros_like(x).index_add_(0, token, y.to(x.dtype))


def masked_experts(x, idx, weights, gate_up, down, act=F.silu) -> torch.Tensor:
    """The baseline `sorted_experts` replaces: every expert over every token, gated by a mostly-zero weight."""
    out = torch.zeros_like(x)
    for e in range(gate_up.shape[0]):
        gate, up = F.linear(x, gate_up[e]).chunk(2, dim=-1)
        w = (weights * (idx == e)).sum(-1, keepdim=True)
        out = out + F.linear(act(gate) * up, down[e]) * w
    return out


# ---- training-time forward -------------------------------------------------------------------------------------


def seq_balance_loss(logits: torch.Tensor, idx: torch.Tensor, n_experts: int, batch: int) -> torch.Tensor:
    """DeepSeek-V3's sequence-wise balance loss (without alpha): sum_i f_i P_i, averaged over sequences.

    f_i = E / (K T) * (tokens of the sequence sent to i); P_i = mean over the sequence of s_i / sum_j s_j.
    """
    k = idx.shape[-1]
    scores = logits.sigmoid().view(batch, -1, n_experts)
    p = (scores / scores.sum(-1, keepdim=True)).mean(1)  # [B, E]
    hits = F.one_hot(idx.view(batch, -1), n_experts).sum(1).float()  # [B, E]
    f = hits * n_experts / (k * scores.shape[1])
    return (f * p).sum(-1).mean()


def _train_forward(self, hidden: torch.Tensor) -> torch.Tensor:
    shape = hidden.shape
    x = hidden.reshape(-1, shape[-1])
    logits, weights, idx = self.gate(x)
    experts = self.experts
    y = self.dispatch(x, idx, weights, experts.gate_up_proj, experts.down_proj, experts.act_fn)
    if self.training:
        with torch.no_grad():
            self.load += torch.bincount(idx.reshape(-1), minlength=self.load.numel()).to(self.load.dtype)
        if self.want_balance_loss:
            batch = shape[0] if len(shape) == 3 else 1
            self.balance_loss = seq_balance_loss(logits, idx, self.load.numel(), batch)
    return y.view(shape) + self.shared_experts(hidden)


def patch_moe(model: nn.Module, dispatch=sorted_experts, balance_loss: bool = False) -> list[nn.Module]:
    """Give every MoE block the sorted/grouped forward and load counters; return the blocks."""
    blocks = moe_blocks(model)
    for block in blocks:
        n = block.gate.e_score_correction_bias.numel()
        block.load = torch.zeros(n, dtype=torch.float64, device=block.gate.e_score_correction_bias.device)
        block.dispatch = dispatch
        block.want_balance_loss = balance_loss
        block.balance_loss = None
        block.forward = types.MethodType(_train_forward, block)
    return blocks


def balance_loss(blocks: list[nn.Module]) -> torch.Tensor | None:
    """Sum of the blocks' sequence-wise balance losses from the last forward (None when not computed)."""
    losses = [b.balance_loss for b in blocks if b.balance_loss is not None]
    return torch.stack(losses).sum() if losses else None


@torch.no_grad()
def update_bias(blocks: list[nn.Module], speed: float) -> torch.Tensor:
    """Nudge each block's selection bias toward balance from the load since the last call; reset the counters.

    Returns the loads [layers, experts] that the update used.
    """
    loads = torch.stack([b.load.clone() for b in blocks])
    for block in blocks:
        if speed:
            bias = block.gate.e_score_correction_bias
            bias += speed * torch.sign(block.load.mean() - block.load).to(bias.dtype)
        block.load.zero_()
    return loads


def load_stats(loads: torch.Tensor) -> dict:
    """Balance of loads [layers, experts]: worst max/mean over layers, mean coefficient of variation."""
    loads = loads.double()
    mean = loads.mean(-1).clamp_min(1e-9)
    return {
        "max_over_mean": float((loads.max(-1).values / mean).max()),
        "cv": float((loads.std(-1, unbiased=False) / mean).mean()),
        "min_load": int(loads.min()),
    }


def bias_norm(blocks: list[nn.Module]) -> float:
    return float(torch.cat([b.gate.e_score_correction_bias.float() for b in blocks]).norm())
