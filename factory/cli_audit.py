"""`factory audit`: the verifier's false-positive and false-negative rates, from a second opinion on a sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from factory.cli_common import DbOpt, bars, console, table
from factory.errors import FactoryError
from factory.store import DEFAULT_DB


def audit(
    db: DbOpt = Path(DEFAULT_DB),
    run: Annotated[str | None, typer.Option("--run", help="Audit one run (default: every run in the store).")] = None,
    size: Annotated[int, typer.Option("--size", min=1, help="Candidates drawn per stratum, at most.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Which sample is drawn.")] = 0,
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="Record a person's verdict, CANDIDATE_ID=right or =wrong (repeatable); the latest audit is then"
            " shown again with it, nothing is drawn.",
        ),
    ] = None,
    by_run: Annotated[
        bool,
        typer.Option(
            "--by-run",
            help="Audit each run on its own and compare them side by side, with the verifier versions each ran with.",
        ),
    ] = False,
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            help="An LLM judge (a model folder or name) for what the rule-based second opinions leave undecided, and"
            " for general tasks: given the reference answer, and trusted only after it grades its canaries.",
        ),
    ] = None,
    on_canary: Annotated[
        str, typer.Option("--on-canary", help="refuse a judge that passes a canary, or flag its opinions and go on.")
    ] = "refuse",
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit as JSON.")] = False,
) -> None:
    """Estimate how far the store's verdicts can be trusted.

    Draws up to --size candidates from each (task, source, verdict) stratum of accepts and wrong_answer rejects,
    gives each a second opinion (math: an extraction and equivalence that share no code with the verify stage; code:
    the tests run again), and estimates the false-positive rate among accepts and the false-negative rate among
    wrong_answer rejects, with 95% intervals. Every disagreement is listed: settle it with --label, and later
    estimates use the label. The audit is kept in the store; `factory report` and the dataset card show it.
    """
    from factory import audit as aud
    from factory.store import StoreReader

    if labels:
        marks = {}
        for spec in labels:
            cid, _, word = spec.partition("=")
            if word not in ("right", "wrong") or not cid:
                raise FactoryError(f"--label {spec}: write CANDIDATE_ID=right or CANDIDATE_ID=wrong")
            marks[cid] = word == "right"
        aud.label(db, marks)
        with StoreReader(db) as store:
            result = aud.latest(store, run)
        if result is None:
            console.print(f"recorded {len(marks)} label(s); no audit yet: run `factory audit`", highlight=False)
            return
    elif by_run:
        return compare(aud.by_run(db, size, seed), as_json)
    else:
        if on_canary not in ("refuse", "flag"):
            raise FactoryError(f"--on-canary {on_canary}: use refuse or flag")
        with bars() as (bar, _):
            if judge:
                bar(f"loading the judge {judge}")
            j = aud.judge_for(judge, on_canary) if judge else None
            try:
                step = lambda n, total: bar("second opinions", total, n, "items")  # noqa: E731
                result = aud.run(db, run, size, seed, progress=step, judge=j)
            finally:
                if j is not None:
                    j.engine.close()
    show(result, as_json)


def compare(runs: list[tuple[dict, object]], as_json: bool) -> None:
    """One row per run: its verifiers' versions and both rates."""
    if as_json:
        print(json.dumps([{"run_id": r["run_id"], "verifiers": v, "estimates": a.estimates()} for r, v, a in runs]))
        return
    rows = []
    for r, versions, a in runs:
        e = a.estimates()
        said = ", ".join(f"{k} {v}" for k, v in versions.items() if v) or "-"
        fp, fn = (_rate(e[g]["rate"], e[g]["low"], e[g]["high"]) for g in ("accepted", "wrong_answer"))
        rows.append([r["run_id"], r["model"], said, fp, fn])
    table(Console(), "audits by run", ["run", "model", "verifiers", "false positives", "false negatives"], rows)


def show(a, as_json: bool = False) -> None:
    from factory.audit import GROUPS

    est = a.estimates()
    if as_json:
        items = [i.__dict__ | {"truth": i.truth} for i in a.items]
        print(
            json.dumps(
                {"audit_id": a.audit_id, "run_id": a.run_id, "estimates": est, "strata": a.strata(), "items": items},
                default=str,
            )
        )
        return
    out = Console()
    rows = [
        [
            s["task"],
            s["source"],
            s["verdict"],
            s["population"],
            s["sampled"],
            s["decided"],
            s["labelled"],
            s["disagree"],
            _rate(s["rate"], s["low"], s["high"]),
        ]
        for s in a.strata()
    ]
    cols = ["task", "source", "verdict", "in store", "drawn", "decided", "labelled", "disagree", "rate (95%)"]
    table(out, f"audit {a.audit_id}: second opinions by stratum", cols, rows)
    for group, what in GROUPS.items():
        e = est[group]
        covered = f"{e['covered']:,} of {e['population']:,} candidates in decided strata; {e['undecided']} undecided"
        out.print(f"{what}: {_rate(e['rate'], e['low'], e['high'])} ({e['disagree']} of {e['decided']}; {covered})")
    wrong = a.disagreements()
    if wrong:
        rows = [
            [
                i.candidate_id,
                i.task,
                i.verdict,
                "right" if i.truth else "wrong",
                "label" if i.label is not None else "second opinion",
                i.detail,
            ]
            for i in wrong[:50]
        ]
        cols = ["candidate", "task", "verifier", "other says", "by", "detail"]
        table(out, f"{len(wrong)} disagreements (settle them: factory audit --label ID=right|wrong)", cols, rows)


def _rate(rate, low, high) -> str:
    if rate is None:
        return "- (nothing decided)"
    return f"{100 * rate:.1f}% ({100 * low:.1f}-{100 * high:.1f}%)"


def register(app: typer.Typer) -> None:
    app.command(name="audit")(audit)
