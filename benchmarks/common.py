"""Shared by the benchmarks: one real engine reused by every arm, `factory`'s sampling loop on a fresh store, tables
and the reading of outside JSONL files."""

from __future__ import annotations

import ast
import json
import tempfile
import time
from pathlib import Path

from factory import engines, models, sources
from factory import recipe as recipes
from factory.sampler import Job, Tally, sample
from factory.store import StoreWriter
from factory.workers import VerifyPool

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "arithmetic_demo.yaml"


def load(overrides: list[str], limit: int):
    r = recipes.load(DEMO, overrides)
    return r, sources.load(r.source, limit)


def build_engine(r):
    return engines.build(r, models.resolve(r.model), seed=r.sampling.seed)


def factory_run(r, prompts, engine, pool: VerifyPool, samples: list | None = None) -> Tally:
    """`factory generate`'s loop (generation, verification workers, store commits) on a throwaway store. With
    `samples`, (prompt_id, sample_index, n_tokens, accepted) of every candidate are added to it."""
    with tempfile.TemporaryDirectory() as tmp:
        store = StoreWriter(Path(tmp) / "bench.duckdb")
        job = Job(r, prompts, store, None)
        job.begin()
        tally = sample(job, engine, pool)
        if samples is not None:
            samples += store.query("SELECT prompt_id, sample_index, n_tokens, accepted FROM candidates")[1]
        store.close()
    return tally


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}") if isinstance(v, float) else str(v)  # noqa: E731
    cells = [header] + [[fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join(
        [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells[1:]]
    )


def read_jsonl(path: str, limit: int | None) -> list[dict]:
    if not Path(path).is_file():
        raise SystemExit(f"{path}: no such file; pass the file the docstring names, downloaded from its repository")
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rows = []
    for n, line in enumerate(lines[:limit], 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{n}: not a JSON line ({e}); pass the file the docstring names") from None
    return rows


def as_list(value) -> list:
    """A field that is a list, or a list written out as JSON or as a Python literal."""
    if isinstance(value, list):
        return value
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return ast.literal_eval(value)
