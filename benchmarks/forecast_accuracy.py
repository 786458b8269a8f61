"""How well a pilot forecasts the whole job: `factory generate --forecast` on a fresh store, then the full run (which
resumes from the pilot), and the forecast of samples, tokens, cut answers, examples and time against what the run
did. Jobs of different difficulty on the bundled SmolLM2-135M (the engine `auto` picks):

- demo: recipes/arithmetic_demo.yaml (one-digit sums and differences: most prompts solved in a sample or two);
- hard: the same with two-digit numbers (most prompts spend all 8 samples).

    python benchmarks/forecast_accuracy.py --jobs demo:1000,hard:200 --pilot 5%

Prints one table per job: each quantity's forecast, its 90% interval, the actual, the error and whether the actual
fell inside the interval. The goal: within 15% on samples, tokens and examples for a 5% pilot.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import DEMO, table

from factory import api
from factory import forecast as fc
from factory.store import StoreReader

JOBS = {
    "demo": [],
    "hard": ["source.config.min_digits=2", "source.config.max_digits=2"],
}
_ACTUAL = """SELECT count(*), coalesce(sum(n_prompt_tokens), 0), coalesce(sum(n_tokens), 0),
                    count(*) FILTER (WHERE finish_reason = 'length'), (SELECT count(*) FROM examples)
             FROM candidate_rows"""
GOAL = 0.15


def run_job(name: str, size: int, pilot: float, extra: list[str], folder: Path) -> tuple[list[list], dict]:
    db = folder / f"{name}.duckdb"
    overrides = [f"source.size={size}", *JOBS[name], *extra]
    f, _ = api.forecast(DEMO, db=db, pilot=pilot, overrides=overrides)
    done = api.generate(DEMO, db=db, overrides=overrides)
    with StoreReader(db) as store:
        [actual] = store.query(_ACTUAL)[1]
    rows = []
    for metric, value in zip(fc.METRICS, actual, strict=True):
        point, lo, hi = f.totals[metric]
        rows.append(_row(metric, point, lo, hi, value))
    here = f.hours(f.tokens_per_s)
    seconds = f.pilot_seconds + done.tally.seconds  # sampling time, pilot and the rest (engine loading not counted)
    if here:
        rows.append(_row("seconds here", here[0] * 3600, here[1] * 3600, here[2] * 3600, seconds))
    passed = sum(c["share"] * c["examples_per_prompt"] for c in f.classes)
    return rows, {"job": name, "prompts": f.prompts, "pilot": f.pilot, "solved": passed}


def _row(metric: str, point: float, lo: float, hi: float, actual: float) -> list:
    err = (point - actual) / actual if actual else 0.0
    inside = "yes" if lo <= actual <= hi else "no"
    return [metric, float(point), f"{_num(lo)} - {_num(hi)}", float(actual), f"{err:+.1%}", inside]


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--jobs", default="demo:1000,hard:200", help=f"NAME:PROMPTS, comma-separated; names: {', '.join(JOBS)}"
    )
    ap.add_argument("--pilot", default="5%", help="the pilot's share of the prompts")
    ap.add_argument("--set", action="append", default=[], dest="extra", help="a recipe override for every job")
    args = ap.parse_args()
    share = fc.share(args.pilot)
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        for job in args.jobs.split(","):
            name, _, size = job.partition(":")
            rows, about = run_job(name, int(size or 1000), share, args.extra, Path(tmp))
            print(
                f"\n{about['job']}: {about['prompts']} prompts, pilot {about['pilot']} ({share:.0%}); the pilot kept"
                f" an example for {about['solved']:.0%} of its prompts\n"
            )
            print(table(["quantity", "forecast", "90% interval", "actual", "error", "inside"], rows))
            missed += [f"{name} {r[0]}" for r in rows if r[0] in ("samples", "tokens", "examples") and _off(r)]
    print(
        "\ngoal (within 15% on samples, tokens, examples): " + ("met" if not missed else "missed: " + ", ".join(missed))
    )


def _off(row: list) -> bool:
    return abs(float(row[4].rstrip("%")) / 100) > GOAL


if __name__ == "__main__":
    main()
