"""The `factory` command line.

factory generate recipes/arithmetic_demo.yaml     # sample, verify, store
factory eval smollm2-135m-instruct recipes/arithmetic_demo.yaml   # greedy accuracy
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

from factory.errors import USER_ERRORS, FactoryError
from factory.store import DEFAULT_DB

app = typer.Typer(
    help="A reasoning-data factory: rejection-sample a model's answers, verify them, keep the good ones in DuckDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",  # help paragraphs flow to the terminal (rich mode kept the docstrings' line breaks)
)
console = Console(stderr=True)
DbOpt = Annotated[Path, typer.Option("--db", help="The DuckDB store.")]


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
    limit: Annotated[int | None, typer.Option(help="Use only the first N prompts of the source.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe setting: --set sampling.temperature=0.8")
    ] = None,
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
    with _progress() as (bar, update):
        say = lambda msg: console.print(escape(msg), highlight=False, soft_wrap=True)  # noqa: E731
        done = api.generate(
            recipe,
            db=db,
            limit=limit,
            overrides=set_ or [],
            progress=update,
            phase=bar,
            say=say,
            new_run=new_run,
            retry=retry,
            executor=run,
        )
    _summary(done.tally, done.run_id, done.resumed, db, retry, _leaks(done.recipe, db))


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
                if getattr(t, "shards", 0):  # --executor ray
                    stats = f"shards {t.shards_done}/{t.shards} · {stats} ({_per_worker(t.workers)})"
                progress.update(task, completed=t.prompts_done, total=t.prompts, stats=stats)

            yield bar, update

    return ctx()


def _eval_benchmarks(
    model: str,
    recipe: Path | None,
    names: list[str],
    samples: int,
    limit: int | None,
    overrides: list[str],
    as_json: bool,
) -> None:
    """`factory eval --benchmark`: each set's score, a table per set (and per subject and level where it has them)."""
    from factory import api

    with _progress() as (bar, _):
        scores = api.eval_benchmarks(model, names, recipe, samples=samples, limit=limit, overrides=overrides, phase=bar)
    if as_json:
        print(json.dumps({"model": model, "benchmarks": scores}))
        return
    out = Console()
    for sc in scores:
        _bench_table(out, sc)


def _bench_table(out: Console, sc: dict) -> None:
    metric = [k for k in sc if k.startswith("pass@") and not k.endswith("ci95")]
    ci = lambda d, k: d.get(f"{k}_ci95") or d.get("ci95")  # noqa: E731
    cell = lambda d, k: f"{100 * d[k]:.1f}% ({100 * ci(d, k)[0]:.1f}-{100 * ci(d, k)[1]:.1f})"  # noqa: E731
    rows = [["all", sc["problems"], *(cell(sc, k) for k in metric)]]
    for key in ("by_subject", "by_level"):
        rows += [[f"{key[3:]} {g}", d["problems"], *(cell(d, k) for k in metric)] for g, d in sc.get(key, {}).items()]
    title = (
        f"{sc['benchmark']}: {sc['samples']} answer(s) per problem, {sc['seconds']}s, mean"
        f" {sc['mean_tokens']:.0f} tokens ({sc['truncated']} cut off)"
    )
    _table(out, title, ["", "problems", *metric], rows)
    misses = ", ".join(f"{k} {v}" for k, v in sc["misses"].items()) or "-"
    out.print(f"misses: {escape(misses)}", highlight=False)
    print(f"{sc['benchmark']} " + " ".join(f"{k} = {100 * sc[k]:.1f}%" for k in metric))


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
        *([("workers", _per_worker(t.workers, long=True))] if getattr(t, "workers", None) else []),
        ("rejected", ", ".join(f"{k} {v}" for k, v in sorted(t.reasons.items(), key=lambda kv: -kv[1])) or "-"),
        *([("decontam", escape(leaks))] if leaks else []),
        ("store", str(db)),
        ("try", f"factory query \"SELECT messages FROM examples WHERE run_id = '{run_id}' LIMIT 3\" --db {db}"),
    ]
    for k, v in rows:
        table.add_row(f"[bold]{k}[/]", v)
    console.print(table)


def _per_worker(workers: dict, long: bool = False) -> str:
    """Tokens/s of each Ray worker while it sampled (engine loading not counted)."""
    rate = lambda w: w["tokens"] / w["seconds"] if w["seconds"] else 0.0  # noqa: E731
    if not long:
        return ", ".join(f"{rate(w):,.0f}" for w in workers.values()) + " tok/s per worker"
    return "; ".join(
        f"{name}: {w['shards']} shards, {w['candidates']} candidates, {rate(w):,.0f} tok/s"
        for name, w in workers.items()
    )


@app.command(name="benchmarks")
def benchmarks_(
    import_from: Annotated[
        list[Path] | None,
        typer.Option(
            "--import",
            help="Copy the registered files found in this checkout of an origin repository"
            " (repeatable) into data/benchmarks/files/, each checked against the manifest's SHA-256.",
        ),
    ] = None,
    index: Annotated[
        bool, typer.Option("--index", help="Remake data/benchmarks/ngrams.npz (decontamination) from every set.")
    ] = False,
) -> None:
    """The benchmark registry: each set's task, splits, rows, license, origin, and whether its file is here.

    The files are not part of this repository: take each from the origin the table names (a repository at a
    commit), then `factory benchmarks --import CHECKOUT` copies what it finds there. Decontamination needs none of
    them: every set's n-gram hashes are in data/benchmarks/ngrams.npz. FACTORY_BENCHMARKS names another folder.
    """
    from factory import benchmarks

    for root in import_from or []:
        found = benchmarks.import_from(root)
        for s, what in found:
            console.print(f"{s.name} ({s.split}): {what}", highlight=False)
        if not found:
            raise FactoryError(f"--import {root}: no registered file there (factory benchmarks lists their paths)")
    if index:
        console.print(f"wrote {benchmarks.write_index()}", highlight=False)
    rows = [
        [b.name, b.task, s.split, s.rows, "yes" if s.present else "no", s.where(), b.license]
        for b in benchmarks.registry().values()
        for s in b.splits.values()
    ]
    _table(Console(), "benchmarks", ["name", "task", "split", "rows", "here", "origin", "license"], rows)


@app.command(name="eval")
def eval_(
    model: Annotated[str, typer.Argument(help="A model folder, the bundled smollm2-135m-instruct, or a hub id.")],
    recipe: Annotated[
        Path | None,
        typer.Argument(
            help="A recipe whose source, prompt, engine and verifiers to use (with --benchmark: its"
            " engine, sampling and prompt; default recipes/benchmark_eval.yaml with the standard prompt)."
        ),
    ] = None,
    benchmark: Annotated[
        list[str] | None,
        typer.Option(
            "--benchmark",
            help="A registered test set (repeatable): math500, gsm8k, aime24, ...; see `factory benchmarks`.",
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option(help="With --benchmark: answers per problem; above 1, pass@k by the unbiased estimator.")
    ] = 1,
    limit: Annotated[int | None, typer.Option(help="Use only the first N prompts of the source.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a recipe setting: --set source.seed=7")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")] = False,
    training: Annotated[
        list[Path] | None,
        typer.Option(
            "--training",
            help="A store or recipe the model trained on (repeatable): accuracy on the prompts none of them"
            " holds is reported too.",
        ),
    ] = None,
) -> None:
    """A model's greedy accuracy on a recipe's source, judged by the recipe's verifiers.

    One answer per prompt at temperature 0, with the recipe's prompt template and engine; an answer counts when it
    passes the recipe's format and verify stages. Prints accuracy with its 95% interval, mean tokens, and why the
    misses missed, ending with the line `accuracy K/N = P%`. Fresh problems of a small family can repeat training
    problems: name the training stores and recipes with --training to see the accuracy on the unseen ones.

    With --benchmark NAME (repeatable) it scores registered test sets instead (`factory benchmarks`): each problem
    with its task's standard prompt ("Please reason step by step, and put your final answer within \\boxed{}.")
    unless a RECIPE is named, greedy pass@1 with Wilson intervals, or --samples N answers a problem at the recipe's
    temperature and pass@k for k = 1, 2, 4 ... N by the unbiased estimator; MATH-style sets also per subject and
    level. Each set ends with a line `NAME pass@1 = P%`.
    """
    from factory import api, evaluate

    if benchmark:
        return _eval_benchmarks(model, recipe, benchmark, samples, limit, set_ or [], as_json)
    if recipe is None:
        raise FactoryError("factory eval: name a RECIPE, or a registered test set with --benchmark NAME")
    with _progress() as (bar, _):
        score = api.eval_model(model, recipe, limit=limit, overrides=set_ or [], training=training or [], phase=bar)
    if as_json:
        print(json.dumps(score.as_dict()))
        return
    lo, hi = score.interval()
    ulo, uhi = evaluate.wilson(score.unseen_correct, score.unseen_n)
    unseen = (
        f"{100 * score.unseen_accuracy:.1f}% ({score.unseen_correct}/{score.unseen_n} prompts; 95% interval"
        f" {100 * ulo:.1f}-{100 * uhi:.1f}%)"
    )
    out = Console()
    t = Table(show_header=False, box=None, pad_edge=False)
    for k, v in [
        ("model", model),
        ("recipe", f"{recipe} ({score.n} prompts, greedy)"),
        ("accuracy", f"{100 * score.accuracy:.1f}% (95% interval {100 * lo:.1f}-{100 * hi:.1f}%)"),
        *([("unseen in training", unseen)] if training else []),
        ("mean tokens", f"{score.mean_tokens:.0f} ({score.truncated} cut off at max_tokens)"),
        ("misses", ", ".join(f"{k} {v}" for k, v in score.misses.most_common()) or "-"),
        ("time", f"{score.seconds:.1f}s"),
    ]:
        t.add_row(f"[bold]{k}[/]", escape(str(v)))
    out.print(t)
    print(score.line())


@app.command(name="filter")
def filter_(
    src: Annotated[
        Path,
        typer.Argument(
            help="Records: JSONL (UTF-8, one JSON object per line: id, task, prompt, reference, completion), a"
            " .parquet file, a folder of .parquet files, or a folder written by datasets' save_to_disk."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Where to write the records back with their verdicts, in the input's format: JSONL as JSONL; Parquet"
            " or a datasets folder as one .parquet file.",
        ),
    ],
    recipe: Annotated[
        Path | None,
        typer.Option(
            help="Take filters, verify workers, sandbox limits, judge and quality settings from this recipe;"
            " it needs no source (e.g. recipes/filter_math.yaml)."
        ),
    ] = None,
    think: Annotated[
        bool | None,
        # in backticks: the help is markdown, where a bare <think> is an HTML tag and vanishes
        typer.Option("--think/--no-think", help="Completions reason in `<think>` (default: detect)."),
    ] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="Keep dedup state in this store: near-duplicates of its texts go too.")
    ] = None,
    fields: Annotated[
        str | None,
        typer.Option(
            metavar="FIELD=COLUMN,...",
            help="Which column holds each record field (id, task, prompt, reference, completion, language,"
            " finish_reason, solution), e.g. prompt=problem,reference=answer,completion=generations,id=uuid;"
            " a field left out is read from the column of its own name, if any. A list in the completion column:"
            " one candidate per element, id ID#K.",
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="Every record's task (math, code, general), e.g. for a dataset with no task column."),
    ] = None,
) -> None:
    """Verify and filter existing records (curating a dataset someone else made).

    Each record comes back with "accepted", "reason" (a snake_case code, null when accepted) and "scores" (in
    Parquet, a JSON string). Without --recipe the filters are format and verify (math answers, code run against its
    tests in the sandbox). A file that is not UTF-8 (a UTF-8 byte-order mark is fine) is refused, naming the line,
    before any work; OUT is written whole at the end or not at all.

    A public dataset is read through --fields (and --task): e.g. OpenR1-Math-220k with --fields
    prompt=problem,reference=answer,completion=generations,id=uuid --task math. Each element of its generations
    list is judged on its own; a problem's candidates come back adjacent, in element order, one row each.
    """
    from factory import curate, judging, tablefile
    from factory.recipe import Recipe, load
    from factory.run import make_pool
    from factory.stages import Gate
    from factory.store import StoreWriter
    from filters.registry import JUDGE

    r = load(recipe, needs_source=False) if recipe else Recipe()
    mapping = tablefile.Fields.parse(fields, task)
    tablefile.check_out(src, out)
    n = curate.check(src, mapping)
    store = StoreWriter(db) if db else None
    with _progress() as (bar, _), make_pool(r) as pool:
        if JUDGE in r.filters:
            bar(f"loading the judge {r.judge.model or r.model}")
        judge = judging.build(r)
        gate = Gate(r, store)
        bar("filtering", total=n, unit="records")
        progress = lambda done, _c: bar("filtering", n, done, "records")  # noqa: E731
        counts = curate.run_filter(src, out, r, pool, judge, think, progress, gate, store, mapping)
    if store:
        store.close()
    rate = counts["accepted"] / counts["records"]
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts["reasons"].items(), key=lambda kv: -kv[1])) or "-"
    console.print(f"{counts['records']} records, {counts['accepted']} accepted ({rate:.1%}); rejected: {reasons}")
    console.print(f"wrote {out}")


@app.command()
def stats(db: DbOpt = Path(DEFAULT_DB), as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the store holds: runs, candidates, acceptance, drop reasons, per source and task.

    Works while `factory generate` writes the store: it reads what was committed and says how far the job is.
    """
    from factory import benchmarks
    from factory.live import reading

    with reading(db) as (store, live):
        s = store.stats()
        s["checked_against"] = benchmarks.checked_by_runs(store.runs())
    _live(live)
    if as_json:
        print(json.dumps(s | {"live": live}, default=str, indent=2))
        return
    out = Console()
    rate = s["passed"] / s["candidates"] if s["candidates"] else 0.0
    out.print(
        f"[bold]{s['store']}[/]: {s['prompts']} prompts, {s['candidates']} candidates, "
        f"{s['passed']} passed ({rate:.1%}), {s['examples']} examples"
    )
    _table(
        out,
        "runs",
        ["run_id", "name", "model", "status", "prompts", "candidates", "passed", "tokens"],
        [
            [r[k] for k in ("run_id", "name", "model", "status", "prompts", "candidates", "passed", "tokens")]
            for r in s["runs"]
        ],
    )
    _table(
        out,
        "by source",
        ["source", "task", "candidates", "passed", "examples"],
        [list(r.values()) for r in s["by_source"]],
    )
    _table(out, "drop reasons", ["reason", "count"], [[k, v] for k, v in s["reasons"].items()])
    c = s["test_checks"]
    if c["checked"]:  # code prompts' tests run against trivial programs (filters/weak_tests.py)
        weak = ", ".join(f"{k} {v}" for k, v in c["by_program"].items()) or "-"
        row = [c["checked"], c["weak_tests"], weak, c["bad_reference"]]
        _table(out, "code prompts' tests", ["checked", "weak_tests", "passed by", "bad_reference"], [row])
    out.print(
        "decontamination, checked against: " + escape(benchmarks.leak_line(s["checked_against"], s["contaminated"])),
        highlight=False,
    )


def _live(note: str | None) -> None:
    """Say that a command read a store that `factory generate` is writing, and how far that job is."""
    if note:
        console.print(f"[yellow]live:[/] {escape(note)}", highlight=False, soft_wrap=True)


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
    from factory.store import StoreReader

    if fmt not in ("table", "csv", "json"):
        raise FactoryError(f"--format {fmt!r}: use table, csv or json")
    store = StoreReader(db)
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
    out: Annotated[
        Path, typer.Option("--out", help="The file to write (numbered shards beside it past --shard-size).")
    ],
    db: DbOpt = Path(DEFAULT_DB),
    fmt: Annotated[str | None, typer.Option("--format", help="parquet | jsonl (default: from --out)")] = None,
    what: Annotated[
        str, typer.Option(help="examples (SFT, messages for TRL) | candidates | rejected | prompts (pass rates)")
    ] = "examples",
    where: Annotated[str | None, typer.Option(help="SQL condition on the rows, e.g. \"task = 'math'\".")] = None,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns to keep (default: all).")] = None,
    min_pass_rate: Annotated[float | None, typer.Option(help="Only prompts whose pass rate is at least this.")] = None,
    max_pass_rate: Annotated[float | None, typer.Option(help="Only prompts whose pass rate is at most this.")] = None,
    shard_size: Annotated[str, typer.Option(help="Start a new shard past this size, e.g. 500MB.")] = "500MB",
) -> None:
    """Export rows of the store to Parquet (zstd) or JSONL.

    - examples: the accepted SFT examples; `messages` is the chat format TRL's SFTTrainer reads as is.
    - candidates / rejected: every sampled answer (or the rejected ones) with its prompt, verdict, reason, scores.
    - prompts: one row per prompt with samples, passed and pass_rate; e.g. RL prompts for GRPO as open-r1 picks
      them: --what prompts --min-pass-rate 0.2 --max-pass-rate 0.8.

    The pass-rate window works with every --what.
    """
    from factory import export as ex
    from factory.live import reading

    fmt, shard = ex.fmt_for(out, fmt), ex.parse_size(shard_size)
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    window = None
    if min_pass_rate is not None or max_pass_rate is not None:
        window = (min_pass_rate or 0.0, 1.0 if max_pass_rate is None else max_pass_rate)
        if not 0 <= window[0] <= window[1] <= 1:
            raise FactoryError(
                f"pass-rate window {window[0]}..{window[1]}: use 0 <= --min-pass-rate <= --max-pass-rate <= 1"
            )
    with reading(db) as (store, live):
        _live(live)
        n = store.count(what, where, window)
        files = ex.write(store.rows(what, cols, where, window), out, fmt, shard)
    shown = str(out) if files == [out] else f"{len(files)} shards: {files[0].name} ... {files[-1].name} in {out.parent}"
    console.print(f"wrote {n} {what} to {shown}", highlight=False, soft_wrap=True)


@app.command()
def publish(
    repo_id: Annotated[str, typer.Option("--repo-id", help="The dataset repo on the Hub: ORG/NAME.")],
    db: DbOpt = Path(DEFAULT_DB),
    private: Annotated[bool, typer.Option("--private", help="Make a new repo private.")] = False,
    dry_run: Annotated[
        Path | None, typer.Option("--dry-run", help="Write what would be uploaded to this folder; upload nothing.")
    ] = None,
    where: Annotated[str | None, typer.Option(help="SQL condition on the examples to publish.")] = None,
    license_: Annotated[str, typer.Option("--license", help="The card's license id, e.g. apache-2.0, mit.")] = (
        "apache-2.0"
    ),
    shard_size: Annotated[str, typer.Option(help="Start a new Parquet shard past this size.")] = "500MB",
) -> None:
    """Publish the accepted examples as a Hugging Face dataset: one config per task, and a dataset card.

    The card's YAML says license, task categories, size and configs; its body the model, recipe, sampling settings,
    counts and acceptance per source and task, drops by reason, dedup and decontamination settings and findings.
    The token comes from HF_TOKEN or `hf auth login`, and is never printed or stored.
    """
    import tempfile

    from factory import export as ex
    from factory import publish as pub
    from factory.live import reading

    pub.check_repo_id(repo_id)
    shard = ex.parse_size(shard_size)
    with tempfile.TemporaryDirectory(prefix="factory-publish-") as tmp:
        folder = dry_run or Path(tmp) / "dataset"
        with reading(db) as (store, live):
            _live(live)
            counts = pub.build(store, folder, repo_id, license_, where, shard)
        per = ", ".join(f"{n} {t}" for t, n in counts.items())
        if dry_run:
            console.print(f"wrote {per} examples and the card to {folder}; nothing uploaded", highlight=False)
            return
        console.print(f"uploading {per} examples to {repo_id} in one commit, one config per task", highlight=False)
        url = pub.push(folder, repo_id, private)
    console.print(f"published {per} examples to {url}", highlight=False)


@app.command()
def report(
    db: DbOpt = Path(DEFAULT_DB),
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """Write one self-contained HTML page of plots about the store.

    Acceptance per source and task, per-prompt pass rates, response lengths, drop reasons, tokens per accepted
    example, near-duplicate cluster sizes. Works while `factory generate` writes the store.
    """
    from factory import report as rep
    from factory.live import reading

    with reading(db) as (store, live):
        _live(live)
        page = rep.render(store, live)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    console.print(f"wrote {out} ({len(page) // 1024} KB); open it in a browser", highlight=False)


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


if __name__ == "__main__":
    main()
