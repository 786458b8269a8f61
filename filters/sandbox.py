"""Run untrusted programs: a separate process tree with time, memory, process, file and output limits, no network,
no environment, and a read-only view of only what Python needs.

(Implementation in progress: `Limits` is the contract recipes and verifiers use.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    """Per-program limits; a recipe's `sandbox:` section. Defaults suit HumanEval-sized tests."""

    wall_s: float = 10.0  # wall-clock seconds for the whole program
    cpu_s: float = 10.0  # CPU seconds
    memory_mb: int = 512  # address space
    processes: int = 32  # processes and threads at once (no fork bomb gets through)
    file_mb: int = 16  # largest file it may write
    output_kb: int = 1024  # stdout + stderr kept; more is `output_limit`
    allow_unisolated: bool = False  # where namespaces are unavailable, run with rlimits only (unsafe; opt-in)
