"""`factory filter`: judge records someone else made, streaming, in parallel, and write each back with its verdict.

The input is checked whole first (a broken line, or one that is not UTF-8, is an error naming it, before any work);
the output is written to a temporary file beside OUT and renamed at the end, so a crash never leaves a half file
under the real name, and the temporary file is removed on an error. Parquet and `datasets` inputs, and the field
mapping that reads a public dataset's columns as records, are factory/tablefile.py's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

from factory import tablefile, textfile
from factory.errors import FactoryError
from factory.recipe import Recipe
from factory.store import Batch
from factory.workers import VerifyPool
from filters.base import Verdict, narrow
from filters.code import has_tests
from filters.records import problems, to_candidate
from filters.registry import worker_stages

CHUNK = 256  # records per pool submission; two chunks are in flight at once


def read_records(path: Path) -> Iterator[tuple[int, dict]]:
    """The records of a UTF-8 JSONL file with their line numbers (see factory.textfile for the encodings)."""
    if not path.is_file():
        raise FactoryError(f"input not found: {path}")
    yield from textfile.json_lines(path)


def _key(rec: dict) -> str:
    return f"id:{rec['id']}" if rec.get("id") is not None else f"line:{rec['_line']}"


def _plain(path: Path, fields: tablefile.Fields | None) -> bool:
    """A records file read as it is, with no field mapping."""
    return fields is None and tablefile.kind(path) == "jsonl"


def _records(path: Path, fields: tablefile.Fields | None) -> Iterator[dict]:
    """The records to judge, each with `_line` (its key without an id); a mapped one also with `_out`, the row to
    write back."""
    if _plain(path, fields):
        return ({"_line": n, **rec} for n, rec in read_records(path))
    return tablefile.records(path, fields or tablefile.Fields())


def _to_check(path: Path, fields: tablefile.Fields | None) -> Iterator[tuple[str, object]]:
    """Each record with where it is (file and line or row); a mapped input's columns only."""
    if _plain(path, fields):
        return ((f"{path}:{n}", rec) for n, rec in read_records(path))
    return ((r["_where"], r) for r in tablefile.records(path, fields or tablefile.Fields(), only_fields=True))


def check(path: Path, fields: tablefile.Fields | None = None) -> int:
    """Count the records (a list of completions counts each), or raise listing the first problems with their line
    or row and field."""
    found, n = [], 0
    for where, rec in _to_check(path, fields):
        n += 1
        found += [f"{where}: {p}" for p in problems(rec)]
        if len(found) >= 20:
            break
    if found:
        raise FactoryError(f"{len(found)} bad record(s):\n" + "\n".join(f"  - {p}" for p in found))
    if n == 0:
        raise FactoryError(f"{path} holds no records")
    return n


def run_filter(
    src: Path,
    out: Path,
    recipe: Recipe,
    pool: VerifyPool,
    judge=None,
    think: bool | None = None,
    progress: Callable[[int, dict], None] | None = None,
    gate=None,
    store=None,
    fields: tablefile.Fields | None = None,
) -> dict:
    """Write every record of `src` to `out` with accepted, reason, scores; return counts of reasons.

    With a `gate` (dedup, decontamination), records are keyed by their `id` (else their line); with a `store`, the
    dedup index starts from the store's signatures and the new ones are saved there, chunk by chunk. A code record
    that passed is kept only if its tests can fail (`TestChecks`). `fields`: read `src` through this mapping."""
    names = worker_stages(recipe.filters)
    counts: dict = {"records": 0, "accepted": 0, "reasons": {}}
    checks = TestChecks(recipe) if "verify" in recipe.filters else None
    tmp = out.with_name(out.name + ".part")
    out.parent.mkdir(parents=True, exist_ok=True)
    records = _records(src, fields)
    try:
        with _sink(src, tmp, fields) as write:
            pending = None
            while True:
                chunk = list(islice(records, CHUNK))
                launched = (chunk, pool.submit([(to_candidate(r, think), names) for r in chunk])) if chunk else None
                if pending:
                    _write(write, *pending, judge, gate, counts, checks)
                    if store is not None and gate is not None:
                        store.commit(Batch([], [], [], dedup=gate.new_signatures()))
                    if progress:
                        progress(counts["records"], counts)
                if not launched:
                    break
                pending = launched
    except BaseException:  # an error or ^C: no half file, not even the temporary one; OUT keeps what it held
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return counts


@contextmanager
def _sink(src: Path, tmp: Path, fields: tablefile.Fields | None):
    """A function writing judged rows to `tmp` in the input's format: JSONL as JSONL, a table as Parquet."""
    if tablefile.kind(src) == "jsonl":
        with tmp.open("w", encoding="utf-8") as f:
            yield lambda rows: f.writelines(json.dumps(r) + "\n" for r in rows)
        return
    sink = tablefile.ParquetSink(tmp, tablefile.out_schema(src, fields or tablefile.Fields()))
    try:
        yield sink.write
    finally:
        sink.close()


class TestChecks:
    """The weak-test gate of `factory generate` (factory/checks.py) for records: each distinct code record's tests
    (its prompt and reference) run once against filters/weak_tests.py's trivial programs, and against the record's
    `solution` where it has one. A passing answer to tests that a trivial program also passes is rejected as
    `weak_tests` (with `verify.allow_weak_tests`, kept with `weak_tests` in its scores); one to tests that fail
    their own solution or do not run, as `bad_reference`. Only records that passed verification are checked."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.found: dict[str, Verdict] = {}  # by prompt and reference

    def __call__(self, records: list[dict]) -> list[Verdict]:
        from concurrent.futures import ThreadPoolExecutor

        keys = [self._key(r) for r in records]
        new = {k: r for k, r in zip(keys, records, strict=True) if k is not None and k not in self.found}
        if new:
            workers = min(len(new), self.recipe.verify.workers or os.cpu_count() or 1)
            with ThreadPoolExecutor(workers, thread_name_prefix="weak-tests") as pool:
                self.found |= dict(zip(new, pool.map(self._check, new.values()), strict=True))
        return [self.found[k] if k is not None else Verdict(True) for k in keys]

    @staticmethod
    def _key(rec: dict) -> str | None:
        ref = rec.get("reference")
        if rec.get("task") != "code" or not isinstance(ref, dict) or not has_tests(ref):
            return None
        return json.dumps([rec["prompt"], ref, rec.get("solution")], sort_keys=True)

    def _check(self, rec: dict) -> Verdict:
        from factory.checks import verdict
        from filters.weak_tests import check

        solution = rec.get("solution") if isinstance(rec.get("solution"), str) else None
        c = check(rec["prompt"], rec["reference"], solution, self.recipe.sandbox)
        row = {
            "bad_reference": c.bad_reference,
            "detail": c.detail,
            "weak_tests": c.weak_tests,
            "passed": json.dumps(c.passed),
        }
        return verdict(row, self.recipe.verify.allow_weak_tests)  # as `factory generate` judges a prompt


def _write(write, chunk: list[dict], future, judge, gate, counts: dict, checks: TestChecks | None = None) -> None:
    verdicts = future.result()
    if checks is not None:
        narrow(verdicts, chunk, checks)
    if judge is not None:  # the judge as a filter, or the cascade's disputes (factory.judging.decide)
        judge.settle(verdicts, [(r["prompt"], r.get("reference"), r["completion"]) for r in chunk])
    if gate is not None and gate.active:
        narrow(verdicts, [(_key(r), r["prompt"], r["completion"]) for r in chunk], gate.records)
    rows = []
    for rec, v in zip(chunk, verdicts, strict=True):
        rec.pop("_line"), rec.pop("_where", None)
        row = rec.pop("_out", rec)  # a mapped record goes back as the input's row
        rows.append({**row, "accepted": v.accepted, "reason": v.reason, "scores": v.scores})
        counts["records"] += 1
        counts["accepted"] += v.accepted
        if v.reason:
            counts["reasons"][v.reason] = counts["reasons"].get(v.reason, 0) + 1
    write(rows)
