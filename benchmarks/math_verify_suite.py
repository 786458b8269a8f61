"""Extract the labelled (gold, answer, expected) cases of Math-Verify's own test suite into a JSONL file.

Math-Verify (https://github.com/huggingface/Math-Verify, Apache-2.0) tests its verifier with pytest parametrize
lists. This reads them with `ast`, without importing or running anything, and writes one row per case:

    {"gold", "answer", "expected", "source": "tests/test_all.py::test_name", "options"[, "policy", "note"]}

`options` holds the math-verify options the test passes that are not its defaults (`match_types`, `precision`,
`strict`, `allow_set_relation_comp`): a label may hold only under one of them. `policy` and `note` are ours, not
upstream's: where this project deliberately disagrees with a label, the row says why (see
benchmarks/verifier_accuracy.py). Re-extracting keeps them on the rows that are still there.

    git clone https://github.com/huggingface/Math-Verify ../Math-Verify
    git -C ../Math-Verify checkout 5d148cfaaf99214c2e4ffb4bc497ab042c592a7a   # the commit the data file holds
    .venv/bin/python benchmarks/math_verify_suite.py ../Math-Verify   # rewrites data/labelled/math_verify_suite.jsonl
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "data" / "labelled" / "math_verify_suite.jsonl"
_DEFAULTS = {"match_types": ["latex", "expr"], "precision": 6, "strict": True, "allow_set_relation_comp": False}
_OURS = ("policy", "note")  # fields this project adds to a row


def _parametrize(fn: ast.FunctionDef) -> tuple[list[str], list[ast.expr]] | None:
    """The argument names and the rows of the test's @pytest.mark.parametrize, if it has one."""
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and ast.unparse(d.func) == "pytest.mark.parametrize":
            names = [n.strip() for n in ast.literal_eval(d.args[0]).split(",")]
            return names, list(d.args[1].elts)
    return None


def _options(fn: ast.FunctionDef) -> dict[str, ast.expr] | None:
    """The keywords of the test's compare_strings call ({} for a plain verify call); None when it has neither."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "compare_strings":
                return {k.arg: k.value for k in node.keywords}
            if node.func.id == "verify":
                return {}
    return None


def _value(node: ast.expr, row: dict):
    """A keyword's value: a literal, or one of the row's parameters named."""
    return row[node.id] if isinstance(node, ast.Name) else ast.literal_eval(node)


def cases(path: Path, source: str) -> tuple[list[dict], int]:
    """The rows of one test file, and how many were left out (rows that are not plain literals)."""
    rows, skipped = [], 0
    for fn in ast.parse(path.read_text()).body:
        found = _parametrize(fn) if isinstance(fn, ast.FunctionDef) else None
        keywords = _options(fn) if found else None
        if keywords is None or "gold" not in found[0] or "pred" not in found[0]:
            continue
        names, elts = found
        for elt in elts:
            try:
                row = dict(zip(names, ast.literal_eval(elt), strict=True))
            except ValueError:
                skipped += 1  # an f-string computed at import time
                continue
            opts = {k: _value(v, row) for k, v in keywords.items()}
            label = row.get("expected", row.get("result"))
            rows.append({"gold": row["gold"], "answer": row["pred"], "expected": bool(label),
                         "source": f"{source}::{fn.name}",
                         "options": {k: v for k, v in opts.items() if _DEFAULTS.get(k) != v}})  # fmt: skip
    return rows, skipped


def _key(r: dict) -> tuple:
    return r["source"], r["gold"], r["answer"], json.dumps(r["options"], sort_keys=True)


def main(checkout: Path, out_path: Path = OUT) -> None:
    old = {}
    if out_path.exists():
        old = {_key(r): r for r in map(json.loads, out_path.read_text().splitlines())}
    rows, skipped = [], 0
    for path in sorted((checkout / "tests").glob("test_*.py")):
        found, n = cases(path, f"tests/{path.name}")
        rows += found
        skipped += n
    seen, out = set(), []
    for r in rows:
        if _key(r) in seen:
            continue  # the suite repeats a few cases verbatim
        seen.add(_key(r))
        out.append(r | {k: old[_key(r)][k] for k in _OURS if k in old.get(_key(r), {})})
    out_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    print(f"{len(out)} cases ({len(rows) - len(out)} repeats, {skipped} non-literal rows left out) -> {out_path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkout", type=Path, help="a clone of Math-Verify at the commit named above")
    ap.add_argument("--out", type=Path, default=OUT, help="the JSONL to rewrite (its policy and note kept)")
    args = ap.parse_args()
    main(args.checkout, args.out)
