"""The `factory` command line: the app, `generate`, `run`, `ablate` and `train`; factory/cli_eval.py and
factory/cli_store.py hold the commands that judge and those that read the store.

factory generate recipes/arithmetic_demo.yaml     # sample, verify, store
factory eval smollm2-135m-instruct recipes/arithmetic_demo.yaml   # greedy accuracy
factory stats                                     # what the store holds
factory query "SELECT reason, count(*) FROM candidates GROUP BY 1"
factory export --out data/sft.parquet
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factory import cli_audit, cli_eval, cli_store
from factory.cli_common import DbOpt, LimitOpt, SetOpt, bars, console, per_worker, spent_line
from factory.cli_common import table as table_
from factory.errors import USER_ERRORS, FactoryError
from factory.store import DEFAULT_DB

app = typer.Typer(
    help="A reasoning-data factory: rejection-sample a model's answers, verify them, keep the good ones in DuckDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",  # help paragraphs flow to the terminal (rich mode kept the docstrings' line breaks)
)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except USER_ERRORS as e:
        # escaped: a path or a query may hold [brackets]; soft_wrap: a path or a line stays whole
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)


@app.command()
def generate(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML, e.g. recipes/arithmetic_demo.yaml.")],
    db: DbOpt = Path(DEFAULT_DB),
    limit: LimitOpt = None,
    set_: SetOpt = None,
    new_run: Annotated[bool, typer.Option("--new-run", help="Start a fresh run instead of resuming.")] = False,
    retry: Annotated[
        str | None,
        typer.Option(
            "--retry",
            metavar="RUN_ID",
            help="Sample again, in a new run with this recipe's settings, only the prompts run RUN_ID left with"
            " fewer than accept_per_prompt answers; its samples count toward max_samples.",
        ),
    ] = None,
    executor: Annotated[
        str, typer.Option(help="local (this process) | ray (shards of prompts on a Ray cluster's actors).")
    ] = "local",
    workers: Annotated[
        int, typer.Option(help="--executor ray: actors, one engine each (default: one per GPU group, else 1).")
    ] = 0,
    address: Annotated[
        str | None,
        typer.Option(
            help="--executor ray: HOST:PORT of the cluster to join (ray start --head; docs/cluster.md says"
            " how its token reaches the command); default: a local one."
        ),
    ] = None,
    shard_prompts: Annotated[
        int,
        typer.Option(help="--executor ray: prompts per shard (default: 4 engine-fulls, a shard per worker at most)."),
    ] = 0,
    budget: Annotated[
        list[str] | None,
        typer.Option(
            "--budget",
            metavar="tokens=N|hours=N",
            help="Stop cleanly once the run has spent this (prompt and completion tokens, or engine hours); the same"
            " command with a larger budget goes on. Default: the recipe's budget section, else none.",
        ),
    ] = None,
    forecast: Annotated[
        bool,
        typer.Option(
            "--forecast",
            help="Sample a pilot (--pilot, a seeded random share of the prompts; its samples are kept and the full"
            " run resumes from them) and forecast the whole job: samples, tokens, cut answers, examples and time,"
            " per prompt class, with 90% intervals.",
        ),
    ] = False,
    pilot: Annotated[str, typer.Option(help="--forecast: the share of prompts in the pilot, e.g. 2% or 0.05.")] = "2%",
    gpu_tokens_per_s: Annotated[
        float | None,
        typer.Option(
            help="--forecast: completion tokens/s of one GPU, to time the job on (default: a quoted figure for the"
            " model, where there is one).",
        ),
    ] = None,
) -> None:
    """Run a recipe: sample answers, verify them, store every candidate and keep the accepted ones.

    Running the same recipe on the same store again resumes its run: finished prompts are skipped and samples
    already drawn count toward max_samples. With --retry RUN_ID (e.g. with --set sampling.max_tokens=8192) a new run
    samples only the prompts that run sampled and left unfinished, counting its samples and kept answers; running
    the same command again resumes that retry.

    With --executor ray the prompts are cut into shards, each sampled completely by one actor of a Ray cluster (one
    engine per actor); the store, its rows and the rules are a local run's, and a rerun resumes either.
    """
    from factory import api

    run = None
    if executor == "ray":
        from factory.distributed import executor as ray_executor

        run = ray_executor(workers, address, shard_prompts)
    elif executor != "local":
        raise FactoryError(f"--executor {executor!r}: use local or ray")
    elif workers or address or shard_prompts:
        raise FactoryError("--workers, --address and --shard-prompts go with --executor ray")
    if workers < 0 or shard_prompts < 0:
        raise FactoryError("--workers and --shard-prompts: a positive number (0: the default)")
    from factory import budget as budgets

    overrides = [*(set_ or []), *budgets.parse(budget or [])]
    if forecast:
        if retry or new_run:
            raise FactoryError("--forecast samples its pilot in the recipe's own run: leave out --retry and --new-run")
        _forecast(recipe, db, limit, overrides, pilot, gpu_tokens_per_s, executor)
        return
    with bars() as (bar, update):
        say = lambda msg: console.print(escape(msg), highlight=False, soft_wrap=True)  # noqa: E731
        done = api.generate(
            recipe,
            db=db,
            limit=limit,
            overrides=overrides,
            progress=update,
            phase=bar,
            say=say,
            new_run=new_run,
            retry=retry,
            executor=run,
        )
    _summary(done.tally, done.run_id, done.resumed, db, retry, _leaks(done.recipe, db))


def _forecast(
    recipe: Path, db: Path, limit, overrides: list[str], pilot: str, gpu: float | None, executor: str
) -> None:
    """`factory generate --forecast`: the pilot, sampled with a progress bar, then the forecast's tables."""
    from factory import api
    from factory import forecast as fc

    if executor != "local":
        raise FactoryError("--forecast samples its pilot here: leave out --executor")
    share = fc.share(pilot)
    with bars() as (bar, update):
        f, run_id = api.forecast(
            recipe,
            db=db,
            pilot=share,
            limit=limit,
            overrides=overrides,
            gpu_tokens_per_s=gpu,
            progress=update,
            phase=bar,
        )
    out = Console()
    out.print(f"[bold]forecast[/] of {f.prompts} prompts from a pilot of {f.pilot} ({share:.0%}), kept in run {run_id}")
    cols, rows = fc.class_rows(f)
    table_(out, "per prompt class (difficulty: the pilot's pass rate)", cols, rows)
    table_(out, "the whole job (90% interval)", ["", "forecast", "interval"], fc.total_rows(f))
    out.print(
        f"the pilot's {f.pilot} prompts are done; the same command without --forecast samples the rest", highlight=False
    )


def _leaks(r, db: Path) -> str:
    """Decontamination's line for a run summary: each benchmark checked, with what the store holds of its hits."""
    from factory import benchmarks
    from factory.store import StoreReader

    names = benchmarks.checked(r.decontam, r.filters)
    if not names:
        return benchmarks.leak_line([], [])
    store = StoreReader(db)
    try:
        return benchmarks.leak_line(names, store.leaks())
    finally:
        store.close()


def _summary(t, run_id: str, resumed: bool, db: Path, retry: str | None = None, leaks: str = "") -> None:
    rate = t.passed / t.candidates if t.candidates else 0.0
    table = Table(show_header=False, box=None, pad_edge=False)
    rows = [
        ("run", f"{run_id}" + (f" (retry of {retry})" if retry else "") + (" (resumed)" if resumed else "")),
        (
            "prompts",
            f"{t.prompts} ({t.prompts_solved} with an accepted answer)"
            + (
                f"; {t.prompts_set_aside} set aside (benchmark leaks, near-duplicates, weak or broken tests)"
                if t.prompts_set_aside
                else ""
            ),
        ),
        ("candidates", f"{t.candidates} ({t.new_candidates} drawn now)"),
        ("accepted", f"{t.examples} examples; {t.passed} candidates passed ({rate:.1%})"),
        (
            "tokens/s",
            f"{t.tokens_per_s:,.0f} ({t.new_tokens:,} tokens in {t.seconds:.1f}s"
            + (", the workers' start included)" if getattr(t, "workers", None) else ")"),
        ),
        *([("workers", per_worker(t.workers, long=True))] if getattr(t, "workers", None) else []),
        *_cost_rows(t),
        ("rejected", ", ".join(f"{k} {v}" for k, v in sorted(t.reasons.items(), key=lambda kv: -kv[1])) or "-"),
        *([("decontam", escape(leaks))] if leaks else []),
        ("store", str(db)),
        ("try", f"factory query \"SELECT messages FROM examples WHERE run_id = '{run_id}' LIMIT 3\" --db {db}"),
    ]
    for k, v in rows:
        table.add_row(f"[bold]{k}[/]", v)
    console.print(table)


def _cost_rows(t) -> list[tuple[str, str]]:
    """The run's bill (the cost ledger), what it noticed, and whether it stopped at its budget."""
    if not getattr(t, "candidates", 0) or not hasattr(t, "prompt_tokens"):
        return []
    per = f"; {(t.tokens + t.prompt_tokens) / t.examples:,.0f} per kept example" if t.examples else ""
    noticed = " (noticed: see the note above)" if t.notices else ""
    rows = [
        ("cost", f"{t.prompt_tokens:,} prompt + {t.tokens:,} completion tokens, {t.engine_seconds:,.1f} engine s{per}"),
        ("truncated", f"{t.truncated / t.candidates:.1%} of candidates ended at max_tokens ({t.truncated}){noticed}"),
    ]
    if t.stopped == "budget":
        rows.append(("stopped", f"at the budget ({spent_line(t)}): run it again with a larger --budget to go on"))
    return rows


@app.command(name="run")
def run_pipeline(
    pipeline: Annotated[Path, typer.Argument(help="A pipeline YAML, e.g. recipes/r1/tiny.yaml.")],
    workdir: Annotated[Path | None, typer.Option(help="Where the stages write (default: data/runs/NAME).")] = None,
) -> None:
    """Run R1's stages in order (GRPO, cold-start SFT, reasoning RL, rejection sampling, SFT, final RL), each
    stage's output feeding the next, each evaluated with `factory eval`.

    Started again, it skips the stages it finished and resumes the one it was in. Each stage writes its folder under
    the work folder and a line to stages.jsonl; `final` there is the last model. Ends with a table of each stage's
    time and held-out accuracy, on all the eval problems and on those that no data it trained on holds.
    """
    from factory import pipeline as pipelines

    p = pipelines.load(pipeline)
    folder = workdir or Path("data") / "runs" / p.name
    rows = pipelines.run(p, folder, lambda msg: console.print(f"[bold]stage[/] {escape(msg)}", highlight=False))
    t = Table(title=f"{p.name} in {folder}")
    for col in ("stage", "kind", "seconds", "held-out accuracy", "unseen in training", "metrics"):
        t.add_column(col)
    for r in rows:
        ev = r.get("eval")
        acc = f"{100 * ev['accuracy']:.1f}% ({ev['correct']}/{ev['n']})" if ev else "-"
        u = (ev or {}).get("unseen")
        unseen = f"{100 * u['accuracy']:.1f}% ({u['correct']}/{u['n']})" if u else "-"
        metrics = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.get("metrics", {}).items()
        )
        t.add_row(r["stage"], r["kind"], f"{r['seconds']:.0f}", acc, unseen, escape(metrics))
    Console().print(t)
    console.print(f"final model: {folder / 'final'}", highlight=False)


@app.command()
def ablate(
    ablation: Annotated[Path, typer.Argument(help="An ablation YAML, e.g. recipes/ablate/arithmetic.yaml.")],
    workdir: Annotated[Path | None, typer.Option(help="Where the arms write (default: data/runs/NAME).")] = None,
    set_: SetOpt = None,
) -> None:
    """Train on each keep-policy from one store, on an equal budget, and measure which data teaches best.

    Each arm (a policy and a seed) trains the base model with the SFT recipe on its policy's picks, cut to the same
    number of examples or reply tokens, and is evaluated with `factory eval` on the same held-out problems. Started
    again, it skips the arms it finished and resumes the one it was in. Ends with a table (policy, examples, tokens,
    accuracy with its 95% interval, the difference from the base model and from `verified`), written with a report
    page to the work folder; `factory report --ablation WORKDIR` adds it to a store's report.

    Policies: verified, all, verified+wrong[:SHARE], one-per-prompt, k-per-prompt[:K], shortest-verified,
    first-sample, wrong, pass-rate[:LOW-HIGH], max-tokens[:N], any (docs/ablate.md says what each keeps).
    """
    from factory import ablate as ablations
    from factory import ablate_results, report
    from factory.store import StoreReader

    a = ablations.load(ablation, set_ or [])
    folder = workdir or Path("data") / "runs" / a.name
    say = lambda msg: console.print(f"[bold]ablate[/] {escape(msg)}", highlight=False, soft_wrap=True)  # noqa: E731
    result = ablations.run(a, folder, say)
    ablate_results.write(result, folder)
    with StoreReader(result["store"]) as store:
        (folder / "report.html").write_text(report.render(store, ablations=[result]))
    print(ablate_results.markdown(result))  # a table wider than a terminal: markdown keeps every cell whole
    console.print(f"table: {folder / 'results.md'}; page: {folder / 'report.html'}", highlight=False)


@app.command()
def train(
    kind: Annotated[str, typer.Argument(help="sft | grpo | moe")],
    recipe: Annotated[Path, typer.Argument(help="A trainer recipe, e.g. recipes/sft_tiny.yaml.")],
    db: DbOpt = Path(DEFAULT_DB),
    out: Annotated[Path | None, typer.Option(help="Checkpoints, metrics and the model (default: recipe's).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe setting (sft, grpo): --set model=DIR")
    ] = None,
) -> None:
    """Train on the store: SFT on its examples, GRPO on its prompts with the filters as rewards, or a small MoE.

    Resumes from the last checkpoint in the output folder. The folder ends up holding the trained model: name it as
    the `model:` of a generate recipe to sample from it.
    """
    from trainers.cli import train as run_trainer

    folder = run_trainer(kind, recipe, db, out, set_ or [])
    console.print(f"trained model in {folder} (metrics in {folder / 'metrics.jsonl'})", highlight=False)


cli_eval.register(app)  # after this module's own: `factory --help` lists the commands in this order
cli_store.register(app)
cli_audit.register(app)


if __name__ == "__main__":
    main()
