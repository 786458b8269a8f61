"""Rejection sampling as one stream: rounds of samples per prompt until enough are accepted or the budget is spent.

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

import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import Enum
from queue import SimpleQueue
from typing import TYPE_CHECKING, Protocol

import numpy as np

from factory import engines, schedule
from factory.engines import Engine, Request
from factory.recipe import Recipe
from factory.sources import Prompt
from factory.store import Batch, StoreWriter, candidate_id, now
from factory.workers import VerifyPool
from filters.base import Candidate, Verdict, merge, narrow
from filters.registry import worker_stages

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
    tokens: int = 0
    new_candidates: int = 0  # drawn by this process (the rest came from before a resume)
    new_tokens: int = 0
    seconds: float = 0.0
    reasons: dict = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


@dataclass(eq=False)
class _State:
    prompt: Prompt
    drawn: int = 0  # samples committed, this run's and those `before` counted for it
    kept: int = 0
    spent: bool = False  # the engine had fewer samples than asked for (a replay that ran out)
    next: int = 0  # the sample index its next round starts at: `drawn` and the rounds not yet committed
    drawing: _Round | None = None  # its round between the engine and its verdicts: one at a time


class Phase(Enum):
    """Where a round is. It moves only forward, by `_Stream._move`, along MOVES."""

    ENGINE = "engine"  # its samples are being generated
    VERIFYING = "verifying"  # with the verification workers
    JUDGING = "judging"  # the judge's answers to its passed samples are awaited
    READY = "ready"  # judged: waits for the commit thread
    COMMITTING = "committing"  # in the commit thread's transaction
    DONE = "done"  # committed (or the engine had nothing for it)


MOVES = {
    None: {Phase.ENGINE},
    Phase.ENGINE: {Phase.VERIFYING, Phase.DONE},
    Phase.VERIFYING: {Phase.JUDGING, Phase.READY},
    Phase.JUDGING: {Phase.READY},
    Phase.READY: {Phase.COMMITTING},
    Phase.COMMITTING: {Phase.DONE},
    Phase.DONE: set(),
}


@dataclass(eq=False)
class _Round:
    state: _State
    first: int  # the sample index of its first completion
    n: int  # samples asked for
    phase: Phase | None = None
    completions: list = field(default_factory=list)
    future: Future | None = None  # the workers' verdicts
    verdicts: list = field(default_factory=list)
    preps: list = field(default_factory=list)  # the workers' `Prepared` for the gate, or None, per completion
    asked: int = 0  # the judge's answers still awaited
    released: bool = False  # judged with nothing passed: its prompt's next round was queued before its commit


@dataclass(frozen=True)
class _Ask:
    """The key of a judge's question in an engine stream (a round's own key is the round)."""

    rnd: _Round
    i: int  # which of its completions


@dataclass
class _Committed:
    """What a commit changed, for the main loop to apply (the commit thread writes nothing the loop reads)."""

    rounds: list[_Round]
    kept: list[int]  # each round's prompt's examples kept once it is in
    reasons: dict[str, int]
    candidates: int = 0
    tokens: int = 0
    passed: int = 0
    examples: int = 0


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
            self.run_id = self.store.start_run(r.name, r.hash(), r.text, r.model, engine or r.engine.kind, settings,
                                               versions or {}, self.retry)  # fmt: skip
        set_aside(self.store, self.run_id, self.gate, self.dropped)
        self.begun = True
        return self.run_id


def sample(job: Job, engine: Engine | None, pool: VerifyPool | None, *, judge=None,
           progress: Callable[[Tally], None] | None = None) -> Tally:  # fmt: skip
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
        s = _State(p, *before.get(p.prompt_id, (0, 0)))
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
        if _done(recipe, s):
            tally.prompts_done += 1
        elif p.prompt_id in progress_before:
            begun.append(s)
        else:
            fresh[i] = True
    del progress_before  # as big as the run: not held while it samples
    if fresh.any() or begun:
        _Stream(recipe, engine, pool, store, run_id, tally, judge, job.gate, progress, job.flags).run(
            _Fresh(prompts, np.flatnonzero(fresh), before), begun
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


class _Fresh:
    """The prompts this run has not begun, each made a state only when the loop takes it."""

    def __init__(self, prompts: Sequence[Prompt], at: np.ndarray, before: dict):
        self.prompts, self.at, self.taken, self.before = prompts, at, 0, before

    def __bool__(self) -> bool:
        return self.taken < len(self.at)

    def popleft(self) -> _State:
        p = self.prompts[int(self.at[self.taken])]
        self.taken += 1
        drawn, kept = self.before.get(p.prompt_id, (0, 0))
        return _State(p, drawn, kept, next=drawn)


def _done(recipe: Recipe, s: _State) -> bool:
    return s.spent or finished(recipe, s.drawn, s.kept)


class _Stream:
    """The loop that keeps the engine full and moves each round on: engine, workers, judge, commit."""

    def __init__(self, recipe, engine, pool, store, run_id, tally, judge, gate, on_progress, flags=None):
        self.recipe, self.pool, self.store, self.run_id, self.tally = recipe, pool, store, run_id, tally
        self.flags = flags or {}
        self.judge, self.gate, self.on_progress = judge, gate, on_progress
        self.names = worker_stages(recipe.filters)  # the rest need the engine or shared state: the main process
        self.gen = engines.stream(engine)
        self.asks = None if judge is None else self.gen if judge.engine is engine else engines.stream(judge.engine)
        self.streams = [self.gen] if self.asks in (None, self.gen) else [self.gen, self.asks]
        self.count: Counter = Counter()  # rounds in each phase
        self.ready: list[_Round] = []  # in the order they were judged
        self.verified: SimpleQueue = SimpleQueue()  # rounds whose verdicts came in, in the order they did
        # set as workers' verdicts or a commit come in: scanning and waiting on every round's future each turn held
        # the GIL for 35% of a store-bound run (hundreds of rounds with the workers), slowing the commit thread
        self.wake = threading.Event()
        self.capacity = getattr(self.gen, "capacity", None)
        self.limits = schedule.limits(self.capacity, recipe.rejection.round_size, recipe.rejection.batch_prompts)
        self.open = 0  # prompts begun and not finished
        self.committing: Future | None = None
        self.posted = 0.0
        self.last_commit = 0.0

    def _move(self, rnd: _Round, to: Phase) -> None:
        """The one way a round changes phase."""
        assert to in MOVES[rnd.phase], f"a round cannot go from {rnd.phase} to {to}"
        if rnd.phase is not None:
            self.count[rnd.phase] -= 1
        self.count[to] += 1
        rnd.phase = to

    def _busy(self) -> bool:
        return any(self.count[p] for p in (Phase.ENGINE, Phase.VERIFYING, Phase.JUDGING, Phase.READY, Phase.COMMITTING))

    def run(self, fresh: _Fresh, begun: deque) -> None:
        """Sample `fresh` prompts (not begun by this run) and `begun` ones (part-sampled before a resume)."""
        self.started = time.monotonic()
        self.open, self.begun = len(begun), begun
        later = ThreadPoolExecutor(1, thread_name_prefix="factory-commit")
        try:
            while fresh or begun or self._busy():
                self.wake.clear()  # what finishes from here on sets it: the wait below cannot miss it
                while (fresh or begun) and self._room() and self._launch_next(fresh, begun):
                    pass
                moved = self._collect()
                moved |= self._verified()
                if self.committing is not None and self.committing.done():
                    self._committed(self.committing.result())
                    self.committing, moved = None, True
                if self.ready and self.committing is None and self._commit_due():
                    self._send(later)
                if not moved and not any(s.unfinished for s in self.streams):
                    self.wake.wait(0.05)
        finally:
            for s in self.streams:
                s.close()
            later.shutdown(wait=True)  # a batch being committed lands whole before an error or ^C goes on
        self._post_progress(force=True)

    def _launch_next(self, fresh: _Fresh, begun: deque) -> bool:
        """Put the next prompt's round in the engine (`schedule.next_prompt`: a new prompt while the window has room,
        else a begun one; beyond the window when no begun one is ready, so the engine does not wait for the window,
        but not beyond twice it: then the rounds wait for the store, and the engine with them, so that an engine
        faster than the store cannot pile its finished rounds up in memory). Returns whether one went."""
        which = schedule.next_prompt(self.limits, self.open, bool(fresh), bool(begun))
        if which == "fresh":
            self.open += 1
            self._launch(fresh.popleft())
        elif which == "begun":
            self._launch(begun.popleft(), tail=not fresh)
        return which is not None

    def _commit_due(self) -> bool:
        """Whether the rounds ready go to the commit thread now. Its work holds the GIL in parts, which slows the
        engine's steps where they run in this process (4% a sequence-step with a commit of 2 rounds at every chance,
        here), so while the engine is full, rounds gather for COMMIT_EVERY seconds; once it has room (the end of a
        job), a prompt held for its commit may be what would fill it, so they go at once."""
        return schedule.commit_due(time.monotonic() - self.last_commit, self.capacity, self._free())

    def _send(self, later: ThreadPoolExecutor) -> None:
        """The oldest ready rounds, up to COMMIT_CHARS of text, to the commit thread. DuckDB holds a transaction's
        rows whole while it commits, so a commit's memory follows its text: ~10x it, measured."""
        n = schedule.commit_take([sum(len(c.text) for c in r.completions) for r in self.ready], schedule.COMMIT_CHARS)
        taken, self.ready = self.ready[:n], self.ready[n:]
        for rnd in taken:
            self._move(rnd, Phase.COMMITTING)
        self.last_commit = time.monotonic()
        self.committing = later.submit(commit, self.recipe, self.store, self.run_id, taken, self.gate)
        self.committing.add_done_callback(lambda _: self.wake.set())

    def _free(self) -> int:
        """Places of the engine's running batch that no sample holds (0 where it says nothing of its capacity)."""
        return self.capacity - self.gen.samples if self.capacity else 0

    def _room(self) -> bool:
        # the stream counts samples still generating (the judge's questions in the same engine too), each freeing
        # its place as it finishes where the engine shows that (vLLM, OpenAI), else with its whole request
        return schedule.room(self.limits, self.count[Phase.ENGINE], self.gen.samples)

    def _launch(self, s: _State, tail: bool = False) -> None:
        assert s.drawing is None, f"prompt {s.prompt.prompt_id} has a round out already"
        rj = self.recipe.rejection
        # `tail`: every prompt is begun, so the places the engine would leave empty can only go to those still open
        n = schedule.round_size(s.next, rj.round_size, rj.max_samples, self._free(), tail and rj.fill_engine)
        rnd = s.drawing = _Round(s, s.next, n)
        self._move(rnd, Phase.ENGINE)
        request = Request(messages(self.recipe, s.prompt), n, s.prompt.prompt, s.next)
        self.gen.add(rnd, request, self.recipe.sampling)  # the recipe's sampling, whatever the engine was built with
        s.next += n

    def _collect(self) -> bool:
        """Take what the engine finished: rounds to the workers, judge answers into their round's verdicts."""
        moved = False
        for stream in self.streams:
            for key, completions in stream.poll():
                moved = True
                if isinstance(key, _Ask):
                    self._judged(key, self.judge.verdict(completions))
                else:
                    self._verify(key, completions)
        return moved

    def _judged(self, ask: _Ask, v) -> None:
        rnd = ask.rnd
        rnd.verdicts[ask.i] = merge(rnd.verdicts[ask.i], v)
        rnd.asked -= 1
        if not rnd.asked:
            self._judged_all(rnd)

    def _judged_all(self, rnd: _Round) -> None:
        """A round whose verdicts are in goes to the commit. If none passed, its prompt's next round is queued now
        rather than once it is committed: the dedup at the commit can reject more but never pass one, so the prompt
        needs another round whatever the commit finds, and its rounds still commit in the order they were drawn (this
        one is ahead of the next in the commit queue). The rounds that must wait for the commit are those with an
        answer that passed: whether their prompt is done is known only once dedup has had its say."""
        self._move(rnd, Phase.READY)
        self.ready.append(rnd)
        s = rnd.state
        if not any(v.accepted for v in rnd.verdicts) and not s.spent and not finished(self.recipe, s.next, s.kept):
            rnd.released, s.drawing = True, None
            self.begun.append(s)

    def _verify(self, rnd: _Round, completions: list) -> None:
        s = rnd.state
        if len(completions) < rnd.n:
            s.spent = True  # the engine has no more for this prompt; what it gave is still judged and kept
        if not completions:
            self._move(rnd, Phase.DONE)
            s.drawing = None
            self.tally.prompts_done += 1
            self.open -= 1
            return
        self._move(rnd, Phase.VERIFYING)
        think, p = self.recipe.prompt.think, s.prompt
        rnd.completions = completions
        jobs = [(Candidate(c.text, p.task, p.reference, c.finish_reason, think), self.names) for c in completions]
        rnd.future = self.pool.submit(jobs)
        rnd.future.add_done_callback(lambda _: self._arrived(rnd))

    def _arrived(self, rnd: _Round) -> None:
        """(In the thread that resolved its future.)"""
        self.verified.put(rnd)
        self.wake.set()

    def _verified(self) -> bool:
        """Rounds the workers finished go to the judge (the ones they accepted), or straight to the commit."""
        moved = not self.verified.empty()
        while not self.verified.empty():  # this thread alone takes from it
            self._verdicts_in(self.verified.get())
        return moved

    def _verdicts_in(self, rnd: _Round) -> None:
        rnd.verdicts, rnd.future = rnd.future.result(), None  # its callback refers to the round: no cycle to keep
        rnd.preps = [v.prep for v in rnd.verdicts]
        if flag := self.flags.get(rnd.state.prompt.prompt_id):
            rnd.verdicts = [merge(v, Verdict(v.accepted, v.reason, flag)) for v in rnd.verdicts]
        todo = [i for i, v in enumerate(rnd.verdicts) if v.accepted] if self.judge is not None else []
        if not todo:
            self._judged_all(rnd)
            return
        self._move(rnd, Phase.JUDGING)
        rnd.asked, p = len(todo), rnd.state.prompt
        for i in todo:
            ask = self.judge.request(p.prompt, p.reference.get("answer"), rnd.completions[i].text)
            self.asks.add(_Ask(rnd, i), ask, self.judge.sampling)

    def _committed(self, done: _Committed) -> None:
        """Apply what a commit changed: the tally, and each prompt's samples drawn and examples kept; then each
        prompt is done or queued for its next round (behind the window's others)."""
        t = self.tally
        for rnd, kept in zip(done.rounds, done.kept, strict=True):
            s = rnd.state
            assert rnd.first == s.drawn, f"prompt {s.prompt.prompt_id}: rounds commit in the order they were drawn"
            t.prompts_solved += s.kept == 0 and kept > 0
            s.drawn, s.kept = s.drawn + len(rnd.completions), kept
            self._move(rnd, Phase.DONE)
            if rnd.released:  # its next round is out already
                continue
            s.drawing = None
            if _done(self.recipe, s):
                t.prompts_done += 1
                self.open -= 1
            else:
                self.begun.append(s)
        for reason, n in done.reasons.items():
            t.reasons[reason] = t.reasons.get(reason, 0) + n
        t.tokens, t.new_tokens = t.tokens + done.tokens, t.new_tokens + done.tokens
        t.candidates, t.new_candidates = t.candidates + done.candidates, t.new_candidates + done.candidates
        t.passed, t.examples = t.passed + done.passed, t.examples + done.examples
        self._post_progress()

    def _post_progress(self, force: bool = False) -> None:
        t = time.monotonic()
        self.tally.seconds = t - self.started
        if force or t - self.posted >= 0.5:
            self.posted = t
            self.store.post_progress({"run_id": self.run_id, "at": now(), **asdict(self.tally)})
            if self.on_progress:
                self.on_progress(self.tally)


def example(recipe: Recipe, p: Prompt, run_id: str, cid: str, text: str, n_tokens: int) -> dict:
    """The `examples` row of an accepted candidate: the chat as SFT reads it."""
    reply = assistant_text(text, recipe.prompt.think)
    return {
        "example_id": "ex-" + cid,
        "candidate_id": cid,
        "prompt_id": p.prompt_id,
        "run_id": run_id,
        "messages": [*messages(recipe, p), {"role": "assistant", "content": reply}],
        "task": p.task,
        "source": p.source,
        "n_tokens": n_tokens,
        "created_at": now(),
    }


def commit(recipe: Recipe, store: StoreWriter, run_id: str, rounds: list[_Round], gate=None) -> _Committed:
    """Deduplicate (the gate) and store judged rounds in one transaction; what changed, for the main loop to apply.
    (In the commit thread: it reads the rounds' prompts' state, which the main loop changes only once this is done.)"""
    if gate is not None and gate.active:
        flat = [(r, i) for r in rounds for i in range(len(r.completions))]
        items = [(candidate_id(run_id, r.state.prompt.prompt_id, r.first + i), r.completions[i].text,
                  r.preps[i] if r.preps else None) for r, i in flat]  # fmt: skip
        for (r, i), v in zip(flat, narrow([r.verdicts[i] for r, i in flat], items, gate), strict=True):
            r.verdicts[i] = v
    rows = Batch([], [], [])
    done = _Committed(rounds, [], {})
    kept_now = {}  # a prompt may have two rounds here: the one queued before the other committed
    for rnd in rounds:
        s = rnd.state
        kept = kept_now[s] = _rows(recipe, run_id, rnd, kept_now.get(s, s.kept), rows, done.reasons)
        done.kept.append(kept)
    if gate is not None:
        rows.dedup = gate.new_signatures()
    store.commit(rows)
    done.tokens = sum(c["n_tokens"] for c in rows.candidates)
    done.candidates, done.examples = len(rows.candidates), len(rows.examples)
    done.passed = sum(c["accepted"] for c in rows.candidates)
    return done


def _rows(recipe: Recipe, run_id: str, rnd: _Round, kept: int, rows: Batch, reasons: dict) -> int:
    """Add a round's rows to `rows` (its prompt's with its first round); returns its prompt's examples kept then."""
    p = rnd.state.prompt
    if rnd.first == 0:
        rows.prompts.append(p.row())
    for j, (c, v) in enumerate(zip(rnd.completions, rnd.verdicts, strict=True)):
        cid = candidate_id(run_id, p.prompt_id, rnd.first + j)
        rows.candidates.append(
            {
                "candidate_id": cid,
                "run_id": run_id,
                "prompt_id": p.prompt_id,
                "sample_index": rnd.first + j,
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
            reasons[v.reason] = reasons.get(v.reason, 0) + 1
        elif kept < recipe.rejection.accept_per_prompt:  # passed beyond k are kept as candidates only
            kept += 1
            rows.examples.append(example(recipe, p, run_id, cid, c.text, c.n_tokens))
    return kept
