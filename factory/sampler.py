"""Rejection sampling as one stream: rounds of samples per prompt until enough are accepted or the budget is spent.

Here: the job (`Job`, `sample`) and what it counts (`Tally`). Its parts: factory/rounds.py (a round's phases and the
loop that moves them), factory/schedule.py (the rules below, as pure functions), factory/batches.py (the commit) and
factory/chat.py (what the model is asked, and what is kept of its answer).

For each prompt, rounds of `round_size` samples are drawn until `accept_per_prompt` pass every stage or
`max_samples` are spent, so easy prompts stop early and hard ones get more tries. The engine is never left to drain:
it holds rounds of as many prompts as fill its running batch (its `capacity`, vLLM's `max_num_seqs`) twice over,
half running and half waiting, at most `batch_prompts` if set, and the moment one finishes another prompt's round
takes its place. A finished round goes to the verification workers, then to the judge if the recipe has one (its
requests join the same engine), then to a thread that deduplicates whatever rounds have gathered and commits them in
one transaction (at most once a second while the engine is full: `_commit_due`; at most COMMIT_CHARS of text, the
oldest first). A prompt has its next round only once its last one is judged: at once if nothing in it passed (dedup
can only reject more), else once it is committed and dedup has had its say. So a prompt is never sampled in two
rounds at once, each round's sample indices are fixed when it is drawn and its rounds commit in that order, and a
crash loses only rounds not yet committed, which a resume draws again at the same indices.

Prompts are worked on in a window of twice as many as the engine holds at once: a new prompt is begun while the
window has room, and a prompt ready for its next round queues behind the window's others (round-robin). So few
more than the window's prompts are part-sampled at once (one is begun beyond it only when no begun prompt is ready
for a round: the engine does not wait for the window; but never beyond twice the window, where the rounds wait for
the store and the engine waits with them, or an engine faster than the store would pile up finished rounds in
memory), and when the last prompts are begun their remaining rounds are spread over the whole window: were
committed prompts put first instead, the last prompts begun would still have all their rounds to draw one after
another while the engine ran part empty (rounds of 1, 32 prompts, 12 engine slots: the engine at 0.87 of one
call's tokens/s against 0.96, in a simulation of the long-tail benchmark).

At the end of a job, once every prompt is begun, rounds of 1 would leave the engine draining: the hardest prompts
draw their last samples one round after another (8 rounds for a budget of 8) while fewer and fewer places run.
So from then on (`rejection.fill_engine`) a prompt's next round may grow into the places the engine would leave
empty, up to as many samples as the prompt has drawn: at most doubling, so rounds of 1 become 1, 1, 2, 4 and a
budget of 8 is spent in 4 rounds. The prompts still open by then are mostly the hard ones, for which the oracle
(stop at the first accepted) spends the whole budget too: benchmarks/sampling_efficiency.py measures both.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from factory.engines import Engine
from factory.recipe import Recipe
from factory.rounds import State, Stream, finished, prompt_done
from factory.sources import Prompt
from factory.store import Batch
from factory.workers import VerifyPool

if TYPE_CHECKING:
    from factory.stages import Gate


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
    tokens: int = 0  # completion tokens
    new_candidates: int = 0  # drawn by this process (the rest came from before a resume)
    new_tokens: int = 0
    seconds: float = 0.0
    reasons: dict = field(default_factory=dict)
    # the cost ledger (factory/budget.py), the run's whole, from before a resume too
    prompt_tokens: int = 0
    engine_seconds: float = 0.0
    truncated: int = 0  # candidates that ended at max_tokens
    notices: list = field(default_factory=list)  # what the run noticed (factory/truncation.py), as said on screen
    budget: dict = field(default_factory=dict)  # the limits the run samples under: {"tokens": N, "hours": H}
    stopping: bool = False  # the budget is reached, counting the rounds out: no new one starts while it is
    stopped: str | None = None  # "budget": it stopped at the budget with prompts left
    eta: float | None = None  # seconds until the budget or the job ends, at the live rates

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


def pending(recipe: Recipe, prompts: list[Prompt], progress: dict) -> int:
    """How many prompts still need samples, given `StoreReader.progress` of the run."""
    return sum(not finished(recipe, *progress.get(p.prompt_id, (0, 0, 0, 0))[::2]) for p in prompts)


class Sink(Protocol):
    """Where the sampler writes: a `StoreWriter`, or anything that takes batches the same way (a Ray worker's shard)."""

    def progress(self, run_id: str) -> dict[str, tuple[int, int, int, int]]:
        """prompt_id -> (samples drawn, passed, examples kept, tokens) the run has already."""
        ...

    def commit(self, batch: Batch) -> None:
        """Keep the batch whole, or not at all."""
        ...

    def post_progress(self, snapshot: dict) -> None:
        """The run's live counters, for readers during the run (`factory stats`)."""
        ...


@dataclass
class Job:
    """A sampling job: the recipe, its prompts, the sink and run they go to, and what was decided before sampling."""

    recipe: Recipe
    prompts: Sequence[Prompt]
    store: Sink
    run_id: str | None  # None: a new run, started by `begin`
    gate: Gate | None = None  # decontamination and dedup (factory.stages)
    dropped: list = field(default_factory=list)  # (prompt, verdict) set aside before sampling
    before: dict[str, tuple[int, int]] = field(default_factory=dict)  # prompt_id -> (drawn, kept) by earlier runs
    flags: dict[str, dict] = field(default_factory=dict)  # prompt_id -> scores its candidates carry (factory.checks)
    retry: str | None = None  # the run this one retries (`factory generate --retry`)
    begun: bool = False

    def begin(self, versions: dict | None = None, engine: str | None = None) -> str:
        """Start the run's row in the store (a `StoreWriter`), or mark a resumed one running, and store the prompts set
        aside. `engine`: the kind that runs (what `auto` chose), else the recipe's."""
        from factory.stages import set_aside

        r = self.recipe
        if self.run_id is not None:
            self.store.set_status(self.run_id, "running")
        else:
            settings = vars(r.sampling) | vars(r.rejection)
            self.run_id = self.store.start_run(
                r.name, r.hash(), r.text, r.model, engine or r.engine.kind, settings, versions or {}, self.retry
            )
        set_aside(self.store, self.run_id, self.gate, self.dropped)
        self.begun = True
        return self.run_id


def sample(
    job: Job,
    engine: Engine | None,
    pool: VerifyPool | None,
    *,
    judge=None,
    progress: Callable[[Tally], None] | None = None,
) -> Tally:
    """Sample the job's prompts into its sink under its run, resuming from what the sink has of the run. `before`
    counts what earlier runs drew and kept of a prompt toward its budget, not toward the tally; `flags` are scores
    every candidate of a prompt carries (weak tests allowed). `engine` and `pool` may be None for a job with nothing
    left to sample.

    The prompts are read in order, twice: once to count what is done, then as the loop takes prompts. Nothing here
    holds a state per prompt of the job, only per prompt open (and a byte per prompt), so a sequence that makes each
    prompt when asked runs a job of any size in the same memory."""
    recipe, prompts, store, run_id, before = job.recipe, job.prompts, job.store, job.run_id, job.before
    tally = Tally(prompts_set_aside=len(job.dropped))
    progress_before = store.progress(run_id) if run_id else {}
    first = _firsts(prompts)
    fresh = np.zeros(len(prompts), bool)
    begun = deque()  # prompts this run had begun before a crash are part-sampled: they count toward the window
    for i, p in enumerate(prompts):
        if not first[i]:
            continue
        s = State(p, *before.get(p.prompt_id, (0, 0)))
        if p.prompt_id in progress_before:  # drawn by this run before a crash: in the tally too
            drawn, passed, kept, tokens = progress_before[p.prompt_id]
            s.drawn += drawn
            s.kept += kept
            tally.candidates += drawn
            tally.passed += passed
            tally.examples += kept
            tally.tokens += tokens
        s.next = s.drawn
        tally.prompts += 1
        tally.prompts_solved += s.kept > 0
        if prompt_done(recipe, s):
            tally.prompts_done += 1
        elif p.prompt_id in progress_before:
            begun.append(s)
        else:
            fresh[i] = True
    del progress_before  # as big as the run: not held while it samples
    if run_id and hasattr(store, "spent"):
        tally.prompt_tokens, tally.engine_seconds, tally.truncated = store.spent(run_id)
    if fresh.any() or begun:
        Stream(recipe, engine, pool, store, run_id, tally, judge, job.gate, progress, job.flags).run(
            Fresh(prompts, np.flatnonzero(fresh), before), begun
        )
    return tally


def _firsts(prompts: Sequence[Prompt]) -> np.ndarray:
    """Which prompts to sample: the first of each prompt_id (a prompt repeated, same source and text, is sampled
    once). Ids are compared by their hash, 8 bytes a prompt, and by the ids themselves where two hashes are equal."""
    h = np.fromiter((hash(p.prompt_id) for p in prompts), np.int64, len(prompts))
    order = np.argsort(h, kind="stable")
    same = np.flatnonzero(h[order[1:]] == h[order[:-1]])
    keep = np.ones(len(h), bool)
    seen = set()
    for i in np.unique(np.concatenate([order[same], order[same + 1]])).tolist():  # in order; usually none
        keep[i] = prompts[i].prompt_id not in seen
        seen.add(prompts[i].prompt_id)
    return keep


class Fresh:
    """The prompts this run has not begun, each made a state only when the loop takes it."""

    def __init__(self, prompts: Sequence[Prompt], at: np.ndarray, before: dict):
        self.prompts, self.at, self.taken, self.before = prompts, at, 0, before

    def __bool__(self) -> bool:
        return self.taken < len(self.at)

    def popleft(self) -> State:
        p = self.prompts[int(self.at[self.taken])]
        self.taken += 1
        drawn, kept = self.before.get(p.prompt_id, (0, 0))
        return State(p, drawn, kept, next=drawn)
