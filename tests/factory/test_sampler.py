"""The rejection-sampling loop, driven by a scripted engine, judged by real workers, written to a real store."""

from __future__ import annotations

import json
import time

import fakes
import pytest

from factory import recipe as recipes
from factory import sources
from factory.chat import assistant_text
from factory.engines import Completion
from factory.recipe import SourceConfig
from factory.sampler import Job, sample
from factory.store import StoreWriter
from factory.workers import VerifyPool


class ScriptedEngine(fakes.ScriptedEngine):
    """Answers prompt i right exactly at the sample indices `right[i]` (counted per prompt), wrong otherwise."""

    def __init__(self, prompts, right: list[set[int]], template: str = "{prompt}"):
        super().__init__(fakes.right_at(prompts, right, template))


@pytest.fixture(scope="module")
def pool():
    with VerifyPool(1, timeout=20) as p:
        p.wait_ready()
        yield p


@pytest.fixture(scope="module")
def prompts():
    return sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=4, seed=0))


def _recipe(**rejection) -> recipes.Recipe:
    raw = {
        "source": {"kind": "reasoning_gym", "name": "basic_arithmetic"},
        "prompt": {"template": "Q: {prompt}", "think": True},
        "rejection": {"accept_per_prompt": 1, "max_samples": 12, "round_size": 4, "batch_prompts": 2} | rejection,
        "filters": ["format", "verify"],
    }
    return recipes.parse(raw)


def _run(store: StoreWriter, r: recipes.Recipe) -> str:
    return store.start_run("t", r.hash(), r.text, r.model, "scripted", {}, {})


def _per_prompt(store: StoreWriter, run: str) -> dict[str, tuple]:
    _, rows = store.query(
        f"""SELECT prompt_id, list(sample_index ORDER BY sample_index), count(*) FILTER (WHERE accepted),
                   (SELECT count(*) FROM examples e WHERE e.prompt_id = c.prompt_id AND e.run_id = c.run_id)
            FROM candidates c WHERE run_id = '{run}' GROUP BY prompt_id, run_id"""
    )
    return {pid: (idx, passed, kept) for pid, idx, passed, kept in rows}


def test_rounds_stop_at_the_first_accepted_or_at_max_samples(pool, store, prompts):
    r = _recipe()
    a, b, c = prompts[:3]
    engine = ScriptedEngine([a, b, c], [{0}, set(), {5}], r.prompt.template)
    run = _run(store, r)
    tally = sample(Job(r, [a, b, c], store, run), engine, pool)

    got = _per_prompt(store, run)
    assert got[a.prompt_id] == (list(range(4)), 1, 1)  # one round, right on its first sample
    assert got[b.prompt_id] == (list(range(12)), 0, 0)  # never right: the whole budget
    assert got[c.prompt_id] == (list(range(8)), 1, 1)  # right on the 6th: stops after the second round
    assert (tally.prompts, tally.prompts_done, tally.prompts_solved) == (3, 3, 2)
    assert (tally.candidates, tally.new_candidates, tally.passed, tally.examples) == (24, 24, 2, 2)
    assert tally.reasons == {"wrong_answer": 22}
    assert all(n <= 4 for call in engine.calls for n in call) and all(len(call) <= 2 for call in engine.calls)

    _, reasons = store.query(f"SELECT DISTINCT reason FROM candidates WHERE run_id = '{run}' AND NOT accepted")
    assert reasons == [("wrong_answer",)]
    assert store.query("SELECT count(*) FROM prompts")[1] == [(3,)]
    snapshot = json.loads(store.snapshot_path.read_text())
    assert snapshot["run_id"] == run and snapshot["candidates"] == 24 and snapshot["prompts_done"] == 3

    # the same run again: everything is done, nothing is drawn, the counts come from the store
    calls = len(engine.calls)
    again = sample(Job(r, [a, b, c], store, run), engine, pool)
    assert len(engine.calls) == calls and again.new_candidates == 0
    assert (again.candidates, again.examples, again.prompts_done, again.prompts_solved) == (24, 2, 3, 2)
    assert _per_prompt(store, run) == got


def test_max_samples_not_a_multiple_of_the_round(pool, store, prompts):
    r = _recipe(max_samples=6)
    engine = ScriptedEngine(prompts[:1], [set()], r.prompt.template)
    run = _run(store, r)
    sample(Job(r, prompts[:1], store, run), engine, pool)
    assert engine.calls == [[4], [2]]  # the last round is cut to the budget
    assert _per_prompt(store, run)[prompts[0].prompt_id] == (list(range(6)), 0, 0)


def test_passed_beyond_accept_per_prompt_are_candidates_only(pool, store, prompts):
    r = _recipe(accept_per_prompt=2)
    d = prompts[3]
    engine = ScriptedEngine([d], [{0, 1, 2}], r.prompt.template)
    run = _run(store, r)
    tally = sample(Job(r, [d], store, run), engine, pool)
    assert _per_prompt(store, run)[d.prompt_id] == ([0, 1, 2, 3], 3, 2)
    assert (tally.passed, tally.examples, tally.prompts_solved) == (3, 2, 1)
    _, rows = store.query("SELECT c.sample_index FROM examples e JOIN candidates c USING (candidate_id) ORDER BY 1")
    assert rows == [(0,), (1,)]  # the first passed ones are kept


def test_examples_are_chat_messages(pool, store, prompts):
    r = _recipe()
    a = prompts[0]
    run = _run(store, r)
    sample(Job(r, [a], store, run), ScriptedEngine([a], [{0}], r.prompt.template), pool)
    _, [(messages, task, source, n_tokens)] = store.query("SELECT messages, task, source, n_tokens FROM examples")
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == f"Q: {a.prompt}"
    assert messages[1]["content"] == f"<think>\nAdding up.\n</think>\nThe answer is {a.reference['answer']}."
    assert (task, source) == ("math", "reasoning_gym/basic_arithmetic") and n_tokens == 7
    _, [(text,)] = store.query("SELECT text FROM candidates WHERE accepted")
    assert not text.startswith("<think>")  # the candidate keeps the raw text


def test_system_prompt_comes_first(pool, store, prompts):
    r = _recipe()
    r.prompt.system = "Be brief."
    a = prompts[0]
    sample(Job(r, [a], store, _run(store, r)), ScriptedEngine([a], [{0}], r.prompt.template), pool)
    _, [(messages,)] = store.query("SELECT messages FROM examples")
    assert [m["role"] for m in messages] == ["system", "user", "assistant"] and messages[0]["content"] == "Be brief."


def test_a_repeated_prompt_is_sampled_once(pool, store, prompts):
    r = _recipe()
    a = prompts[0]
    engine = ScriptedEngine([a], [{0}], r.prompt.template)
    tally = sample(Job(r, [a, a], store, _run(store, r)), engine, pool)
    assert engine.calls == [[4]]
    assert (tally.prompts, tally.prompts_done, tally.candidates) == (1, 1, 4)


def test_assistant_text():
    assert assistant_text("reasoning</think>answer", think=True) == "<think>\nreasoning</think>answer"
    assert assistant_text("  <think>r</think>a \n", think=True) == "<think>r</think>a"
    assert assistant_text("reasoning</think>answer", think=False) == "reasoning</think>answer"
    assert assistant_text(" plain answer ", think=True) == "plain answer"


def test_a_batch_is_deduplicated_and_committed_while_the_engine_generates_the_next(store, pool, prompts):
    """The store's work (response dedup, the commit) runs beside the engine, not between two of its calls."""
    import threading
    import time

    from factory.stages import Gate

    r = recipes.parse({
        "source": {"kind": "reasoning_gym", "name": "basic_arithmetic"},
        "prompt": {"template": "Q: {prompt}", "think": True},
        "rejection": {"accept_per_prompt": 1, "max_samples": 4, "round_size": 4, "batch_prompts": 1},
        "filters": ["format", "verify", "dedup"],
        "dedup": {"field": "response"},
    })  # fmt: skip
    engine = ScriptedEngine(prompts, [{0}] * len(prompts), "Q: {prompt}")
    spans: dict[str, list] = {"engine": [], "gate": []}
    generate, gate = engine.generate, Gate(r, store)
    check = gate.__class__.__call__

    def slow_generate(requests, sampling=None):
        t = time.monotonic()
        time.sleep(0.3)
        out = generate(requests, sampling)
        spans["engine"].append((t, time.monotonic(), threading.current_thread().name))
        return out

    def slow_gate(self, items):
        t = time.monotonic()
        time.sleep(0.3)
        out = check(self, items)
        spans["gate"].append((t, time.monotonic(), threading.current_thread().name))
        return out

    engine.generate = slow_generate
    gate.__class__.__call__ = slow_gate
    try:
        tally = sample(Job(r, prompts, store, _run(store, r), gate=gate), engine, pool)
    finally:
        gate.__class__.__call__ = check
    # one engine call per prompt (batch_prompts 1); a commit takes every round judged by then, so there may be fewer
    assert tally.prompts_done == len(prompts) and len(spans["engine"]) == len(prompts) >= len(spans["gate"]) > 1
    assert all(name != "MainThread" for *_, name in spans["gate"])
    overlaps = sum(a < d and c < b for a, b, _ in spans["gate"] for c, d, _ in spans["engine"])
    assert overlaps >= len(spans["gate"]) - 1  # every commit but the last ran while the engine worked


class SteppedEngine(ScriptedEngine):
    """A stream like vLLM's: sample j of a request finishes after `steps[prompt]` polls (or `steps[prompt][j]`),
    others keep running; `samples` counts those still running, and a request returns once all of its are done."""

    def __init__(self, prompts, right, template, steps: dict, capacity: int):
        super().__init__(prompts, right, template)
        self.steps = {template.replace("{prompt}", p): k for p, k in steps.items()}
        self.capacity, self.log = capacity, []  # ("add" | "done", prompt, poll number)
        self.rounds: list[tuple[str, int, int]] = []  # (prompt, samples asked, how many prompts were begun by then)

    def stream(self):
        engine = self

        class Stream:
            capacity, running, polls = engine.capacity, [], 0

            @property
            def unfinished(self):
                return len(self.running)

            @property
            def samples(self):
                return sum(left > 0 for r in self.running for left in r[2])

            def add(self, key, request, sampling=None):
                user = request.messages[-1]["content"]
                engine.log.append(("add", user, self.polls))
                engine.rounds.append((user, request.n, len({u for u, _, _ in engine.rounds} | {user})))
                k = engine.steps[user]
                self.running.append([key, request, list(k[: request.n]) if isinstance(k, list) else [k] * request.n])

            def poll(self):
                time.sleep(0.005)  # an engine step
                self.polls += 1
                for r in self.running:
                    r[2] = [left - 1 for left in r[2]]
                done = [r for r in self.running if max(r[2]) <= 0]
                self.running = [r for r in self.running if max(r[2]) > 0]
                for _key, request, _ in done:
                    engine.log.append(("done", request.messages[-1]["content"], self.polls))
                return [(key, engine.generate([request])[0]) for key, request, _ in done]

            def close(self):
                self.running = []

        return Stream()


def test_the_engine_is_refilled_as_each_round_finishes(pool, store, prompts):
    """A long answer does not hold the others back: short prompts get round after round while it runs, and no
    prompt ever has two rounds in the engine at once."""
    r = _recipe(round_size=1, max_samples=4, accept_per_prompt=1, batch_prompts=0, fill_engine=False)
    long, *short = prompts[:4]
    steps = {long.prompt: 400} | {p.prompt: 1 for p in short}
    engine = SteppedEngine(prompts[:4], [set()] * 4, r.prompt.template, steps, capacity=4)
    tally = sample(Job(r, prompts[:4], store, _run(store, r)), engine, pool)
    assert tally.new_candidates == 16 and tally.prompts_done == 4

    q = lambda p: r.prompt.template.replace("{prompt}", p.prompt)  # noqa: E731
    long_done = min(t for what, user, t in engine.log if what == "done" and user == q(long))
    for p in short:  # all four rounds of each short prompt were drawn while the long one's first was running
        assert [t < long_done for what, user, t in engine.log if what == "done" and user == q(p)] == [True] * 4
    running = {}
    for what, user, _ in engine.log:
        running[user] = running.get(user, 0) + (1 if what == "add" else -1)
        assert running[user] in (0, 1)


def test_a_round_frees_the_places_of_its_samples_as_they_finish(pool, store, prompts):
    """Rounds of 2 in an engine of 2 slots (6 samples in it at most): three rounds whose first sample is done at once
    and whose second runs long hold 3 places, not 6, so the fourth prompt's rounds go on beside them."""
    r = _recipe(round_size=2, max_samples=4, accept_per_prompt=1, batch_prompts=0)
    *long, short = prompts[:4]
    steps = {p.prompt: [1, 150] for p in long} | {short.prompt: [1, 1]}
    engine = SteppedEngine(prompts[:4], [set()] * 4, r.prompt.template, steps, capacity=2)
    tally = sample(Job(r, prompts[:4], store, _run(store, r)), engine, pool)
    assert tally.new_candidates == 16 and tally.prompts_done == 4

    q = lambda p: r.prompt.template.replace("{prompt}", p.prompt)  # noqa: E731
    long_done = min(t for what, user, t in engine.log if what == "done" and user != q(short))
    assert [t < long_done for what, user, t in engine.log if what == "done" and user == q(short)] == [True, True]


def test_prompts_are_sampled_round_robin_in_a_window_twice_what_the_engine_holds(pool, store):
    """The engine holds 3 rounds of 1 (one running, two waiting), so 6 prompts are worked on at once: new prompts
    are begun until the window is full, and a committed prompt then queues behind the others. With committed
    prompts first, a begun prompt took every free place while new ones waited, and the last ones begun drew their
    rounds one after another at the end with the engine part empty."""
    ps = sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=10, seed=0))
    r = _recipe(round_size=1, max_samples=3, accept_per_prompt=1, batch_prompts=0)
    steps = {p.prompt: 5 + 7 * i for i, p in enumerate(ps)}  # rounds finish one at a time
    engine = SteppedEngine(ps, [set()] * len(ps), r.prompt.template, steps, capacity=1)
    tally = sample(Job(r, ps, store, _run(store, r)), engine, pool)
    assert tally.new_candidates == 30 and tally.prompts_done == 10

    adds = [user for what, user, _ in engine.log if what == "add"]
    firsts = [i for i, user in enumerate(adds) if user not in adds[:i]]
    again = min(i for i, user in enumerate(adds) if user in adds[:i])
    assert again > firsts[5]  # six prompts begun before any has its second round: the window is filled first
    assert len(firsts) == 10 and adds[again] == adds[0]  # ...and then the first prompt begun goes first
    in_engine = 0
    for what, _, _ in engine.log:  # never more than twice the engine's capacity plus a round in it
        in_engine += 1 if what == "add" else -1
        assert in_engine <= 3


def test_once_every_prompt_is_begun_rounds_grow_into_empty_places_at_most_doubling(pool, store, prompts):
    """Rounds of 1 while prompts are still to begin, though the engine has room; then a prompt's next round takes
    the places the engine would leave empty, up to as many samples as it has drawn: 1, 1, 2, 4 where the places
    are free, fewer where not. Each sample index is drawn once whatever the sizes, and the budget is kept."""
    a, b, c = prompts[:3]
    q = lambda p: "Q: " + p.prompt  # noqa: E731
    rounds = lambda engine, p: [n for user, n, _ in engine.rounds if user == q(p)]  # noqa: E731

    # one prompt in the engine at a time (batch_prompts 1) in 4 places: a and b are done before c is begun
    r = _recipe(round_size=1, max_samples=8, accept_per_prompt=1, batch_prompts=1)
    engine = SteppedEngine([a, b, c], [set()] * 3, r.prompt.template, {p.prompt: 2 for p in (a, b, c)}, capacity=4)
    run = _run(store, r)
    tally = sample(Job(r, [a, b, c], store, run), engine, pool)
    assert tally.new_candidates == 24 and tally.prompts_done == 3
    c_begun = next(i for i, (user, _, _) in enumerate(engine.rounds) if user == q(c))
    assert {n for _, n, _ in engine.rounds[: c_begun + 1]} == {1}  # rounds of 1 while c was still to begin
    assert rounds(engine, c) == [1, 1, 2, 4]
    assert {pid: idx for pid, (idx, _, _) in _per_prompt(store, run).items()} == {
        p.prompt_id: list(range(8)) for p in (a, b, c)
    }

    # a job smaller than the engine, all begun at once: no more than the 3 places the engine has
    r = _recipe(round_size=1, max_samples=8, accept_per_prompt=1, batch_prompts=0)
    engine = SteppedEngine([a], [set()], r.prompt.template, {a.prompt: 2}, capacity=3)
    sample(Job(r, [a], store, _run(store, r)), engine, pool)
    assert rounds(engine, a) == [1, 1, 2, 3, 1]

    # a prompt right at its third sample drew the whole round of 2 (4 samples), one right at its second only 2
    engine = SteppedEngine([a, b], [{2}, {1}], r.prompt.template, {p.prompt: 2 for p in (a, b)}, capacity=16)
    run = _run(store, r)
    sample(Job(r, [a, b], store, run), engine, pool)
    assert (rounds(engine, a), rounds(engine, b)) == ([1, 1, 2], [1, 1])
    got = _per_prompt(store, run)
    assert (got[a.prompt_id], got[b.prompt_id]) == (([0, 1, 2, 3], 1, 1), ([0, 1], 1, 1))

    # two to keep: a prompt that passed at once still grows its later rounds, and stops at its second pass
    r = _recipe(round_size=1, max_samples=8, accept_per_prompt=2, batch_prompts=0)
    engine = SteppedEngine([a], [{0, 5}], r.prompt.template, {a.prompt: 2}, capacity=16)
    run = _run(store, r)
    sample(Job(r, [a], store, run), engine, pool)
    assert rounds(engine, a) == [1, 1, 2, 4] and _per_prompt(store, run)[a.prompt_id] == (list(range(8)), 2, 2)

    # rejection.fill_engine: false keeps every round at round_size
    r = _recipe(round_size=1, max_samples=8, accept_per_prompt=1, batch_prompts=0, fill_engine=False)
    engine = SteppedEngine([a, b], [{2}, set()], r.prompt.template, {p.prompt: 2 for p in (a, b)}, capacity=16)
    sample(Job(r, [a, b], store, _run(store, r)), engine, pool)
    assert (rounds(engine, a), rounds(engine, b)) == ([1] * 3, [1] * 8)


def test_a_round_with_nothing_passed_has_its_next_round_before_it_is_committed(pool, store, prompts):
    """The next round of a prompt whose round failed goes into the engine as soon as the round is judged, while the
    commit (slow here) is still writing it: dedup can only reject more. A round with a passing answer holds its
    prompt until the commit says whether dedup kept it. Either way each prompt's samples land at 0, 1, 2, ..."""
    r = _recipe(round_size=1, max_samples=3, accept_per_prompt=2, batch_prompts=0)
    wrong, right = prompts[:2]
    engine = SteppedEngine([wrong, right], [set(), {0, 1, 2}], r.prompt.template, {wrong.prompt: 1, right.prompt: 1}, 4)
    streams, commits, commit = [], [], store.commit
    stream = engine.stream
    engine.stream = lambda: streams.append(stream()) or streams[-1]

    q = lambda p: r.prompt.template.replace("{prompt}", p.prompt)  # noqa: E731

    def slow_commit(rows):
        start = streams[0].polls
        if not commits:  # the first: held until the failing prompt's three rounds are through (30 s if they wait)
            deadline = time.monotonic() + 30
            while sum(e[:2] == ("done", q(wrong)) for e in engine.log) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        commit(rows)
        commits.append((start, streams[0].polls, {c["prompt_id"] for c in rows.candidates}))

    store.commit = slow_commit
    run = _run(store, r)
    tally = sample(Job(r, [wrong, right], store, run), engine, pool)
    assert tally.new_candidates == 5 and tally.prompts_done == 2

    adds = {p.prompt_id: [t for what, user, t in engine.log if what == "add" and user == q(p)] for p in (wrong, right)}
    first_commit_end = commits[0][1]
    assert len(adds[wrong.prompt_id]) == 3 and adds[wrong.prompt_id][2] < first_commit_end  # all drawn meanwhile
    right_first = min(end for _, end, ids in commits if right.prompt_id in ids)
    assert len(adds[right.prompt_id]) == 2 and adds[right.prompt_id][1] >= right_first  # waited for its commit
    per = _per_prompt(store, run)
    assert per[wrong.prompt_id] == ([0, 1, 2], 0, 0) and per[right.prompt_id] == ([0, 1], 2, 2)


def test_a_crash_while_a_failed_round_is_being_committed_loses_nothing_committed(pool, store, prompts):
    """The worst moment for the next round queued before its last one's commit: that commit fails (a crash) while
    the next round is drawn. Nothing of the failed batch lands, the next round is never committed ahead of it, and a
    resume draws both again at the same indices: each prompt's samples are 0, 1, 2, ... with none twice."""
    r = _recipe(round_size=1, max_samples=4, accept_per_prompt=1, batch_prompts=0)
    ps = prompts[:3]
    steps = {p.prompt: 1 for p in ps}
    run, commit, calls = _run(store, r), store.commit, []

    def failing_commit(rows):
        calls.append(len(rows.candidates))
        if len(calls) == 2:
            time.sleep(0.2)  # the next rounds of the failed prompts are in the engine meanwhile
            raise OSError("disk gone")
        commit(rows)

    store.commit = failing_commit
    with pytest.raises(OSError, match="disk gone"):
        sample(Job(r, ps, store, run), SteppedEngine(ps, [set()] * 3, r.prompt.template, steps, 4), pool)
    first = _per_prompt(store, run)
    assert sum(len(idx) for idx, _, _ in first.values()) == calls[0]  # only the first batch landed
    assert all(idx == list(range(len(idx))) for idx, _, _ in first.values())

    store.commit = commit
    tally = sample(Job(r, ps, store, run), SteppedEngine(ps, [set()] * 3, r.prompt.template, steps, 4), pool)
    assert tally.prompts_done == 3 and tally.candidates == 12
    assert sorted(_per_prompt(store, run).values()) == [([0, 1, 2, 3], 0, 0)] * 3


def test_while_the_engine_is_full_rounds_gather_between_commits(pool, store, monkeypatch):
    """A commit slows the steps of an engine in this process, so while the engine is full ready rounds wait for the
    next COMMIT_EVERY; once it has room they go at once. Every sample still lands, each index once."""
    from factory import schedule

    ps = sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=12, seed=0))
    r = _recipe(round_size=1, max_samples=2, accept_per_prompt=1, batch_prompts=0)
    commits = {}
    for every in (0.0, 60.0):
        monkeypatch.setattr(schedule, "COMMIT_EVERY", every)
        steps = {p.prompt: 10 + 8 * i for i, p in enumerate(ps)}  # rounds end one at a time, 8 steps apart
        engine = SteppedEngine(ps, [set()] * len(ps), r.prompt.template, steps, capacity=4)
        calls = []
        real = store.commit
        monkeypatch.setattr(store, "commit", lambda rows, real=real, calls=calls: calls.append(1) or real(rows))
        run = _run(store, r)
        tally = sample(Job(r, ps, store, run), engine, pool)
        assert tally.new_candidates == 24
        assert [idx for idx, _, _ in _per_prompt(store, run).values()] == [[0, 1]] * 12
        commits[every] = len(calls)
    assert commits[60.0] * 2 < commits[0.0]  # 24 rounds: near one commit each at 0 s, a handful at 60 s (21, 6 here)


def test_an_engine_faster_than_the_store_waits_for_it(pool, store):
    """An engine that says nothing of its capacity and answers at once, a store that takes its time: prompts are
    begun beyond the window only up to twice it (here 2 prompts in the engine, a window of 4, so at most 8 begun and
    not yet committed), then the engine waits for the store. Without that bound the engine ran ahead and every
    finished round waited in memory for the commit (a writer's peak of 9.5 GB at 100k prompts of 12 KB traces)."""
    ps = sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=40, seed=0))
    r = _recipe(round_size=1, max_samples=1, accept_per_prompt=1, batch_prompts=2)
    engine = ScriptedEngine(ps, [{0}] * len(ps), r.prompt.template)
    begun, committed, open_at_once, commit = set(), set(), [], store.commit
    generate = engine.generate

    def counting_generate(requests, sampling=None):
        begun.update(q.prompt for q in requests)
        open_at_once.append(len(begun) - len(committed))
        return generate(requests, sampling)

    def slow_commit(rows):
        time.sleep(0.05)
        commit(rows)
        committed.update(p["prompt"] for p in rows.prompts)

    engine.generate, store.commit = counting_generate, slow_commit
    tally = sample(Job(r, ps, store, _run(store, r)), engine, pool)
    assert tally.prompts_done == len(ps) == len(committed) and tally.examples == len(ps)
    assert max(open_at_once) <= 8 and len(engine.calls) > 10


def test_a_job_holds_only_the_prompts_it_has_open(pool, store):
    """Prompts made when the sampler asks for them: while it runs, only those of rounds under way are alive (at most
    8 prompts open here, and the rounds of those just committed), not one for every prompt of the job (all 80 were,
    before), so a job's size does not set its memory."""
    import weakref
    from collections.abc import Sequence

    alive = [0]

    def gone():
        alive[0] -= 1

    class Made(Sequence):
        def __len__(self):
            return 80

        def __getitem__(self, i):
            if not 0 <= i < 80:
                raise IndexError(i)
            p = sources.make("made", "math", f"What is {i} + 1?", {"answer": str(i + 1)})
            alive[0] += 1
            weakref.finalize(p, gone)
            return p

    class Right:
        def generate(self, requests, sampling=None):
            seen.append(alive[0])
            return [[Completion(f"Adding up.\n</think>\nThe answer is {int(r.prompt.split()[2]) + 1}.", 8, "stop")]
                    for r in requests]  # fmt: skip

    seen: list[int] = []
    r = _recipe(round_size=1, max_samples=1, accept_per_prompt=1, batch_prompts=2)
    tally = sample(Job(r, Made(), store, _run(store, r)), Right(), pool)
    assert tally.prompts == tally.examples == 80 and len(seen) > 10
    assert max(seen) <= 20  # 2 in the engine, a window of 4, at most 8 open: 16 seen here


def test_a_commit_takes_at_most_commit_chars_of_text(pool, store, monkeypatch):
    """Rounds pile up while a slow commit runs; the next commit takes the oldest of them up to COMMIT_CHARS of text
    (DuckDB holds a transaction whole: its memory follows its text), the rest wait for the one after. Every sample
    lands, each prompt's at 0, 1, 2, ... (the rounds left behind are the newest)."""
    from factory import schedule

    ps = sources.load(SourceConfig(kind="reasoning_gym", name="basic_arithmetic", size=24, seed=0))
    r = _recipe(round_size=1, max_samples=2, accept_per_prompt=1, batch_prompts=4)
    monkeypatch.setattr(schedule, "COMMIT_CHARS", 200)
    sizes, commit = [], store.commit

    def slow_commit(rows):
        sizes.append((sum(len(c["text"]) for c in rows.candidates), max(len(c["text"]) for c in rows.candidates)))
        time.sleep(0.1)
        commit(rows)

    store.commit = slow_commit
    run = _run(store, r)
    tally = sample(Job(r, ps, store, run), ScriptedEngine(ps, [set()] * len(ps), r.prompt.template), pool)
    assert tally.new_candidates == 48 and tally.prompts_done == 24
    assert all(chars - last < 200 for chars, last in sizes)  # under the cap before its last round
    assert max(chars for chars, _ in sizes) > 150 and len(sizes) >= 48 * 40 // 240  # the cap was reached, often
    assert [idx for idx, _, _ in _per_prompt(store, run).values()] == [[0, 1]] * 24
