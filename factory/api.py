"""factory as a library: what `factory generate`, a store reader and `factory eval` do, called from a program.

    import factory

    if __name__ == "__main__":  # worker processes start from the script's file: it must not start the job again
        done = factory.generate("recipes/arithmetic_demo.yaml", db="data/mine.duckdb", limit=8)
        print(done.run_id, done.tally.examples)
        with factory.open_store("data/mine.duckdb") as store:
            columns, rows = store.query("SELECT reason, count(*) FROM candidates GROUP BY 1")
        score = factory.eval_model("smollm2-135m-instruct", "recipes/arithmetic_demo.yaml", limit=20)
        print(score.line())  # accuracy K/N = P%

The CLI's commands are these functions with a progress bar and a printed summary; errors a user can fix raise
`factory.errors.FactoryError` with the message the CLI prints. Everything is imported when first called, so
`import factory` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factory.evaluate import Score
    from factory.forecast import Forecast
    from factory.recipe import Recipe
    from factory.sampler import Tally

DEFAULT_DB = "data/factory.duckdb"  # factory.store.DEFAULT_DB, without importing the store


@dataclass
class Generated:
    recipe: Recipe  # as it ran: the file with the overrides applied
    run_id: str
    resumed: bool  # the recipe's run was in the store already, and went on where it stopped
    tally: Tally  # what the run counted: prompts, candidates, examples, tokens, reasons
    db: Path


def generate(
    recipe: str | Path,
    *,
    db: str | Path = DEFAULT_DB,
    limit: int | None = None,
    overrides: Sequence[str] = (),
    progress: Callable[[Tally], None] | None = None,
    phase: Callable[..., None] | None = None,
    say: Callable[[str], None] | None = None,
    new_run: bool = False,
    retry: str | None = None,
    executor=None,
) -> Generated:
    """Run (or resume) a recipe's job into the store at `db`, as `factory generate` does.

    `overrides`: "key=value" settings ("sampling.temperature=0.8"); `limit`: the source's first N prompts;
    `progress(tally)`: called as rounds are committed; `phase(description, total=None, completed=0, unit=...)`: the
    steps before sampling; `say(message)`: notes for the user (a retry's plan); `new_run`, `retry`: as the CLI's
    --new-run and --retry; `executor(job, phase, progress) -> Tally`: where the job is sampled (default: here;
    `factory.distributed.executor(...)` for a Ray cluster)."""
    from factory.run import prepare, run_recipe

    r, prompts = prepare(Path(recipe), limit, list(overrides))
    tally, run_id, resumed = run_recipe(
        r, prompts, Path(db), new_run, phase or _quiet, progress, retry, say or _quiet, executor
    )
    return Generated(r, run_id, resumed, tally, Path(db))


def forecast(
    recipe: str | Path,
    *,
    db: str | Path = DEFAULT_DB,
    pilot: float = 0.02,
    limit: int | None = None,
    overrides: Sequence[str] = (),
    gpu_tokens_per_s: float | None = None,
    progress: Callable[[Tally], None] | None = None,
    phase: Callable[..., None] | None = None,
) -> tuple[Forecast, str]:
    """Sample a seeded random `pilot` share of the recipe's prompts into its run at `db` (kept: `generate` resumes
    from them) and forecast the whole job from them, as `factory generate --forecast` does; (forecast, run_id)."""
    from factory import forecast as fc
    from factory.run import prepare, run_recipe
    from factory.store import StoreReader

    r, prompts = prepare(Path(recipe), limit, list(overrides))
    picked = fc.pilot(prompts, pilot, r.sampling.seed)
    tally, run_id, _ = run_recipe(r, picked, Path(db), False, phase or _quiet, progress, done="pilot")
    ids = [p.prompt_id for p in picked]
    with StoreReader(Path(db)) as store:
        got = store.prompt_costs(run_id, ids)
    costs = [
        fc.PromptCost(*got[p.prompt_id]) if p.prompt_id in got else fc.PromptCost(p.source, p.task) for p in picked
    ]
    rate = tally.tokens_per_s or _ledger_rate(costs)
    gpu = ("1 GPU", gpu_tokens_per_s, "given") if gpu_tokens_per_s else fc.quoted(r.model)
    f = fc.forecast(costs, len({p.prompt_id for p in prompts}), rate, gpu, r.rejection.accept_per_prompt)
    f.pilot_seconds = tally.seconds
    return f, run_id


def _ledger_rate(costs) -> float:
    """Completion tokens per engine second, from the ledger (a pilot sampled before: this process drew nothing)."""
    seconds = sum(c.seconds for c in costs)
    return sum(c.tokens for c in costs) / seconds if seconds else 0.0


def open_store(db: str | Path = DEFAULT_DB, wait: float | None = None):
    """A reader of the store at `db` (`query(sql)`, `stats()`, ...; use it in a `with`). A writer that holds the
    file hands it over between its commits; `wait`: seconds to wait for that (default: the store's)."""
    from factory.store import StoreReader

    return StoreReader(Path(db)) if wait is None else StoreReader(Path(db), wait=wait)


def eval_model(
    model: str,
    recipe: str | Path,
    *,
    limit: int | None = None,
    overrides: Sequence[str] = (),
    training: Sequence[str | Path] = (),
    phase: Callable[..., None] | None = None,
) -> Score:
    """A model's greedy accuracy on a recipe's source, judged by the recipe's checks, as `factory eval` gives it
    (`.as_dict()` is what `--json` prints). `training`: stores and recipes the model trained on; the score also
    counts the prompts none of them holds (`unseen_*`)."""
    from factory import evaluate
    from factory.errors import FactoryError
    from factory.run import make_pool

    seen = evaluate.trained_on([Path(p) for p in training])
    r, prompts = evaluate.prepare(model, Path(recipe), list(overrides), limit)
    if not prompts:
        raise FactoryError(f"{recipe}: the source has no prompts to evaluate on")
    step = phase or _quiet
    with make_pool(r) as pool:
        return evaluate.evaluate(r, prompts, pool, lambda d, total=None, done=0: step(d, total, done, "prompts"), seen)


def eval_benchmarks(
    model: str,
    names: Sequence[str],
    recipe: str | Path | None = None,
    *,
    samples: int = 1,
    limit: int | None = None,
    overrides: Sequence[str] = (),
    phase: Callable[..., None] | None = None,
) -> list[dict]:
    """Each registered test set's score, as `factory eval --benchmark` gives it: pass@1 (greedy), or pass@k from
    `samples` answers a problem; with the recipe's engine, sampling and prompt, else the standard prompt."""
    from factory import bencheval
    from factory.errors import FactoryError
    from factory.recipe import load
    from factory.run import make_pool

    if samples < 1:
        raise FactoryError(f"--samples {samples}: at least 1")
    r: Recipe = load(Path(recipe) if recipe else bencheval.DEFAULT_RECIPE, list(overrides), needs_source=False)
    r.model = model
    out, say = [], phase or _quiet
    with make_pool(r) as pool:
        for name in names:
            step = lambda d, total=None, done=0, n=name: say(f"{n}: {d}", total, done, "problems")  # noqa: E731
            out.append(bencheval.evaluate(name, r, pool, samples, limit, step, standard=recipe is None))
    return out


def _quiet(*args, **kwargs) -> None:
    pass
