"""`factory report`: one self-contained HTML page of plots about a store (inline SVG, no script, no download).

factory report --db data/factory.duckdb --out report.html

A table says how many code prompts' tests were checked against trivial programs, how many a trivial program passed
(by which) and how many failed their reference solution; another, the latest `factory audit` (the verifier's
false-positive and false-negative rates, by stratum). Plots: acceptance rate per source and task, per-prompt
pass rates (difficulty), response lengths of accepted and rejected answers, drop reasons, tokens spent per accepted
example, the cost per kept example by prompt class (the cost ledger), and the sizes of near-duplicate clusters. With
`--ablation WORKDIR`, a `factory ablate` result: its table and each policy's accuracy with its interval.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape

from factory import plots
from factory.store import StoreReader

# (id, title, what it shows): every report has all of them, with a note where the store has no data for one
PLOTS = [
    ("acceptance", "Acceptance rate per source and task", "Candidates that passed every filter, of those drawn."),
    (
        "pass-rates",
        "Per-prompt pass rates (difficulty)",
        "Share of each prompt's samples that passed. Sampling stops once enough pass, so easy prompts draw few samples"
        " and their rate is coarse (with rounds of 2: 0.5 or 1).",
    ),
    ("lengths", "Response lengths, accepted and rejected", "Tokens per answer."),
    (
        "drop-reasons",
        "Drop reasons",
        "Rejected candidates by the first filter that refused them; prompt_* are prompts set aside before sampling.",
    ),
    (
        "tokens-per-example",
        "Tokens spent per accepted example",
        "Every token sampled (kept or not) per kept example: what one example cost.",
    ),
    (
        "cost-by-difficulty",
        "Cost per kept example by difficulty",
        "The cost ledger per prompt class (source, task, and difficulty by the prompt's pass rate): tokens, prompt and"
        " completion, of every candidate drawn per example kept, with the engine seconds and the share cut at"
        " max_tokens. Hard prompts cost more per example; unsolved ones cost tokens and keep nothing.",
    ),
    (
        "dedup-clusters",
        "Near-duplicate cluster sizes",
        "Each cluster is a kept text and the near-duplicates dropped for repeating it.",
    ),
]

CSS = """body{font-family:sans-serif;margin:24px auto;max-width:760px;color:#222}h1{font-size:22px}
h2{font-size:16px;margin:0 0 4px}figure{margin:0 0 28px;padding:12px;border:1px solid #ddd;border-radius:6px}
p.note{color:#555;font-size:13px;margin:4px 0 8px}table{border-collapse:collapse;font-size:13px;margin-bottom:24px}
td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left}.live{background:#fff6d6;padding:8px}"""


def render(store: StoreReader, live: str | None = None, ablations: list[dict] = ()) -> str:
    s, f = store.stats(), store.facts()
    charts = _charts(s, f)
    figures = [
        f'<figure id="{pid}"><h2>{escape(title)}</h2><p class="note">{escape(note)}</p>{charts[pid]}</figure>'
        for pid, title, note in PLOTS
    ]
    rate = s["passed"] / s["candidates"] if s["candidates"] else 0
    head = (
        f"<h1>factory report: {escape(s['store'])}</h1><p>{s['prompts']} prompts, {s['candidates']} candidates, "
        f"{s['passed']} passed ({rate:.1%}), {s['examples']} examples. Made {datetime.now():%Y-%m-%d %H:%M}.</p>"
    )
    if live:
        head += f'<p class="live">{escape(live)}</p>'
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>factory report</title>'
        f"<style>{CSS}</style></head><body>{head}{_runs(store)}{_checks(s)}{_leaks(store, s)}{_audit(store)}"
        f"{_ablations(ablations)}{''.join(figures)}</body></html>"
    )


def _charts(s: dict, f: dict) -> dict[str, str]:
    src = s["by_source"]
    names = [f"{r['source']} ({r['task']})" for r in src]
    acc = [r["passed"] / r["candidates"] if r["candidates"] else 0 for r in src]
    spent = f["tokens_per_example"]
    tpe = [r["tokens"] / r["examples"] if r["examples"] else 0 for r in spent]
    step = -(-max([*f["lengths"]["true"], *f["lengths"]["false"], 1]) // 20)  # whole tokens per bin
    sizes = sorted(set(f["clusters"]))
    clusters = [f["clusters"].count(n) for n in sizes]
    return {
        "acceptance": plots.bars(
            names, acc, "acceptance rate", [f"{a:.1%} of {r['candidates']}" for a, r in zip(acc, src, strict=True)]
        ),
        "pass-rates": plots.histogram({"prompts": f["pass_rates"]}, 0, 1, 10, "pass rates", "pass rate"),
        "lengths": plots.histogram(
            {"accepted": f["lengths"]["true"], "rejected": f["lengths"]["false"]},
            0,
            20 * step,
            20,
            "response lengths",
            "tokens",
        ),
        "drop-reasons": plots.bars(
            list(s["reasons"]), list(s["reasons"].values()), "drop reasons", why_empty="nothing was dropped"
        ),
        "tokens-per-example": plots.bars(
            [f"{r['source']} ({r['task']})" for r in spent],
            tpe,
            "tokens per example",
            [f"{t:,.0f} ({r['tokens']:,} / {r['examples']})" for t, r in zip(tpe, spent, strict=True)],
        ),
        "cost-by-difficulty": _cost_bars(s["ledger"]),
        "dedup-clusters": plots.bars(
            [f"{n} texts" for n in sizes],
            clusters,
            "cluster sizes",
            [f"{c} cluster{'s' * (c > 1)}" for c in clusters],
            why_empty="no near-duplicates found (or dedup is not among the filters)",
        ),
    }


def _cost_bars(ledger: list[dict]) -> str:
    """Tokens per kept example for each prompt class; a class that kept nothing shows what it spent for nothing."""
    names = [f"{r['source']} ({r['task']}) {r['difficulty']}" for r in ledger]
    spent = [r["tokens"] + r["prompt_tokens"] for r in ledger]
    values = [t / r["examples"] if r["examples"] else t for t, r in zip(spent, ledger, strict=True)]
    text = [
        f"{v:,.0f} tokens, {r['seconds_per_example']:.2f} engine s; {r['truncated_share']:.0%} cut"
        if r["examples"] and r["seconds_per_example"] is not None
        else f"{v:,.0f} tokens per example; {r['truncated_share']:.0%} cut"
        if r["examples"]
        else f"{v:,.0f} tokens, no example kept"
        for v, r in zip(values, ledger, strict=True)
    ]
    return plots.bars(names, values, "tokens per kept example", text)


def _checks(s: dict) -> str:
    """Code prompts' tests run once against trivial programs (filters/weak_tests.py): how many, and what they let
    through."""
    c = s["test_checks"]
    weak = ", ".join(f"{k} {v}" for k, v in c["by_program"].items()) or "-"
    cells = [c["checked"], c["weak_tests"], weak, c["bad_reference"]]
    head = "".join(f"<th>{h}</th>" for h in ("code prompts checked", "weak tests", "passed by", "bad reference"))
    row = "".join(f"<td>{escape(str(v))}</td>" for v in cells)
    return f"<table id='test-checks'><tr>{head}</tr><tr>{row}</tr></table>"


def _leaks(store: StoreReader, s: dict) -> str:
    """Decontamination: the benchmarks the runs were checked against, and the hits per benchmark and method."""
    from factory import benchmarks

    line = escape(benchmarks.leak_line(benchmarks.checked_by_runs(store.runs()), s["contaminated"]))
    return f"<p id='decontam'><b>Decontamination</b>, checked against: {line}.</p>"


def _audit(store: StoreReader) -> str:
    """The latest `factory audit`: the verifier's false-positive and false-negative rates, by stratum."""
    from factory import audit
    from factory.judging import cascade_line

    a = store.latest_audit()
    lines = audit.summary(a) + [line for line in [cascade_line(store.stats()["cascade"])] if line]
    text = "".join(f"<p class='note'>{escape(line)}</p>" for line in lines)
    if a is None:
        return f"<div id='audit'><b>Verifier audit</b>{text}</div>"
    cols = ("task", "source", "verdict", "in store", "decided", "disagree", "rate (95%)")
    rows = []
    for st in a.strata():
        rate = "-" if st["rate"] is None else f"{st['rate']:.1%} ({st['low']:.1%}-{st['high']:.1%})"
        cells = [st["task"], st["source"], st["verdict"], st["population"], st["decided"], st["disagree"], rate]
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in cols)
    return f"<div id='audit'><b>Verifier audit</b>{text}<table><tr>{head}</tr>{''.join(rows)}</table></div>"


def _runs(store: StoreReader) -> str:
    from factory.judging import canary_line

    rows = []
    for r in store.runs():
        sampling = ", ".join(f"{k}={v}" for k, v in json.loads(r["sampling"] or "{}").items())
        cells = [
            r["run_id"],
            r["name"],
            r["model"],
            r["engine"],
            r["status"],
            sampling,
            canary_line(r.get("canaries")) or "-",
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(
        f"<th>{h}</th>" for h in ("run", "recipe", "model", "engine", "status", "sampling", "judge canaries")
    )
    return f"<table id='runs'><tr>{head}</tr>{''.join(rows)}</table>"


def _ablations(results: list[dict]) -> str:
    """Each `factory ablate` result: which keep-policy taught best, with intervals (factory/ablate_results.py)."""
    from factory import ablate_results

    return "".join(ablate_results.html(r) for r in results)
