"""`factory run PIPELINE`: R1's stages in order, each stage's output feeding the next, each resumable.

A pipeline is a flat YAML file that names a base model, an eval recipe, and the stages:

    base: smollm2-135m-instruct
    eval: {recipe: eval.yaml, limit: 200}
    stages:
      - {name: rs, kind: generate, recipe: rs.yaml, model: base}           # samples into rs/store.duckdb
      - {name: sft, kind: sft, recipe: sft.yaml, model: base, data: rs}    # trains on rs's store, into sft/
      - {name: rl, kind: grpo, recipe: grpo.yaml, model: sft, data: rs}

A generate stage with `into: rs` adds its run to rs's store instead of its own (R1's general prompts, graded by the
judge, joining the verified reasoning examples before SFT). Recipe paths are relative to the pipeline file. `model`
is `base` or an earlier training stage; `data` an earlier generate stage, whose store the stage reads. Each stage
runs as its own `factory` process (vLLM and the trainers never share one), writes its folder under the work folder
and, when it ends, one line to `stages.jsonl`: stage, status, seconds, key metrics and, after a stage that trains,
the new model's held-out accuracy (`factory eval`), on all eval problems and on those no stage's source holds.
Started again, a pipeline skips the stages that line marks done; the stage it was killed in picks up where it
stopped (generate resumes its run in the store, the trainers their last checkpoint). `final` in the work folder
links to the last model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from factory.errors import FactoryError
from factory.models import DEFAULT_MODEL
from factory.recipe import _build, read

KINDS = ("generate", "sft", "grpo")


@dataclass
class StageSpec:
    name: str = ""
    kind: str = ""  # generate | sft | grpo
    recipe: str = ""  # relative to the pipeline file
    model: str = "base"  # base, or an earlier sft/grpo stage
    data: str | None = None  # an earlier generate stage: its store is this stage's --db
    into: str | None = None  # generate: add this stage's run to an earlier generate stage's store (general prompts)
    set: list[str] = field(default_factory=list)  # --set overrides for the stage's recipe
    limit: int | None = None  # generate: only the first N prompts


@dataclass
class EvalSpec:
    recipe: str = ""
    limit: int | None = 200
    set: list[str] = field(default_factory=list)


@dataclass
class Pipeline:
    name: str = ""
    base: str = DEFAULT_MODEL
    eval: EvalSpec | None = None  # held-out accuracy of the base model and after each training stage
    stages: list = field(default_factory=list)  # of StageSpec, checked by `load`

    def path(self, recipe: str) -> Path:
        """A recipe path as written in the pipeline: relative to the pipeline file's folder."""
        return (self.folder / recipe).resolve()


def load(path: Path) -> Pipeline:
    """Read and check a pipeline; every problem (unknown keys, bad references, missing recipes) at once."""
    raw = read(path)
    stages = raw.pop("stages", None)
    problems: list[str] = []
    p = _build(Pipeline, raw, "", problems)
    p.folder = Path(path).resolve().parent  # not a setting: where the recipes' paths start
    if not isinstance(stages, list) or not stages:
        problems.append("stages: a list of stages is required")
        stages = []
    made: dict[str, str] = {"base": "model"}
    for i, s in enumerate(stages):
        name = s.get("name", "?") if isinstance(s, dict) else "?"
        spec = _build(StageSpec, s, f"stages[{i}] ({name}).", problems)
        problems += _check(spec, i, made, p)
        kind = "model" if spec.kind != "generate" else "joined" if spec.into else "store"  # joined: no store of its own
        made.setdefault(spec.name, kind)
        p.stages.append(spec)
    if p.eval is not None and not p.path(p.eval.recipe).is_file():
        problems.append(f"eval.recipe: {p.path(p.eval.recipe)} does not exist")
    if problems:
        raise FactoryError(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {x}" for x in problems))
    return p


def overlaps(p: Pipeline) -> list[str]:
    """Stages whose reasoning-gym problems are the eval's own. reasoning-gym's problem i of seed s is problem s+i of
    one sequence per family and config, so seeds closer than the sizes share problems."""

    def span(recipe: str, sets: list[str]) -> tuple | None:
        src = read(p.path(recipe), sets).get("source")
        if not isinstance(src, dict) or src.get("kind") != "reasoning_gym":
            return None
        try:
            seed, size = int(src.get("seed", 0)), int(src.get("size", 0) or 0)
        except (TypeError, ValueError):  # a bad seed or size: the recipe's own check reports it when the stage runs
            return None
        return json.dumps([src.get("name"), src.get("config")], sort_keys=True), seed, seed + size

    if p.eval is None or (ev := span(p.eval.recipe, p.eval.set)) is None:
        return []
    out = []
    for s in p.stages:
        if (st := span(s.recipe, s.set)) and st[0] == ev[0] and st[1] < ev[2] and ev[1] < st[2]:
            lo, hi = max(st[1], ev[1]), min(st[2], ev[2])
            out.append(
                f"{s.name} trains on the eval's problems {lo}-{hi - 1} (reasoning-gym seeds {st[1]} and"
                f" {ev[1]}); give the eval a seed far from every stage's"
            )
    return out


def _check(s: StageSpec, i: int, made: dict, p: Pipeline) -> list[str]:
    at, out = f"stages[{i}] ({s.name or '?'})", []
    if not s.name or s.name in made or s.name in ("final", "sources"):
        out.append(f"{at}.name: {s.name!r} must be new and not 'base', 'final' or 'sources'")
    if s.kind not in KINDS:
        out.append(f"{at}.kind: {s.kind!r} is not one of {', '.join(KINDS)}")
    if not p.path(s.recipe).is_file():
        out.append(f"{at}.recipe: {p.path(s.recipe)} does not exist")
    if made.get(s.model) != "model":
        out.append(f"{at}.model: {s.model!r} is not 'base' or an earlier sft/grpo stage")
    if s.data is not None and made.get(s.data) != "store":
        out.append(f"{at}.data: {s.data!r} is not an earlier generate stage")
    if s.kind == "sft" and s.data is None:
        out.append(f"{at}.data: an sft stage trains on a generate stage's store; name it")
    if s.into is not None and (s.kind != "generate" or made.get(s.into) != "store"):
        out.append(f"{at}.into: {s.into!r}: a generate stage adds to an earlier generate stage's store")
    return out


def run(p: Pipeline, workdir: Path, say=print) -> list[dict]:
    """Run every stage not yet done; return the lines of stages.jsonl, base first."""
    for warning in overlaps(p):
        say(f"warning: {warning}")
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "stages.jsonl"
    done = {r["stage"]: r for r in _lines(log) if r.get("status") == "done"}
    models = {"base": p.base}
    sources = _sources(p, workdir) if p.eval is not None else []  # once: every eval leaves out the same problems
    if p.eval is not None and "base" not in done:
        done["base"] = _record(
            log,
            {
                "stage": "base",
                "kind": "eval",
                "status": "done",
                "seconds": 0.0,
                "model": p.base,
                "eval": _eval(p, p.base, sources),
            },
        )
    for s in p.stages:
        folder = workdir / s.name
        if s.kind != "generate":
            models[s.name] = str(folder.resolve())
        if s.name in done:
            say(f"{s.name}: done before, skipped")
            continue
        say(f"{s.name}: {s.kind} {s.recipe} on {s.model}")
        t = time.monotonic()
        metrics = _stage(p, s, folder, models[s.model], workdir)
        row = {
            "stage": s.name,
            "kind": s.kind,
            "status": "done",
            "seconds": round(time.monotonic() - t, 1),
            "model": models.get(s.name),
            "metrics": metrics,
        }
        if s.kind != "generate" and p.eval is not None:
            row["eval"] = _eval(p, models[s.name], sources)
        done[s.name] = _record(log, row)
    last = next((s.name for s in reversed(p.stages) if s.kind != "generate"), None)
    if last:
        final = workdir / "final"
        if final.is_symlink() or final.exists():
            final.unlink()
        final.symlink_to(last)  # relative: the work folder can move
    return [done[k] for k in ["base", *(s.name for s in p.stages)] if k in done]


def _stage(p: Pipeline, s: StageSpec, folder: Path, model: str, workdir: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    sets = [a for o in [f"model={model}", *s.set] for a in ("--set", o)]
    if s.kind == "generate":
        db = (workdir / s.into if s.into else folder) / "store.duckdb"
        limit = ["--limit", str(s.limit)] if s.limit else []
        _factory("generate", str(p.path(s.recipe)), "--db", str(db), *limit, *sets)
        stats = json.loads(_factory("stats", "--db", str(db), "--json", capture=True))
        return {k: stats[k] for k in ("prompts", "candidates", "passed", "examples")}
    db = workdir / s.data / "store.duckdb" if s.data else workdir / "none.duckdb"
    _factory("train", s.kind, str(p.path(s.recipe)), "--db", str(db), "--out", str(folder), *sets)
    rows = _lines(folder / "metrics.jsonl")
    last = next((r for r in reversed(rows) if "loss" in r), rows[-1] if rows else {})
    return {k: last[k] for k in ("step", "loss", "reward") if k in last}


def _sources(p: Pipeline, workdir: Path) -> list[Path]:
    """Every prompt source a stage draws from, overrides applied, written to `sources/` in the work folder: the
    generate stages' (whose stores the SFT and store-fed GRPO stages read) and the GRPO stages' own. The problems
    none of them holds are the same set for every model of the chain, so their accuracies compare down the table."""
    folder = workdir / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for s in p.stages:
        raw = read(p.path(s.recipe), s.set)
        fed_by_store = s.kind == "grpo" and (raw.get("prompts") or {}).get("kind") == "store"
        if s.kind == "sft" or fed_by_store or not isinstance(raw.get("source"), dict):
            continue
        copy = folder / f"{s.name}.yaml"
        copy.write_text(yaml.safe_dump(raw, sort_keys=False))
        out.append(copy)
    return out


def _eval(p: Pipeline, model: str, training: list[Path]) -> dict:
    limit = ["--limit", str(p.eval.limit)] if p.eval.limit else []
    sets = [a for o in p.eval.set for a in ("--set", o)]
    seen = [a for path in training for a in ("--training", str(path))]
    t = time.monotonic()
    out = json.loads(_factory("eval", model, str(p.path(p.eval.recipe)), *limit, *sets, *seen, "--json", capture=True))
    return {k: out[k] for k in ("n", "correct", "accuracy", "ci95", "mean_tokens", "unseen")} | {
        "seconds": round(time.monotonic() - t, 1)
    }


def _factory(*args: str, capture: bool = False) -> str:
    """One `factory` command in its own process; its progress shows on our stderr."""
    cmd = [sys.executable, "-m", "factory.cli", *args]
    res = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None, text=True, env=os.environ.copy())
    if res.returncode != 0:
        raise FactoryError(f"stage command failed (exit {res.returncode}): factory {' '.join(args)}")
    return res.stdout or ""


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut off by a kill: that stage is not done
            continue
    return out


def _record(log: Path, row: dict) -> dict:
    with log.open("a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return row
