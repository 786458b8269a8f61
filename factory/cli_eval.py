"""The `factory` commands that judge: `eval` (a model's accuracy, on a recipe or registered test sets),
`benchmarks` (the registry) and `filter` (records someone else made)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factory.cli_common import LimitOpt, SetOpt, bars, console, table
from factory.errors import FactoryError


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

    with bars() as (bar, _):
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
    table(out, title, ["", "problems", *metric], rows)
    misses = ", ".join(f"{k} {v}" for k, v in sc["misses"].items()) or "-"
    out.print(f"misses: {escape(misses)}", highlight=False)
    print(f"{sc['benchmark']} " + " ".join(f"{k} = {100 * sc[k]:.1f}%" for k in metric))


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
    table(Console(), "benchmarks", ["name", "task", "split", "rows", "here", "origin", "license"], rows)


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
    limit: LimitOpt = None,
    set_: SetOpt = None,
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
    with bars() as (bar, _):
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
    with bars() as (bar, _), make_pool(r) as pool:
        if JUDGE in r.filters or r.verify.cascade:
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


def register(app: typer.Typer) -> None:
    app.command(name="benchmarks")(benchmarks_)
    app.command(name="eval")(eval_)
    app.command(name="filter")(filter_)
