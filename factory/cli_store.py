"""The `factory` commands that read the store: `stats`, `query`, `export`, `publish` and `report`."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from factory.cli_common import DbOpt, console, table
from factory.errors import FactoryError
from factory.store import DEFAULT_DB


def stats(db: DbOpt = Path(DEFAULT_DB), as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the store holds: runs, candidates, acceptance, drop reasons, per source and task.

    Works while `factory generate` writes the store: it reads what was committed and says how far the job is.
    """
    from factory import benchmarks, judging
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
    cols = ["run_id", "name", "model", "status", "prompts", "candidates", "passed", "tokens", "prompt_tokens"]
    table(
        out,
        "runs",
        [*cols, "engine s", "truncated"],
        [
            [r[k] for k in cols] + [_num(r["engine_seconds"], ".1f"), f"{r['truncated_share'] or 0:.1%}"]
            for r in s["runs"]
        ],
    )
    _ledger(out, s["ledger"])
    table(
        out,
        "by source",
        ["source", "task", "candidates", "passed", "examples"],
        [list(r.values()) for r in s["by_source"]],
    )
    table(out, "drop reasons", ["reason", "count"], [[k, v] for k, v in s["reasons"].items()])
    c = s["test_checks"]
    if c["checked"]:  # code prompts' tests run against trivial programs (filters/weak_tests.py)
        weak = ", ".join(f"{k} {v}" for k, v in c["by_program"].items()) or "-"
        row = [c["checked"], c["weak_tests"], weak, c["bad_reference"]]
        table(out, "code prompts' tests", ["checked", "weak_tests", "passed by", "bad_reference"], [row])
    if cascade := judging.cascade_line(s["cascade"]):
        out.print(escape(cascade), highlight=False)
    out.print(
        "decontamination, checked against: " + escape(benchmarks.leak_line(s["checked_against"], s["contaminated"])),
        highlight=False,
    )


def _ledger(out: Console, ledger: list[dict]) -> None:
    """The cost ledger per prompt class: what each kept example cost, and the share cut at max_tokens."""
    from factory.costs import RANGES

    cols = ["source", "task", "difficulty (pass rate)", "prompts", "candidates", "examples"]
    table(
        out,
        "cost per kept example, by prompt class",
        [*cols, "tokens / example", "engine s / example", "truncated"],
        [
            [r["source"], r["task"], f"{r['difficulty']} ({RANGES[r['difficulty']]})", r["prompts"], r["candidates"]]
            + [r["examples"], _num(r["tokens_per_example"], ",.0f"), _num(r["seconds_per_example"], ".2f")]
            + [f"{r['truncated_share']:.1%}"]
            for r in ledger
        ],
    )


def _num(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _live(note: str | None) -> None:
    """Say that a command read a store that `factory generate` is writing, and how far that job is."""
    if note:
        console.print(f"[yellow]live:[/] {escape(note)}", highlight=False, soft_wrap=True)


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
        table(Console(), "", cols, [list(r) for r in rows])


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
    policy: Annotated[
        str | None,
        typer.Option(
            help="A keep-policy's picks instead of --what: verified, all, verified+wrong[:SHARE], one-per-prompt,"
            " k-per-prompt[:K], shortest-verified, first-sample, wrong, pass-rate[:LOW-HIGH], max-tokens[:N], any;"
            " --where narrows the candidates first (docs/ablate.md)."
        ),
    ] = None,
) -> None:
    """Export rows of the store to Parquet (zstd) or JSONL.

    - examples: the accepted SFT examples; `messages` is the chat format TRL's SFTTrainer reads as is.
    - candidates / rejected: every sampled answer (or the rejected ones) with its prompt, verdict, reason, scores.
    - prompts: one row per prompt with samples, passed and pass_rate; e.g. RL prompts for GRPO as open-r1 picks
      them: --what prompts --min-pass-rate 0.2 --max-pass-rate 0.8.

    The pass-rate window works with every --what. With --policy NAME: the candidates that keep-policy picks, each
    with its chat `messages` (rejected ones' built as an example's would be), n_tokens, accepted and reason.
    """
    from factory import export as ex
    from factory.live import reading

    fmt, shard = ex.fmt_for(out, fmt), ex.parse_size(shard_size)
    if policy is not None:
        return _export_policy(policy, out, db, fmt, where, shard, columns or min_pass_rate or max_pass_rate, what)
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


def _export_policy(policy: str, out: Path, db: Path, fmt: str, where: str | None, shard: int, other, what: str):
    from factory import export as ex
    from factory import policies

    if other is not None or what != "examples":
        raise FactoryError(
            "--policy picks its own rows and columns: drop --what, --columns and the pass-rate window (the policy"
            " pass-rate:LOW-HIGH is one), or use --where to narrow the candidates"
        )
    picks = policies.pick(db, policy, where)
    files = ex.write(ex.picks_table(picks), out, fmt, shard)
    shown = str(out) if files == [out] else f"{len(files)} shards in {out.parent}"
    console.print(f"wrote {len(picks)} candidates of policy {policy} to {shown}", highlight=False, soft_wrap=True)


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


def report(
    db: DbOpt = Path(DEFAULT_DB),
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("report.html"),
    ablation: Annotated[
        list[Path] | None,
        typer.Option(help="A `factory ablate` work folder (repeatable): its table and plot join the page."),
    ] = None,
) -> None:
    """Write one self-contained HTML page of plots about the store.

    Acceptance per source and task, per-prompt pass rates, response lengths, drop reasons, tokens per accepted
    example, near-duplicate cluster sizes; with --ablation, each ablation's table and accuracy per policy. Works
    while `factory generate` writes the store.
    """
    from factory import ablate_results
    from factory import report as rep
    from factory.live import reading

    results = [ablate_results.load(w) for w in ablation or []]
    with reading(db) as (store, live):
        _live(live)
        page = rep.render(store, live, results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    console.print(f"wrote {out} ({len(page) // 1024} KB); open it in a browser", highlight=False)


def register(app: typer.Typer) -> None:
    app.command(name="stats")(stats)
    app.command(name="query")(query)
    app.command(name="export")(export)
    app.command(name="publish")(publish)
    app.command(name="report")(report)
