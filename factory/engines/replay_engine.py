"""Recorded completions played back as an engine (`engine.kind: replay`, `engine.replay: answers.jsonl`).

Each line of the file is one completion: `{"prompt": ..., "completion": ...}` (or `text`, as `factory export
--table candidates` writes it), with optional `finish_reason` (default stop), `n_tokens` (default: its words) and
`n_prompt_tokens`. A request for a prompt gets that prompt's completions in file order, from its first sample
index on, so a resumed run picks up where it stopped; a prompt whose recording runs out gets fewer than it asked
for, and the sampler ends it there. Nothing is generated: answers recorded elsewhere (another tool, an API
batch, an earlier run) go through the whole pipeline, and tests get a store in a second.
"""

from __future__ import annotations

import time
from pathlib import Path

from factory import textfile
from factory.engines import Completion, Request
from factory.errors import FactoryError
from factory.recipe import EngineConfig, SamplingConfig


class ReplayEngine:
    name = "replay"

    def __init__(self, model: str, sampling: SamplingConfig, cfg: EngineConfig, seed: int):
        path = Path(cfg.replay)
        if not cfg.replay or not path.is_file():
            raise FactoryError(f"engine.replay: {cfg.replay!r} is not a file (the JSONL of recorded completions)")
        self.sampling, self.recorded, self.rate = sampling, {}, cfg.replay_tokens_per_s
        for line, rec in textfile.json_lines(path):
            text = rec.get("completion", rec.get("text")) if isinstance(rec, dict) else None
            if not isinstance(text, str) or not isinstance(rec.get("prompt"), str):
                raise FactoryError(f"{path}:{line}: a record needs a string `prompt` and `completion` (or `text`)")
            counts = [rec.get(k) for k in ("n_tokens", "n_prompt_tokens")]
            if any(n is not None and (type(n) is not int or n < 0) for n in counts):
                raise FactoryError(f"{path}:{line}: n_tokens and n_prompt_tokens must be whole numbers >= 0")
            if rec.get("finish_reason") not in (None, "stop", "length"):
                raise FactoryError(f"{path}:{line}: finish_reason must be stop or length, not {rec['finish_reason']!r}")
            n_tokens = counts[0] if counts[0] is not None else len(text.split())
            c = Completion(text, n_tokens, rec.get("finish_reason") or "stop", counts[1] or 0)
            self.recorded.setdefault(rec["prompt"], []).append(c)
        self.version = f"replay {path.name} ({sum(map(len, self.recorded.values()))} completions)"

    def generate(self, requests: list[Request], sampling: SamplingConfig | None = None) -> list[list[Completion]]:
        out = []
        for r in requests:
            if r.prompt is None:  # a judge's prompt: nothing recorded can answer it
                raise FactoryError("the replay engine answers only the recipe's own prompts (it cannot judge)")
            out.append(self.recorded.get(r.prompt, [])[r.first : r.first + r.n])
        if self.rate:
            time.sleep(sum(c.n_tokens for cs in out for c in cs) / self.rate)
        return out

    def close(self) -> None:
        pass
