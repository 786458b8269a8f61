"""`factory generate` end to end: validate everything, then load the engine, then sample into the store.

Every check a user's mistake can fail (the recipe, the prompt file, the model) runs before the store gets a run
row, so a run that could not start leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from factory import checks, judging, models, sampler, sources
from factory import recipe as recipes
from factory.errors import FactoryError
from factory.recipe import Recipe
from factory.sampler import Tally, pending, sample
from factory.sources import Prompt
from factory.stages import Gate
from factory.store import StoreWriter
from factory.workers import VerifyPool
from filters.registry import Settings

log = logging.getLogger(__name__)


def prepare(path: Path, limit: int | None, overrides: list[str]) -> tuple[Recipe, list[Prompt]]:
    """The recipe and its prompts, validated: every mistake in either is reported before anything starts."""
    r = recipes.load(path, overrides)
    return r, sources.load(r.source, limit)


@dataclass
class Job(sampler.Job):
    """A job ready to sample, with what loading its engine needs."""

    model: str = ""  # resolved: a path or a name the engine loads
    seed: int = 0  # the engine's: a resumed run (or a retry) must not replay the random stream it already used


def run_recipe(
    r: Recipe,
    prompts: list[Prompt],
    db: Path,
    new_run: bool = False,
    bar=lambda *a, **k: None,
    update=None,
    retry: str | None = None,
    say=lambda msg: None,
    executor=None,
    done: str = "complete",
) -> tuple[Tally, str, bool]:
    """Run (or resume) a recipe's job into the store at `db`; returns (tally, run_id, resumed). With `retry`, the
    job is the prompts run `retry` left unfinished, its samples counted toward the budget (see `retry_plan`).
    `executor(job, bar, update) -> Tally` samples the job (default: `sample_here`, in this process). `done`: the
    run's status once these prompts are sampled ("pilot": a part of the job, factory/forecast.py)."""
    if retry and not Path(db).exists():
        raise FactoryError(f"--retry {retry}: no store at {db}")
    bar("preparing the model")
    model = r.model if r.engine.kind in ("openai", "replay") else models.resolve(r.model)
    store = StoreWriter(db)
    try:
        before: dict[str, tuple[int, int]] = {}
        if retry:
            prompts, before = retry_plan(store, r, prompts, retry, say)
        run_id = None if new_run else store.find_run(r.hash(), retry)
        gate = Gate(r, store)
        if gate.active:
            bar("decontaminating and deduplicating prompts")
        prompts, dropped = gate.split(prompts)
        prompts, weak, flags = checks.split(store, r, prompts, bar)
        dropped += weak
        progress = store.progress(run_id) if run_id else {}
        drawn = sum(p[0] for p in progress.values()) + sum(d for d, _ in before.values())
        job = Job(
            r, prompts, store, run_id, gate, dropped, before, flags, retry, model=model, seed=r.sampling.seed + drawn
        )
        if run_id and not pending(r, prompts, _with(progress, before)):  # finished already: no engine to load
            return sample(job, None, None), run_id, True
        try:
            tally = (executor or sample_here)(job, bar, update)
        except judging.JudgeRefused:
            store.set_status(job.run_id, "judge_refused")
            raise
        except BaseException:
            if job.begun:
                store.set_status(job.run_id, "interrupted")
            raise
        store.set_budget(job.run_id, tally.budget)
        store.set_status(job.run_id, tally.stopped or done)  # "budget": the same command, a larger one, goes on
        return tally, job.run_id, run_id is not None
    finally:
        store.close()


def sample_here(job: Job, bar, update) -> Tally:
    """Sample a job in this process: one engine, its verification workers, the streaming sampler."""
    from factory import engines

    r = job.recipe
    bar("starting verification workers")
    with make_pool(r, job.gate) as pool:
        bar(f"loading {r.model} on {engines.resolve_kind(r.engine.kind)}")
        engine = engines.build(r, job.model, seed=job.seed)
        try:
            pool.wait_ready()
            job.begin(_versions(engine, job.model), getattr(engine, "name", None))
            bar("sampling", total=len(job.prompts))
            judge = judging.build(r, engine)
            if judge is not None and r.judge.canaries:
                bar("grading the judge's canaries")
                result = judging.check_canaries(judge, job.prompts)
                job.store.set_canaries(job.run_id, result)  # in the run's row, refused or not
                judging.refuse_if_fooled(result)
            return sample(job, engine, pool, judge=judge, progress=update)
        finally:
            engine.close()


def retry_plan(
    store: StoreWriter, r: Recipe, prompts: list[Prompt], old: str, say=lambda msg: None
) -> tuple[list[Prompt], dict[str, tuple[int, int]]]:
    """The prompts a retry of run `old` samples: those of `prompts` (matched by prompt_id) that `old` sampled and
    left with fewer than accept_per_prompt kept, and whose max_samples is not spent; and, for each, (samples drawn,
    examples kept) by `old` and the runs it retried, which count toward the budget."""
    runs = store.lineage(old)
    if not runs:
        raise FactoryError(f"--retry {old}: no such run in {store.path}; its runs are listed by `factory stats`")
    rj, theirs = r.rejection, store.progress(old)
    before: dict[str, tuple[int, int]] = {}
    for run in runs:
        for pid, (drawn, _, kept, _) in store.progress(run).items():
            if pid in theirs:
                d, k = before.get(pid, (0, 0))
                before[pid] = (d + drawn, k + kept)
    left = {pid for pid, (_, k) in before.items() if k < rj.accept_per_prompt}
    ours = {p.prompt_id: p for p in prompts if p.prompt_id in left}  # a repeated prompt once
    todo = [p for pid, p in ours.items() if before[pid][0] < rj.max_samples]
    spent, missing = len(ours) - len(todo), len(left) - len(ours)
    msg = (
        f"run {old} kept fewer than accept_per_prompt={rj.accept_per_prompt} answers for {len(left)} of its"
        f" {len(theirs)} prompts; {len(todo)} are sampled again"
    )
    if spent:
        msg += (
            f"; {spent} spent rejection.max_samples={rj.max_samples} already and get no new samples (raise it,"
            f" e.g. --set rejection.max_samples={2 * rj.max_samples})"
        )
    if missing:
        msg += f"; {missing} are not in this recipe's source"
    if not todo:
        raise FactoryError(f"--retry {old}: nothing to sample. {msg}")
    say(msg)
    return todo, {p.prompt_id: before[p.prompt_id] for p in todo}


def _with(progress: dict, before: dict) -> dict:
    """`StoreReader.progress` with what earlier runs drew and kept of each prompt added: what `pending` reads."""
    out = dict(progress)
    for pid, (drawn, kept) in before.items():
        d, p, k, t = out.get(pid, (0, 0, 0, 0))
        out[pid] = (d + drawn, p, k + kept, t)
    return out


def make_pool(r: Recipe, gate: Gate | None = None) -> VerifyPool:
    """Verification workers for a recipe, doing the `gate`'s per-response work too. A code answer may take the
    sandbox's whole wall time on top of the checks, so the hard limit per candidate is never shorter than that."""
    timeout = max(r.verify.timeout, r.sandbox.wall_s + 5)
    prep = gate.prep if gate is not None else None
    cascade = tuple(r.verify.cascade_reasons) if r.verify.cascade else None
    settings = Settings(r.sandbox, r.readability, r.language, prepare=prep, cascade=cascade)
    return VerifyPool(r.verify.workers or os.cpu_count() or 1, timeout, settings=settings)


def _versions(engine, model_path: str | None = None) -> dict:
    """What made and judged a run's rows: the factory, the engine, the model's fingerprint, the verifiers."""
    from factory import provenance

    return {
        "factory": version("factory"),
        "engine": getattr(engine, "version", engine.name),
        "python": platform.python_version(),
        "model": provenance.fingerprint(model_path) if model_path else None,
        "verifiers": provenance.verifiers(),
    }
