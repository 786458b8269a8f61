"""Rejection sampling: rounds of samples per prompt until enough are accepted or the budget is spent.

For each prompt, rounds of `round_size` samples are drawn until `accept_per_prompt` pass every filter or
`max_samples` are spent, so easy prompts stop early and hard ones get more tries. Generation and checking
overlap: while the engine generates batch k, worker processes judge batch k-1, and a thread deduplicates it and
commits it to the store in one transaction. Only then may its prompts be scheduled again, so a prompt is never in
two batches at once and its sample indices never collide, even across a crash and a resume.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from factory.engines import Request
from factory.judging import merge
from factory.recipe import Recipe
from factory.sources import Prompt
from factory.stages import MAIN_STAGES
from factory.store import Batch, Store, candidate_id, now
from factory.workers import VerifyPool
from filters.base import Candidate


@dataclass
class Tally:
    """Live counters: what the progress bar shows and the summary prints."""

    prompts: int = 0  # in this run
    prompts_done: int = 0
    prompts_solved: int = 0  # with at least one kept example
    prompts_set_aside: int = 0  # benchmark leaks and near-duplicates, never sampled
    candidates: int = 0
    passed: int = 0
    examples: int = 0
    tokens: int = 0
    new_candidates: int = 0  # drawn by this process (the rest came from before a resume)
    new_tokens: int = 0
    seconds: float = 0.0
    reasons: dict = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


@dataclass
class _State:
    prompt: Prompt
    drawn: int = 0
    kept: int = 0


def messages(recipe: Recipe, p: Prompt) -> list[dict]:
    user = recipe.prompt.template.replace("{prompt}", p.prompt)
    system = [{"role": "system", "content": recipe.prompt.system}] if recipe.prompt.system else []
    return [*system, {"role": "user", "content": user}]


def assistant_text(text: str, think: bool) -> str:
    """The reply as stored for training: templates that open <think> in the prompt leave it out of the text."""
    text = text.strip()
    if think and "</think>" in text and "<think>" not in text:
        text = "<think>\n" + text
    return text


def finished(recipe: Recipe, drawn: int, kept: int) -> bool:
    return kept >= recipe.rejection.accept_per_prompt or drawn >= recipe.rejection.max_samples


def pending(recipe: Recipe, prompts: list[Prompt], progress: dict) -> int:
    """How many prompts still need samples, given `Store.progress` of the run."""
    return sum(not finished(recipe, *progress.get(p.prompt_id, (0, 0, 0, 0))[::2]) for p in prompts)


def sample(
    recipe: Recipe,
    prompts: list[Prompt],
    engine,
    pool: VerifyPool,
    store: Store,
    run_id: str,
    on_progress: Callable[[Tally], None] | None = None,
    judge: Callable | None = None,
    gate: Callable | None = None,
    dropped: int = 0,
) -> Tally:
    rj = recipe.rejection
    names = [f for f in recipe.filters if f not in MAIN_STAGES]  # these need the engine or shared state
    states = {p.prompt_id: _State(p) for p in prompts}
    tally = Tally(
        prompts=len(states), prompts_set_aside=dropped
    )  # a repeated prompt (same source and text, so same id) is sampled once
    for pid, (drawn, passed, kept, tokens) in (store.progress(run_id) if run_id else {}).items():
        if pid in states:
            states[pid].drawn, states[pid].kept = drawn, kept
            tally.candidates += drawn
            tally.passed += passed
            tally.examples += kept
            tally.tokens += tokens
    done = lambda s: finished(recipe, s.drawn, s.kept)  # noqa: E731
    queue = deque(s for s in states.values() if not done(s))
    tally.prompts_done = len(states) - len(queue)
    tally.prompts_solved = sum(s.kept > 0 for s in states.values())
    started = time.monotonic()
    inflight = None
    # the judged batch is deduplicated and committed in a thread while the engine generates the next one (only the
    # engine's own work is on its critical path); a judge may share the engine, so with one it is done in between
    later = ThreadPoolExecutor(1, thread_name_prefix="factory-commit") if judge is None else None
    try:
        while queue or inflight:
            batch = [queue.popleft() for _ in range(min(rj.batch_prompts, len(queue)))]
            committing = later.submit(_commit, recipe, store, run_id, *inflight, tally, None, gate) if (
                inflight and later) else None  # fmt: skip
            launched = None
            if batch:
                sizes = [min(rj.round_size, rj.max_samples - s.drawn) for s in batch]
                outs = engine.generate(
                    [Request(messages(recipe, s.prompt), n) for s, n in zip(batch, sizes, strict=True)]
                )
                think = recipe.prompt.think
                jobs = [
                    (Candidate(c.text, s.prompt.task, s.prompt.reference, c.finish_reason, think), names)
                    for s, comps in zip(batch, outs, strict=True)
                    for c in comps
                ]
                launched = (batch, outs, pool.submit(jobs))
            if inflight:  # judged (and committed, when `later`) while the engine worked on `batch`
                judged = committing.result() if committing else _commit(recipe, store, run_id, *inflight, tally,
                                                                         judge, gate)  # fmt: skip
                queue.extendleft(reversed([s for s in judged if not done(s)]))
                tally.prompts_done += sum(done(s) for s in judged)
                tally.seconds = time.monotonic() - started
                store.publish({"run_id": run_id, "at": now(), **asdict(tally)})
                if on_progress:
                    on_progress(tally)
            inflight = launched
    finally:
        if later:
            later.shutdown(wait=True)  # a batch being committed lands whole before an error or ^C goes on
    tally.seconds = time.monotonic() - started
    return tally


def _main_stages(run_id: str, batch: list[_State], outs, verdicts: list, judge, gate) -> list:
    """Worker verdicts, then the judge's and the gate's (dedup, decontamination) on what passed so far."""
    flat = [(s, j, c) for s, comps in zip(batch, outs, strict=True) for j, c in enumerate(comps)]
    if judge is not None:
        todo = [i for i, v in enumerate(verdicts) if v.accepted]
        items = [(flat[i][0].prompt.prompt, flat[i][0].prompt.reference.get("answer"), flat[i][2].text) for i in todo]
        for i, v in zip(todo, judge(items), strict=True):
            verdicts[i] = merge(verdicts[i], v)
    if gate is not None and gate.active:
        todo = [i for i, v in enumerate(verdicts) if v.accepted]
        items = [(candidate_id(run_id, s.prompt.prompt_id, s.drawn + j), c.text) for s, j, c in (flat[i] for i in todo)]
        for i, v in zip(todo, gate(items), strict=True):
            verdicts[i] = merge(verdicts[i], v)
    return verdicts


def _commit(recipe: Recipe, store: Store, run_id: str, batch: list[_State], outs, future, tally: Tally, judge=None,
            gate=None):  # fmt: skip
    verdicts = iter(_main_stages(run_id, batch, outs, future.result(), judge, gate))
    rows = Batch([], [], [])
    new_kept = []
    for s, comps in zip(batch, outs, strict=True):
        p, kept = s.prompt, s.kept
        if s.drawn == 0:
            rows.prompts.append(p.row())
        for j, c in enumerate(comps):
            v = next(verdicts)
            cid = candidate_id(run_id, p.prompt_id, s.drawn + j)
            rows.candidates.append(
                {
                    "candidate_id": cid,
                    "run_id": run_id,
                    "prompt_id": p.prompt_id,
                    "sample_index": s.drawn + j,
                    "text": c.text,
                    "n_tokens": c.n_tokens,
                    "n_prompt_tokens": c.n_prompt_tokens,
                    "finish_reason": c.finish_reason,
                    "accepted": v.accepted,
                    "reason": v.reason,
                    "scores": json.dumps(v.scores),
                    "created_at": now(),
                }  # fmt: skip
            )
            if not v.accepted:
                tally.reasons[v.reason] = tally.reasons.get(v.reason, 0) + 1
            elif kept < recipe.rejection.accept_per_prompt:  # passed beyond k are kept as candidates only
                kept += 1
                reply = assistant_text(c.text, recipe.prompt.think)
                rows.examples.append(
                    {
                        "example_id": "ex-" + cid,
                        "candidate_id": cid,
                        "prompt_id": p.prompt_id,
                        "run_id": run_id,
                        "messages": [*messages(recipe, p), {"role": "assistant", "content": reply}],
                        "task": p.task,
                        "source": p.source,
                        "n_tokens": c.n_tokens,
                        "created_at": now(),
                    }  # fmt: skip
                )
        new_kept.append(kept)
    if gate is not None:
        rows.dedup = gate.new_signatures()
    store.commit(rows)
    for s, comps, kept in zip(batch, outs, new_kept, strict=True):  # only now, once it is in the store
        tally.prompts_solved += s.kept == 0 and kept > 0
        s.drawn, s.kept = s.drawn + len(comps), kept
    tokens = sum(c["n_tokens"] for c in rows.candidates)
    tally.tokens += tokens
    tally.new_tokens += tokens
    tally.candidates += len(rows.candidates)
    tally.new_candidates += len(rows.candidates)
    tally.passed += sum(c["accepted"] for c in rows.candidates)
    tally.examples += len(rows.examples)
    return batch
