"""`factory ablate ABLATION`: train on each keep-policy from one store, on an equal budget, and measure which teaches.

An ablation is a flat YAML file (paths relative to it):

    name: arithmetic_policies
    base: smollm2-135m-instruct
    store: {recipe: ../r1/rs.yaml, set: [source.size=2000]}   # generated into WORKDIR/store.duckdb; or {db: PATH}
    sft: {recipe: ../r1/sft.yaml, set: [train.epochs=2]}       # one SFT recipe for every arm
    policies: [verified, all, first-sample, shortest-verified] # factory/policies.py
    budget: {unit: examples, size: null}                       # examples | tokens; null: the smallest policy's size
    seeds: [0, 1]                                              # an arm per policy and seed
    eval: {recipe: ../r1/eval.yaml, limit: 200, benchmarks: []}

Every arm trains the base model with the SFT recipe on its policy's picks, cut to the budget after a shuffle by the
arm's seed (which seeds the trainer too), and is evaluated with `factory eval` on the eval recipe's problems (the
store named as `--training`, so the accuracy on the problems no arm trained on is the same set for every arm), and
on the registered benchmarks named. Each step is a `factory` command in its own process, as `factory run`'s stages.

Resumable: each arm writes a line to `arms.jsonl` when trained and when evaluated; started again, the ablation skips
what those lines mark done and the arm it was killed in picks up where it stopped (the trainer at its last
checkpoint). The budget is fixed in `plan.json` at the first start, so a resumed ablation trains on the same one.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from factory import pipeline, policies
from factory.errors import FactoryError
from factory.models import DEFAULT_MODEL
from factory.pipeline import _factory, _lines, _record
from factory.recipe import _build, read

UNITS = ("examples", "tokens")


@dataclass
class StoreSpec:
    recipe: str | None = None  # a generate recipe run (or resumed) into WORKDIR/store.duckdb with the base model
    db: str | None = None  # or a store made before
    set: list[str] = field(default_factory=list)
    limit: int | None = None  # the recipe's first N prompts


@dataclass
class SFTSpec:
    recipe: str = ""
    set: list[str] = field(default_factory=list)


@dataclass
class BudgetSpec:
    unit: str = "examples"  # examples | tokens (reply tokens as sampled, candidates.n_tokens)
    size: int | None = None  # null: what the smallest policy holds


@dataclass
class EvalSpec(pipeline.EvalSpec):
    """A pipeline's eval (recipe, limit, set), plus registered test sets."""

    benchmarks: list[str] = field(default_factory=list)  # registered test sets (`factory benchmarks`), where they fit
    benchmark_limit: int | None = None


@dataclass
class Ablation:
    name: str = ""
    base: str = DEFAULT_MODEL
    store: StoreSpec = field(default_factory=StoreSpec)
    sft: SFTSpec = field(default_factory=SFTSpec)
    policies: list[str] = field(default_factory=lambda: ["verified", "all"])
    budget: BudgetSpec = field(default_factory=BudgetSpec)
    seeds: list[int] = field(default_factory=lambda: [0])
    eval: EvalSpec = field(default_factory=EvalSpec)

    def path(self, rel: str) -> Path:
        return (self.folder / rel).resolve()

    def arms(self) -> list[tuple[str, int, str]]:
        """(policy, seed, folder name) of every arm, in the order they run: each seed's arms together."""
        return [(p, s, f"{re.sub(r'[^A-Za-z0-9.-]+', '_', p)}-seed{s}") for s in self.seeds for p in self.policies]


def load(path: Path, overrides: list[str] = ()) -> Ablation:
    """Read and check an ablation; every problem (unknown keys, policies, missing recipes) at once."""
    problems: list[str] = []
    a = _build(Ablation, read(path, overrides), "", problems)
    a.folder = Path(path).resolve().parent  # not a setting: where its paths start
    s = a.store
    if (s.recipe is None) == (s.db is None):
        problems.append("store: name a generate recipe (store.recipe) or an existing store (store.db), one of them")
    for what, rel in (("store.recipe", s.recipe), ("sft.recipe", a.sft.recipe), ("eval.recipe", a.eval.recipe)):
        if rel is not None and not a.path(rel).is_file():
            problems.append(f"{what}: {a.path(rel) if rel else '(empty)'} does not exist")
    for i, name in enumerate(a.policies):
        try:
            policies.condition(name)
        except FactoryError as e:
            problems.append(f"policies[{i}]: {e}")
    if len(set(a.policies)) != len(a.policies) or not a.policies:
        problems.append(f"policies: {a.policies} must name at least one policy, each once")
    if a.budget.unit not in UNITS or (a.budget.size is not None and a.budget.size < 1):
        problems.append(f"budget: unit {a.budget.unit!r} must be examples or tokens, size >= 1 or null")
    if not a.seeds or len(set(a.seeds)) != len(a.seeds):
        problems.append(f"seeds: {a.seeds} must be at least one seed, each once")
    if problems:
        raise FactoryError(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {x}" for x in problems))
    return a


def run(a: Ablation, workdir: Path, say=print) -> dict:
    """Run every arm not yet done; return what `factory.ablate_results` tabulates: the plan and each arm's line."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = _store(a, workdir, say)
    plan = _plan(a, db, workdir, say)
    log = workdir / "arms.jsonl"
    done = {(r["arm"], r["status"]): r for r in _lines(log)}
    training = ["--training", str(db)]  # every prompt of the store counts as seen, for every arm alike
    if ("base", "done") not in done:
        say("base: evaluating the base model")
        row = {"arm": "base", "status": "done", "policy": None, "seed": None, "model": a.base}
        done["base", "done"] = _record(log, row | _evaluate(a, a.base, training))
    for policy, seed, name in a.arms():
        folder = workdir / "arms" / name
        if (name, "done") in done:
            say(f"{name}: done before, skipped")
            continue
        t = time.monotonic()
        if (name, "trained") not in done:
            say(f"{name}: training on {plan['unit']} {plan['size']} of policy {policy}")
            recipe = str(a.path(a.sft.recipe))
            _factory("train", "sft", recipe, "--db", str(db), "--out", str(folder), *_sets(a, plan, policy, seed))
            facts = json.loads((folder / "data.json").read_text())
            row = {"arm": name, "status": "trained", "policy": policy, "seed": seed, "data": facts}
            done[name, "trained"] = _record(log, row | {"train_seconds": round(time.monotonic() - t, 1)})
        say(f"{name}: evaluating")
        row = done[name, "trained"] | {"status": "done", "model": str(folder)}
        done[name, "done"] = _record(log, row | _evaluate(a, str(folder), training))
    arms = [done["base", "done"], *(done[n, "done"] for _, _, n in a.arms())]
    return {"name": a.name, "plan": plan, "arms": arms, "store": str(db)}


def _sets(a: Ablation, plan: dict, policy: str, seed: int) -> list[str]:
    budget = f"data.limit={plan['size']}" if plan["unit"] == "examples" else f"data.tokens={plan['size']}"
    sets = [*a.sft.set, f"model={a.base}", f"data.policy={policy}", budget, f"data.shuffle={seed}"]
    sets += [f"train.seed={seed}", "train.resume=true"]  # a killed arm goes on from its last checkpoint
    return [x for s in sets for x in ("--set", s)]


def _store(a: Ablation, workdir: Path, say) -> Path:
    """The ablation's store: made (or its run resumed: a finished run returns at once) from store.recipe."""
    if a.store.db is not None:
        return a.path(a.store.db)
    db = workdir / "store.duckdb"
    say(f"store: factory generate {a.store.recipe} into {db}")
    limit = ["--limit", str(a.store.limit)] if a.store.limit else []
    sets = [x for s in [f"model={a.base}", *a.store.set] for x in ("--set", s)]
    _factory("generate", str(a.path(a.store.recipe)), "--db", str(db), *limit, *sets)
    return db


def _plan(a: Ablation, db: Path, workdir: Path, say) -> dict:
    """Each policy's size in the store and the budget every arm trains on; fixed in plan.json at the first start."""
    path = workdir / "plan.json"
    plan = json.loads(path.read_text()) if path.exists() else None
    where = _sft_where(a)
    if plan is not None and (plan["where"] != where or asdict(a.budget) != plan["ablation"]["budget"]):
        raise FactoryError(
            f"{workdir} trained its arms on budget {plan['ablation']['budget']} where {plan['where']!r}; this"
            f" ablation asks for {asdict(a.budget)} where {where!r}: give it another --workdir"
        )
    sizes = dict(plan["sizes"]) if plan else {}
    for p in a.policies:  # a policy added since the first start is sized too, and must hold the budget
        if p not in sizes:
            picks = policies.pick(db, p, where)
            sizes[p] = {"examples": len(picks), "tokens": sum(x.n_tokens for x in picks)}
    unit = a.budget.unit
    size = plan["size"] if plan else a.budget.size or min(sizes[p][unit] for p in a.policies)
    short = [f"{p} ({sizes[p][unit]})" for p in a.policies if sizes[p][unit] < size]
    if short or size < 1:
        raise FactoryError(
            f"budget {size} {unit}: more than {', '.join(short) or 'every policy'} holds in {db}; lower budget.size,"
            " or make a bigger store"
        )
    if plan is None or sizes != plan["sizes"]:
        plan = {"unit": unit, "size": size, "sizes": sizes, "where": where, "ablation": asdict(a)}
        path.write_text(json.dumps(plan, indent=1) + "\n")
    say(f"budget: {size} {unit} for every arm ({', '.join(f'{p} {sizes[p][unit]}' for p in a.policies)} available)")
    return plan


def _sft_where(a: Ablation) -> str | None:
    from trainers.recipe import SFTRecipe
    from trainers.recipe import load as load_trainer

    return load_trainer(SFTRecipe, a.path(a.sft.recipe), a.sft.set).data.where


def _evaluate(a: Ablation, model: str, training: list[str]) -> dict:
    e, t = a.eval, time.monotonic()
    limit = ["--limit", str(e.limit)] if e.limit else []
    sets = [x for s in e.set for x in ("--set", s)]
    out = _json(_factory("eval", model, str(a.path(e.recipe)), *limit, *sets, *training, "--json", capture=True))
    ev = {k: out[k] for k in ("n", "correct", "accuracy", "ci95", "unseen")}
    benches = []
    if e.benchmarks:
        names = [x for b in e.benchmarks for x in ("--benchmark", b)]
        blimit = ["--limit", str(e.benchmark_limit)] if e.benchmark_limit else []
        got = _json(_factory("eval", model, *names, *blimit, "--json", capture=True))
        keys = ("benchmark", "problems", "pass@1", "pass@1_ci95", "ci95")
        benches = [{k: b.get(k) for k in keys} for b in got["benchmarks"]]
    return {"eval": ev, "benchmarks": benches, "eval_seconds": round(time.monotonic() - t, 1)}


def _json(stdout: str) -> dict:
    """A `--json` command's result: its last line (progress goes to stderr, but a library may print)."""
    return json.loads(stdout.strip().splitlines()[-1])
