"""An ablation's result as a table: each policy's budget spent, accuracy with its interval, and its difference from
the base model and from `verified`, with an interval that says whether the difference is more than chance.

Accuracy is greedy accuracy on the eval problems that no arm trained on (`unseen`: the store's prompts left out),
and on all eval problems beside it. Several seeds of an arm pool their answers (seeds x problems, each right or
wrong), and the spread over seeds is shown too. A difference's 95% interval is Newcombe's (hybrid score, method 10)
from the two Wilson intervals: it treats the two arms' answers as independent, so on the same problems it is, if
anything, wider than a paired test's. When it holds 0 the arms are not told apart at this size.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path

from factory.errors import FactoryError
from factory.evaluate import wilson

COLUMNS = [
    "policy",
    "seeds",
    "examples",
    "reply tokens",
    "verified",
    "unseen accuracy (95%)",
    "vs base",
    "vs verified",
    "all eval problems",
    "benchmarks (pass@1)",
]


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """The difference of two proportions k1/n1 - k2/n2 with Newcombe's 95% interval (lower, upper)."""
    p1, p2 = (k1 / n1 if n1 else 0.0), (k2 / n2 if n2 else 0.0)
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def summary(result: dict) -> list[dict]:
    """One row per policy (its seeds pooled), the base model's first: counts, accuracies, differences."""
    arms = result["arms"]
    groups = {"base": [a for a in arms if a["arm"] == "base"]}
    for a in arms:
        if a["arm"] != "base":
            groups.setdefault(a["policy"], []).append(a)
    rows = [_pool(name, group) for name, group in groups.items()]
    base = rows[0]
    ref = next((r for r in rows if r["policy"] == "verified"), None)
    for r in rows[1:]:
        r["vs_base"] = newcombe(r["correct"], r["n"], base["correct"], base["n"])
        if ref is not None and r is not ref:
            r["vs_verified"] = newcombe(r["correct"], r["n"], ref["correct"], ref["n"])
    return rows


def _pool(policy: str, arms: list[dict]) -> dict:
    unseen = [a["eval"]["unseen"] for a in arms]
    k, n = sum(u["correct"] for u in unseen), sum(u["n"] for u in unseen)
    data = [a.get("data") or {} for a in arms]
    return {
        "policy": policy,
        "seeds": [a["seed"] for a in arms if a["seed"] is not None],
        "examples": sorted({d["examples"] for d in data if d}),
        "tokens": sorted({d["tokens"] for d in data if d}),
        "accepted": sum(d.get("accepted", 0) for d in data),
        "trained": sum(d.get("examples", 0) for d in data),
        "correct": k,
        "n": n,
        "ci95": wilson(k, n),
        "per_seed": [u["accuracy"] for u in unseen],
        "all": (sum(a["eval"]["correct"] for a in arms), sum(a["eval"]["n"] for a in arms)),
        "benchmarks": [b for a in arms for b in a.get("benchmarks", [])],
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _diff(d: tuple | None) -> str:
    if d is None:
        return "-"
    mark = "" if d[1] <= 0 <= d[2] else " *"  # the interval leaves out 0
    return f"{100 * d[0]:+.1f} ({100 * d[1]:+.1f} to {100 * d[2]:+.1f}){mark}"


def cells(r: dict) -> list[str]:
    """A summary row as the table's cells."""
    acc = r["correct"] / r["n"] if r["n"] else 0.0
    spread = f"; seeds {min(r['per_seed']) * 100:.1f}-{max(r['per_seed']) * 100:.1f}" if len(r["per_seed"]) > 1 else ""
    lo, hi = r["ci95"]
    k, n = r["all"]
    return [
        r["policy"],
        ",".join(map(str, r["seeds"])) or "-",
        "/".join(map(str, r["examples"])) or "-",
        "/".join(f"{t:,}" for t in r["tokens"]) or "-",
        f"{100 * r['accepted'] / r['trained']:.0f}%" if r["trained"] else "-",
        f"{_pct(acc)}% ({r['correct']}/{r['n']}; {_pct(lo)}-{_pct(hi)}{spread})",
        _diff(r.get("vs_base")),
        _diff(r.get("vs_verified")),
        f"{_pct(k / n if n else 0)}% ({k}/{n})",
        _benchmarks(r["benchmarks"]),
    ]


def _benchmarks(scores: list[dict]) -> str:
    """Each registered test set's pass@1, averaged over the seeds' arms: `gsm8k 12.5%`."""
    by: dict[str, list[float]] = {}
    for b in scores:
        by.setdefault(b["benchmark"], []).append(b["pass@1"])
    return ", ".join(f"{name} {_pct(sum(v) / len(v))}%" for name, v in by.items()) or "-"


def markdown(result: dict) -> str:
    rows = [cells(r) for r in summary(result)]
    plan = result["plan"]
    head = (
        f"{result['name']}: every arm trained on {plan['size']} {plan['unit']} of its policy's picks from"
        f" {result['store']}; accuracy greedy, on the eval problems no arm trained on. Differences in points with"
        " their 95% interval; * where it leaves out 0.\n\n"
    )
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return head + "\n".join(lines) + "\n"


def write(result: dict, workdir: Path) -> list[Path]:
    """results.json (every arm's line and the summary) and results.md (the table) in the work folder."""
    rows = summary(result)
    (workdir / "results.json").write_text(json.dumps(result | {"summary": rows}, indent=1, default=str) + "\n")
    (workdir / "results.md").write_text(markdown(result))
    return [workdir / "results.json", workdir / "results.md"]


def html(result: dict) -> str:
    """The report's section: the table and a plot of each policy's accuracy with its interval."""
    from factory import plots

    rows = summary(result)
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells(r)) + "</tr>" for r in rows)
    acc = [r["correct"] / r["n"] if r["n"] else 0.0 for r in rows]
    plot = plots.intervals([r["policy"] for r in rows], acc, [r["ci95"] for r in rows], "accuracy by policy")
    plan = result["plan"]
    note = (
        f"Every arm: {plan['size']} {plan['unit']}; unseen eval problems, greedy; intervals 95% (Wilson; for"
        " differences, Newcombe). * marks a difference whose interval leaves out 0."
    )
    return (
        f"<figure id='ablation-{escape(result['name'])}'><h2>Ablation: {escape(result['name'])}</h2>"
        f"<p class='note'>{escape(note)}</p><table><tr>{head}</tr>{body}</table>{plot}</figure>"
    )


def load(workdir: Path) -> dict:
    path = Path(workdir) / "results.json"
    if not path.exists():
        raise FactoryError(f"--ablation {workdir}: no results.json there; run `factory ablate FILE --workdir DIR`")
    return json.loads(path.read_text())
