"""A job's rounds on their way from the engine to the store: their phases, and the loop that moves them (engine,
verification workers, judge, commit) while keeping the engine full. factory/sampler.py says why it works this way;
factory/schedule.py holds its rules."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import Enum
from queue import SimpleQueue
from typing import TYPE_CHECKING

from factory import batches, budget, engines, judging, schedule, truncation
from factory.chat import messages
from factory.engines import Request
from factory.recipe import Recipe
from factory.sources import Prompt
from factory.store import now
from filters.base import Candidate, Verdict, merge
from filters.registry import worker_stages

if TYPE_CHECKING:
    from factory.batches import Committed
    from factory.sampler import Fresh


def finished(recipe: Recipe, drawn: int, kept: int) -> bool:
    return kept >= recipe.rejection.accept_per_prompt or drawn >= recipe.rejection.max_samples


def prompt_done(recipe: Recipe, s: State) -> bool:
    return s.spent or finished(recipe, s.drawn, s.kept)


@dataclass(eq=False)
class State:
    prompt: Prompt
    drawn: int = 0  # samples committed, this run's and those `before` counted for it
    kept: int = 0
    spent: bool = False  # the engine had fewer samples than asked for (a replay that ran out)
    next: int = 0  # the sample index its next round starts at: `drawn` and the rounds not yet committed
    drawing: Round | None = None  # its round between the engine and its verdicts: one at a time


class Phase(Enum):
    """Where a round is. It moves only forward, by `Stream._move`, along MOVES."""

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
class Round:
    state: State
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
class Ask:
    """The key of a judge's question in an engine stream (a round's own key is the round)."""

    rnd: Round
    i: int  # which of its completions


class Stream:
    """The loop that keeps the engine full and moves each round on: engine, workers, judge, commit."""

    def __init__(self, recipe, engine, pool, store, run_id, tally, judge, gate, on_progress, flags=None):
        self.recipe, self.pool, self.store, self.run_id, self.tally = recipe, pool, store, run_id, tally
        self.flags = flags or {}
        self.judge, self.gate, self.on_progress = judge, gate, on_progress
        self.names = worker_stages(recipe.filters)  # the rest need the engine or shared state: the main process
        self.gen = engines.stream(engine)
        self.asks = None if judge is None else self.gen if judge.engine is engine else engines.stream(judge.engine)
        self.recheck = None if judge is None else judging.Recheck(judge, store, run_id)
        self.streams = [self.gen] if self.asks in (None, self.gen) else [self.gen, self.asks]
        self.count: Counter = Counter()  # rounds in each phase
        self.ready: list[Round] = []  # in the order they were judged
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
        tr, said = recipe.truncation, hasattr(store, "notices") and "truncation" in store.notices(run_id)
        self.watch = truncation.Watch(recipe.sampling.max_tokens, tr.share, tr.window, said=said)
        self.budget = budget.Budget(recipe.budget.tokens, recipe.budget.hours)
        tally.budget, self.since = self.budget.limits(), budget.spent(tally) | {"prompts_done": tally.prompts_done}
        self.outstanding = 0  # samples launched and not yet committed (their cost is not in the tally yet)
        self.stopping = False  # the budget is reached: no new rounds while it is, the ones out are committed

    def _move(self, rnd: Round, to: Phase) -> None:
        """The one way a round changes phase."""
        assert to in MOVES[rnd.phase], f"a round cannot go from {rnd.phase} to {to}"
        if rnd.phase is not None:
            self.count[rnd.phase] -= 1
        self.count[to] += 1
        rnd.phase = to

    def _busy(self) -> bool:
        phases = (Phase.ENGINE, Phase.VERIFYING, Phase.JUDGING, Phase.READY, Phase.COMMITTING)
        return any(self.count[p] for p in phases) or bool(self.recheck and self.recheck.open)

    def run(self, fresh: Fresh, begun: deque) -> None:
        """Sample `fresh` prompts (not begun by this run) and `begun` ones (part-sampled before a resume)."""
        self.started = time.monotonic()
        self.open, self.begun = len(begun), begun
        later = ThreadPoolExecutor(1, thread_name_prefix="factory-commit")
        try:
            while (fresh or begun) and not self._stop() or self._busy():
                self.wake.clear()  # what finishes from here on sets it: the wait below cannot miss it
                while (fresh or begun) and self._room() and not self._stop() and self._launch_next(fresh, begun):
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
        self._notice(self.watch.finish())
        if self.stopping and (fresh or begun):
            self.tally.stopped = "budget"
        self._post_progress(force=True)

    def _stop(self) -> bool:
        """Whether the budget is reached, counting what the samples out will likely cost. Asked again as rounds
        commit (the estimate of those out gives way to what they cost), so the run ends once what it committed, with
        nothing out, reaches the budget."""
        if not self.budget:
            return False
        was, max_tokens = self.stopping, self.recipe.sampling.max_tokens
        self.stopping = budget.reached(self.budget, self.tally, self.outstanding, max_tokens) is not None
        self.tally.stopping = self.stopping
        if self.stopping and not was:
            self._post_progress(force=True)
        return self.stopping

    def _notice(self, n: dict | None) -> None:
        """Say once, on screen (the tally's notices) and in the store, what the run noticed."""
        if n is not None:
            self.tally.notices.append(truncation.line(n))
            if hasattr(self.store, "add_notice"):
                self.store.add_notice(self.run_id, "truncation", n)
            self._post_progress(force=True)

    def _launch_next(self, fresh: Fresh, begun: deque) -> bool:
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
        self.committing = later.submit(batches.commit, self.recipe, self.store, self.run_id, taken, self.gate)
        self.committing.add_done_callback(lambda _: self.wake.set())

    def _free(self) -> int:
        """Places of the engine's running batch that no sample holds (0 where it says nothing of its capacity)."""
        return self.capacity - self.gen.samples if self.capacity else 0

    def _room(self) -> bool:
        # the stream counts samples still generating (the judge's questions in the same engine too), each freeing
        # its place as it finishes where the engine shows that (vLLM, OpenAI), else with its whole request
        return schedule.room(self.limits, self.count[Phase.ENGINE], self.gen.samples)

    def _launch(self, s: State, tail: bool = False) -> None:
        assert s.drawing is None, f"prompt {s.prompt.prompt_id} has a round out already"
        rj = self.recipe.rejection
        # `tail`: every prompt is begun, so the places the engine would leave empty can only go to those still open
        n = schedule.round_size(s.next, rj.round_size, rj.max_samples, self._free(), tail and rj.fill_engine)
        rnd = s.drawing = Round(s, s.next, n)
        self._move(rnd, Phase.ENGINE)
        request = Request(messages(self.recipe, s.prompt), n, s.prompt.prompt, s.next)
        self.gen.add(rnd, request, self.recipe.sampling)  # the recipe's sampling, whatever the engine was built with
        s.next += n
        self.outstanding += n

    def _collect(self) -> bool:
        """Take what the engine finished: rounds to the workers, judge answers into their round's verdicts."""
        moved = False
        for stream in self.streams:
            for key, completions in stream.poll():
                moved = True
                if isinstance(key, Ask):
                    self._judged(key, self.judge.verdict(completions))
                elif isinstance(key, judging.Canary):
                    self.recheck.answered(key, completions)
                else:
                    self._verify(key, completions)
        return moved

    def _judged(self, ask: Ask, v) -> None:
        rnd = ask.rnd
        rnd.verdicts[ask.i] = judging.decide(rnd.verdicts[ask.i], v)
        rnd.asked -= 1
        for key, request in self.recheck.count(rnd.state.prompt):
            self.asks.add(key, request, self.judge.sampling)
        if not rnd.asked:
            self._judged_all(rnd)

    def _judged_all(self, rnd: Round) -> None:
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

    def _verify(self, rnd: Round, completions: list) -> None:
        s = rnd.state
        if len(completions) < rnd.n:
            s.spent = True  # the engine has no more for this prompt; what it gave is still judged and kept
        if not completions:
            self.outstanding -= rnd.n
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

    def _arrived(self, rnd: Round) -> None:
        """(In the thread that resolved its future.)"""
        self.verified.put(rnd)
        self.wake.set()

    def _verified(self) -> bool:
        """Rounds the workers finished go to the judge (the ones they accepted), or straight to the commit."""
        moved = not self.verified.empty()
        while not self.verified.empty():  # this thread alone takes from it
            self._verdicts_in(self.verified.get())
        return moved

    def _verdicts_in(self, rnd: Round) -> None:
        rnd.verdicts, rnd.future = rnd.future.result(), None  # its callback refers to the round: no cycle to keep
        rnd.preps = [v.prep for v in rnd.verdicts]
        if flag := self.flags.get(rnd.state.prompt.prompt_id):
            rnd.verdicts = [merge(v, Verdict(v.accepted, v.reason, flag)) for v in rnd.verdicts]
        todo = self.judge.asked(rnd.verdicts) if self.judge is not None else []
        if not todo:
            self._judged_all(rnd)
            return
        self._move(rnd, Phase.JUDGING)
        rnd.asked, p = len(todo), rnd.state.prompt
        for i in todo:
            ask = self.judge.request(p.prompt, p.reference.get("answer"), rnd.completions[i].text)
            self.asks.add(Ask(rnd, i), ask, self.judge.sampling)

    def _committed(self, done: Committed) -> None:
        """Apply what a commit changed: the tally, and each prompt's samples drawn and examples kept; then each
        prompt is done or queued for its next round (behind the window's others)."""
        t = self.tally
        for rnd, kept in zip(done.rounds, done.kept, strict=True):
            s = rnd.state
            assert rnd.first == s.drawn, f"prompt {s.prompt.prompt_id}: rounds commit in the order they were drawn"
            t.prompts_solved += s.kept == 0 and kept > 0
            s.drawn, s.kept = s.drawn + len(rnd.completions), kept
            self.outstanding -= rnd.n
            self._move(rnd, Phase.DONE)
            if rnd.released:  # its next round is out already
                continue
            s.drawing = None
            if prompt_done(self.recipe, s):
                t.prompts_done += 1
                self.open -= 1
            else:
                self.begun.append(s)
        for reason, n in done.reasons.items():
            t.reasons[reason] = t.reasons.get(reason, 0) + n
        t.tokens, t.new_tokens = t.tokens + done.tokens, t.new_tokens + done.tokens
        t.candidates, t.new_candidates = t.candidates + done.candidates, t.new_candidates + done.candidates
        t.passed, t.examples = t.passed + done.passed, t.examples + done.examples
        t.prompt_tokens, t.engine_seconds = t.prompt_tokens + done.prompt_tokens, t.engine_seconds + done.seconds
        t.truncated += sum(cut for _, cut, _ in done.lengths)
        self._notice(self.watch.see(done.lengths))
        self._post_progress()

    def _post_progress(self, force: bool = False) -> None:
        t = time.monotonic()
        self.tally.seconds = t - self.started
        self.tally.eta = budget.eta(self.budget, self.tally, self.since)
        if force or t - self.posted >= 0.5:
            self.posted = t
            self.store.post_progress({"run_id": self.run_id, "at": now(), **asdict(self.tally)})
            if self.on_progress:
                self.on_progress(self.tally)
