"""`factory generate` end to end: validate everything, then load the engine, then sample into the store.

Every check a user's mistake can fail (the recipe, the prompt file, the model) runs before the store gets a run
row, so a run that could not start leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import platform
from importlib.metadata import version
from pathlib import Path

from factory import judging, models, sources
from factory import recipe as recipes
from factory.recipe import Recipe
from factory.sampler import Tally, pending, sample
from factory.sources import Prompt
from factory.stages import Gate, set_aside
from factory.store import Store
from factory.workers import VerifyPool
from filters.registry import Settings

log = logging.getLogger(__name__)


def prepare(path: Path, limit: int | None, overrides: list[str]) -> tuple[Recipe, list[Prompt]]:
    """The recipe and its prompts, validated: every mistake in either is reported before anything starts."""
    r = recipes.load(path, overrides)
    return r, sources.load(r.source, limit)


def run_recipe(r: Recipe, prompts: list[Prompt], db: Path, new_run: bool = False,
               bar=lambda *a, **k: None, update=None) -> tuple[Tally, str, bool]:  # fmt: skip
    """Run (or resume) a recipe's job into the store at `db`; returns (tally, run_id, resumed)."""
    from factory import engines

    bar("preparing the model")
    model = r.model if r.engine.kind == "openai" else models.resolve(r.model)
    store = Store(db)
    try:
        run_id = None if new_run else store.find_run(r.hash())
        gate = Gate(r, store)
        if gate.active:
            bar("decontaminating and deduplicating prompts")
        prompts, dropped = gate.split(prompts)
        progress = store.progress(run_id) if run_id else {}
        if run_id and not pending(r, prompts, progress):  # finished already: no engine to load
            return sample(r, prompts, None, None, store, run_id, dropped=len(dropped)), run_id, True
        drawn = sum(p[0] for p in progress.values())
        bar("starting verification workers")
        with make_pool(r) as pool:
            bar(f"loading {r.model} on {r.engine.kind}")
            # a resumed run must not replay the random stream its first part already used
            engine = engines.build(r, model, seed=r.sampling.seed + drawn)
            pool.wait_ready()
            resumed = run_id is not None
            if resumed:
                store.set_status(run_id, "running")
            else:
                run_id = store.start_run(r.name, r.hash(), r.text, r.model, r.engine.kind,
                                         vars(r.sampling) | vars(r.rejection), _versions(engine))  # fmt: skip
            set_aside(store, run_id, gate, dropped)
            bar("sampling", total=len(prompts))
            try:
                judge = judging.build(r, engine)
                tally = sample(r, prompts, engine, pool, store, run_id, update, judge, gate, len(dropped))
            except BaseException:
                store.set_status(run_id, "interrupted")
                raise
            finally:
                engine.close()
            store.set_status(run_id, "complete")
        return tally, run_id, resumed
    finally:
        store.close()


def make_pool(r: Recipe) -> VerifyPool:
    """Verification workers for a recipe. A code answer may take the sandbox's whole wall time on top of the
    checks, so the hard limit per candidate is never shorter than that."""
    timeout = max(r.verify.timeout, r.sandbox.wall_s + 5)
    settings = Settings(sandbox=r.sandbox, readability=r.readability, language=r.language)
    return VerifyPool(r.verify.workers or os.cpu_count() or 1, timeout, settings=settings)


def _versions(engine) -> dict:
    return {
        "factory": version("factory"),
        "engine": getattr(engine, "version", engine.name),
        "python": platform.python_version(),
    }
