"""Each code prompt's tests, checked once before its answers are trusted (filters/weak_tests.py): tests that accept a
trivial program are weak, and tests that fail the source's reference solution are broken.

The results are kept in the store (`prompt_checks`, by prompt and battery), so a resumed or later run, or a rerun
of `factory generate`, does not check a prompt again. A prompt with weak tests is set aside before sampling
(`prompt_drops`, reason weak_tests, with the trivial program that passed): none of its answers' passes would mean
anything, and every sample drawn for it would be spent on a rejection. With `verify.allow_weak_tests: true` it is
sampled, and each of its candidates carries `weak_tests` (that program's name) in its scores. A prompt whose tests
fail its reference solution is set aside as bad_reference whatever the setting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from factory.recipe import Recipe
from factory.sources import Prompt
from factory.store import Batch, StoreWriter, now
from filters.base import Verdict, reject
from filters.code import has_tests
from filters.weak_tests import BATTERY, check

CHUNK = 64  # prompts checked between commits: a crash loses at most this many checks


def wanted(r: Recipe, p: Prompt) -> bool:
    """Whether a prompt's tests are checked: a code prompt with tests, in a recipe that verifies its answers."""
    return "verify" in r.filters and p.task == "code" and has_tests(p.reference or {})


def run_checks(store: StoreWriter, r: Recipe, prompts: list[Prompt], bar: Callable = lambda *a, **k: None) -> dict:
    """The `prompt_checks` row of every prompt to check, by prompt_id: stored ones read, the others checked now (in
    `verify.workers` threads, each waiting on its sandboxes) and committed a chunk at a time."""
    todo = [p for p in prompts if wanted(r, p)]
    rows = store.checks([p.prompt_id for p in todo], BATTERY) if todo else {}
    new = [p for p in {p.prompt_id: p for p in todo}.values() if p.prompt_id not in rows]
    if not new:
        return rows
    bar("checking code prompts' tests against trivial programs", len(new), 0, "prompts")
    with ThreadPoolExecutor(r.verify.workers or os.cpu_count() or 1, thread_name_prefix="weak-tests") as pool:
        done = iter(pool.map(lambda p: _row(p, r), new))
        while chunk := list(islice(done, CHUNK)):
            store.commit(Batch([], [], [], prompt_checks=chunk))
            rows |= {row["prompt_id"]: row for row in chunk}
            bar("checking code prompts' tests against trivial programs", len(new), len(rows), "prompts")
    return rows


def _row(p: Prompt, r: Recipe) -> dict:
    c = check(p.prompt, p.reference, p.metadata.get("solution"), r.sandbox)
    return {
        "prompt_id": p.prompt_id,
        "battery": BATTERY,
        "weak_tests": c.weak_tests,
        "passed": json.dumps(c.passed),
        "bad_reference": c.bad_reference,
        "detail": c.detail,
        "checked_at": now(),
    }


def verdict(row: dict | None, allow_weak: bool) -> Verdict:
    """A prompt's verdict from its check: set aside (bad_reference, weak_tests) or sampled, flagged or not."""
    if row is None:
        return Verdict(True)
    if row["bad_reference"]:
        return reject("bad_reference", detail=row["detail"] or "the reference solution fails the tests")
    if row["weak_tests"] and not allow_weak:
        return reject("weak_tests", weak_tests=row["weak_tests"], passed=json.loads(row["passed"] or "[]"))
    return Verdict(True, None, {"weak_tests": row["weak_tests"]} if row["weak_tests"] else {})


def split(store: StoreWriter, r: Recipe, prompts: list[Prompt], bar: Callable = lambda *a, **k: None):
    """(prompts to sample, (prompt, verdict) of those set aside, {prompt_id: scores every candidate carries})."""
    rows = run_checks(store, r, prompts, bar)
    kept, dropped, flags = [], [], {}
    for p in prompts:
        v = verdict(rows.get(p.prompt_id), r.verify.allow_weak_tests)
        if not v.accepted:
            dropped.append((p, v))
            continue
        kept.append(p)
        if v.scores:
            flags[p.prompt_id] = v.scores
    return kept, dropped, flags
