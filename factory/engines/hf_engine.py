"""transformers `generate`: the fallback where vLLM does not install. Uses CUDA when present."""

from __future__ import annotations

from factory.engines import Completion, Request, chat_ids
from factory.recipe import EngineConfig, SamplingConfig


class TransformersEngine:
    name = "transformers"

    def __init__(self, model: str, sampling: SamplingConfig, cfg: EngineConfig, seed: int):
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch, self.sampling, self.batch_size = torch, sampling, cfg.batch_size
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(self.device).eval()
        self.tokenizer.padding_side = "left"
        self.pad = self.tokenizer.pad_token_id
        if self.pad is None:
            self.pad = self.tokenizer.eos_token_id
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos = {eos} if isinstance(eos, int) else set(eos or [])
        torch.manual_seed(seed)
        self.version = f"transformers {transformers.__version__} ({self.device})"

    def generate(self, requests: list[Request], sampling: SamplingConfig | None = None) -> list[list[Completion]]:
        seqs = []  # (request index, prompt ids), one per sample
        for i, r in enumerate(requests):
            ids = chat_ids(self.tokenizer, r.messages)
            seqs += [(i, ids)] * r.n
        out: list[list[Completion]] = [[] for _ in requests]
        for start in range(0, len(seqs), self.batch_size):
            chunk = seqs[start : start + self.batch_size]
            for (i, ids), comp in zip(
                chunk, self._batch([ids for _, ids in chunk], sampling or self.sampling), strict=True
            ):
                comp.n_prompt_tokens = len(ids)
                out[i].append(comp)
        return out

    def _batch(self, prompts: list[list[int]], s: SamplingConfig) -> list[Completion]:
        torch = self.torch
        width = max(map(len, prompts))
        ids = torch.tensor([[self.pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        sample = s.temperature > 0
        with torch.no_grad():
            gen = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=s.max_tokens,
                do_sample=sample,
                temperature=s.temperature if sample else None,
                top_p=s.top_p if sample else None,
                pad_token_id=self.pad,
            )
        result = []
        for row in gen[:, width:].tolist():
            stop = next((k for k, t in enumerate(row) if t in self.eos), None)
            toks = row if stop is None else row[:stop]
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            result.append(Completion(text, len(toks) + (stop is not None), "length" if stop is None else "stop"))
        return result

    def close(self) -> None:
        del self.model
