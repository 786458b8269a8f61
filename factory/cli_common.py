"""What the `factory` commands share: the console they report on, the --db option, progress bars and tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)
DbOpt = Annotated[Path, typer.Option("--db", help="The DuckDB store.")]
LimitOpt = Annotated[int | None, typer.Option(help="Use only the first N prompts of the source.")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a recipe setting: --set sampling.temperature=0.8")
]


def bars():
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

            said = set()

            def update(t) -> None:
                rate = t.passed / t.candidates if t.candidates else 0.0
                stats = (
                    f"{t.candidates} candidates · {t.examples} accepted · {rate:.0%} pass · {t.tokens_per_s:,.0f} tok/s"
                )
                if getattr(t, "budget", None):  # spend against the budget, and when it runs out at the live rates
                    stats += f" · budget {spent_line(t)}" + (f" · ETA {_clock(t.eta)}" if t.eta is not None else "")
                for note in getattr(t, "notices", []):  # each said once, above the bar
                    if note not in said:
                        said.add(note)
                        progress.console.print(f"[bold yellow]note:[/] {escape(note)}", highlight=False)
                if getattr(t, "shards", 0):  # --executor ray
                    stats = f"shards {t.shards_done}/{t.shards} · {stats} ({per_worker(t.workers)})"
                progress.update(task, completed=t.prompts_done, total=t.prompts, stats=stats)

            yield bar, update

    return ctx()


def spent_line(t) -> str:
    from factory import budget

    return budget.line(budget.Budget(**t.budget), t)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def table(out: Console, title: str, cols: list[str], rows: list[list]) -> None:
    t = Table(title=title, title_justify="left")
    for c in cols:
        t.add_column(escape(c))
    for r in rows:
        t.add_row(*(escape(str(v)) for v in r))  # model text holds [brackets] ([/INST]) that are not markup
    out.print(t)


def per_worker(workers: dict, long: bool = False) -> str:
    """Tokens/s of each Ray worker while it sampled (engine loading not counted)."""
    rate = lambda w: w["tokens"] / w["seconds"] if w["seconds"] else 0.0  # noqa: E731
    if not long:
        return ", ".join(f"{rate(w):,.0f}" for w in workers.values()) + " tok/s per worker"
    return "; ".join(
        f"{name}: {w['shards']} shards, {w['candidates']} candidates, {rate(w):,.0f} tok/s"
        for name, w in workers.items()
    )
