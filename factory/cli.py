"""The `factory` command line.

factory generate recipes/arithmetic_demo.yaml     # sample, verify, store
factory stats                                     # what the store holds
factory query "SELECT reason, count(*) FROM candidates GROUP BY 1"
factory export --out data/sft.parquet
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from factory.errors import FactoryError
from factory.store import DEFAULT_DB

app = typer.Typer(
    help="A reasoning-data factory: rejection-sample a model's answers, verify them, keep the good ones in DuckDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
DbOpt = Annotated[Path, typer.Option("--db", help="The DuckDB store.")]


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except FactoryError as e:
        # escaped: a path or a query may hold [brackets]; soft_wrap: a path or a line stays whole
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)


@app.command()
def generate(
    recipe: Annotated[Path, typer.Argument(help="A recipe YAML, e.g. recipes/arithmetic_demo.yaml.")],
    db: DbOpt = Path(DEFAULT_DB),
    limit: Annotated[int | None, typer.Option(help="Use only the first N prompts of the source.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe setting: --set sampling.temperature=0.8")
    ] = None,
    new_run: Annotated[bool, typer.Option("--new-run", help="Start a fresh run instead of resuming.")] = False,
) -> None:
    """Run a recipe: sample answers, verify them, store every candidate and keep the accepted ones.

    Running the same recipe on the same store again resumes its run: finished prompts are skipped and samples
    already drawn count toward max_samples.
    """
    from factory.run import prepare, run_recipe

    r, prompts = prepare(recipe, limit, set_ or [])
    with _progress() as (bar, update):
        tally, run_id, resumed = run_recipe(r, prompts, db, new_run, bar, update)
    _summary(tally, run_id, resumed, db)


def _progress():
    from contextlib import contextmanager

    @contextmanager
    def ctx():
        cols = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]} · {task.fields[stats]}"),
            TimeElapsedColumn(),
        ]
        with Progress(*cols, console=console, transient=False) as progress:
            task = progress.add_task("starting", total=None, stats="", unit="prompts")

            def bar(description: str, total: int | None = None, completed: int = 0, unit: str = "prompts") -> None:
                progress.update(task, description=description, total=total, completed=completed, unit=unit)

            def update(t) -> None:
                rate = t.passed / t.candidates if t.candidates else 0.0
                stats = (
                    f"{t.candidates} candidates · {t.examples} accepted · {rate:.0%} pass · {t.tokens_per_s:,.0f} tok/s"
                )
                progress.update(task, completed=t.prompts_done, total=t.prompts, stats=stats)

            yield bar, update

    return ctx()


def _summary(t, run_id: str, resumed: bool, db: Path) -> None:
    rate = t.passed / t.candidates if t.candidates else 0.0
    table = Table(show_header=False, box=None, pad_edge=False)
    rows = [
        ("run", f"{run_id}" + (" (resumed)" if resumed else "")),
        (
            "prompts",
            f"{t.prompts} ({t.prompts_solved} with an accepted answer)"
            + (f"; {t.prompts_set_aside} set aside (benchmark leaks, near-duplicates)" if t.prompts_set_aside else ""),
        ),
        ("candidates", f"{t.candidates} ({t.new_candidates} drawn now)"),
        ("accepted", f"{t.examples} examples; {t.passed} candidates passed ({rate:.1%})"),
        ("tokens/s", f"{t.tokens_per_s:,.0f} ({t.new_tokens:,} tokens in {t.seconds:.1f}s)"),
        ("rejected", ", ".join(f"{k} {v}" for k, v in sorted(t.reasons.items(), key=lambda kv: -kv[1])) or "-"),
        ("store", str(db)),
        ("try", f"factory query \"SELECT messages FROM examples WHERE run_id = '{run_id}' LIMIT 3\" --db {db}"),
    ]
    for k, v in rows:
        table.add_row(f"[bold]{k}[/]", v)
    console.print(table)


@app.command(name="filter")
def filter_(
    src: Annotated[
        Path, typer.Argument(help="Records, one JSON object per line: id, task, prompt, reference, completion.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the records back with their verdicts.")],
    recipe: Annotated[
        Path | None, typer.Option(help="Take filters, sandbox limits, judge and workers from this recipe.")
    ] = None,
    think: Annotated[
        bool | None, typer.Option("--think/--no-think", help="Completions reason in <think> (default: detect).")
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="Keep dedup state in this store: near-duplicates of its texts go too.")
    ] = None,
) -> None:
    """Verify and filter existing records (curating a dataset someone else made).

    Each record comes back with "accepted", "reason" (a snake_case code, null when accepted) and "scores".
    Without --recipe the filters are format and verify (math answers, code run against its tests in the sandbox).
    """
    from factory import curate, judging
    from factory.recipe import Recipe, load
    from factory.run import make_pool
    from factory.stages import Gate
    from factory.store import Store

    r = load(recipe) if recipe else Recipe()
    n = curate.check(src)
    store = Store(db) if db else None
    with _progress() as (bar, _), make_pool(r) as pool:
        if judging.STAGE in r.filters:
            bar(f"loading the judge {r.judge.model or r.model}")
        judge = judging.build(r)
        gate = Gate(r, store)
        bar("filtering", total=n, unit="records")
        counts = curate.run_filter(src, out, r, pool, judge, think,
                                   lambda done, _c: bar("filtering", n, done, "records"), gate, store)  # fmt: skip
    if store:
        store.close()
    rate = counts["accepted"] / counts["records"]
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts["reasons"].items(), key=lambda kv: -kv[1])) or "-"
    console.print(f"{counts['records']} records, {counts['accepted']} accepted ({rate:.1%}); rejected: {reasons}")
    console.print(f"wrote {out}")


@app.command()
def stats(db: DbOpt = Path(DEFAULT_DB), as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the store holds: runs, candidates, acceptance, drop reasons, per source and task."""
    from factory.store import Store

    store = Store(db, read_only=True)
    s = store.stats()
    store.close()
    if as_json:
        print(json.dumps(s, default=str, indent=2))
        return
    out = Console()
    rate = s["passed"] / s["candidates"] if s["candidates"] else 0.0
    out.print(
        f"[bold]{s['store']}[/]: {s['prompts']} prompts, {s['candidates']} candidates, "
        f"{s['passed']} passed ({rate:.1%}), {s['examples']} examples"
    )
    _table(out, "runs", ["run_id", "name", "model", "status", "prompts", "candidates", "passed", "tokens"],
           [[r[k] for k in ("run_id", "name", "model", "status", "prompts", "candidates", "passed", "tokens")]
            for r in s["runs"]])  # fmt: skip
    _table(out, "by source", ["source", "task", "candidates", "passed", "examples"],
           [list(r.values()) for r in s["by_source"]])  # fmt: skip
    _table(out, "drop reasons", ["reason", "count"], [[k, v] for k, v in s["reasons"].items()])


def _table(out: Console, title: str, cols: list[str], rows: list[list]) -> None:
    t = Table(title=title, title_justify="left")
    for c in cols:
        t.add_column(escape(c))
    for r in rows:
        t.add_row(*(escape(str(v)) for v in r))  # model text holds [brackets] ([/INST]) that are not markup
    out.print(t)


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL over runs, prompts, candidates, examples.")],
    db: DbOpt = Path(DEFAULT_DB),
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
) -> None:
    """Run SQL on the store (read-only) and print the result."""
    from factory.store import Store

    if fmt not in ("table", "csv", "json"):
        raise FactoryError(f"--format {fmt!r}: use table, csv or json")
    store = Store(db, read_only=True)
    cols, rows = store.query(sql)
    store.close()
    if fmt == "json":
        for r in rows:
            print(json.dumps(dict(zip(cols, r, strict=True)), default=str))
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(cols)
        w.writerows(rows)
    else:
        _table(Console(), "", cols, [list(r) for r in rows])


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="The file to write.")],
    db: DbOpt = Path(DEFAULT_DB),
    fmt: Annotated[str | None, typer.Option("--format", help="parquet | jsonl (default: from --out)")] = None,
    where: Annotated[str | None, typer.Option(help="SQL condition on examples, e.g. \"task = 'math'\".")] = None,
) -> None:
    """Export the accepted examples (messages in the chat format TRL's SFTTrainer reads)."""
    from factory.store import Store

    fmt = fmt or ("jsonl" if out.suffix in (".jsonl", ".json") else "parquet")
    if fmt not in ("parquet", "jsonl"):
        raise FactoryError(f"--format {fmt!r}: use parquet or jsonl")
    store = Store(db, read_only=True)
    n = store.export(out, fmt, where)
    store.close()
    console.print(f"wrote {n} examples to {out}")


if __name__ == "__main__":
    main()
