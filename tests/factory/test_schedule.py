"""The sampler's scheduling policy (factory/schedule.py) and its rounds' phases: each rule alone, on numbers."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from factory import schedule
from factory.rounds import MOVES, Phase, Round, State, Stream
from factory.schedule import Limits
from factory.sources import make


def test_limits_hold_twice_the_running_batch_and_a_window_of_twice_that():
    assert schedule.limits(32, 4, None) == Limits(most_seqs=68, most_prompts=None, window=34)  # 17 rounds of 4
    assert schedule.limits(32, 4, 8) == Limits(most_seqs=68, most_prompts=8, window=16)  # batch_prompts binds
    assert schedule.limits(None, 4, None) == Limits(None, schedule.DEFAULT_PROMPTS, 2 * schedule.DEFAULT_PROMPTS)
    assert schedule.limits(None, 1, 5) == Limits(None, 5, 10)


def test_room_is_under_both_limits():
    lim = Limits(most_seqs=10, most_prompts=3, window=6)
    assert schedule.room(lim, 2, 9) and not schedule.room(lim, 3, 0) and not schedule.room(lim, 0, 10)
    assert schedule.room(Limits(None, None, 6), 10**6, 10**6)


def test_a_new_prompt_while_the_window_has_room_else_a_begun_one():
    lim = Limits(None, None, window=4)
    assert schedule.next_prompt(lim, 3, fresh=True, begun=True) == "fresh"
    assert schedule.next_prompt(lim, 4, fresh=True, begun=True) == "begun"  # the window is full: round-robin
    assert schedule.next_prompt(lim, 7, fresh=True, begun=False) == "fresh"  # none waits: beyond the window
    assert schedule.next_prompt(lim, 8, fresh=True, begun=False) is None  # never beyond twice it
    assert schedule.next_prompt(lim, 0, fresh=False, begun=False) is None
    assert schedule.next_prompt(lim, 9, fresh=False, begun=True) == "begun"


def test_a_round_grows_into_free_places_at_most_doubling_and_never_past_the_budget():
    assert schedule.round_size(first=3, size=1, max_samples=8, free=10, grow=False) == 1
    assert schedule.round_size(first=3, size=1, max_samples=8, free=10, grow=True) == 3  # as many as drawn
    assert schedule.round_size(first=3, size=1, max_samples=8, free=2, grow=True) == 2  # as many as are free
    assert schedule.round_size(first=6, size=1, max_samples=8, free=10, grow=True) == 2  # the budget's rest
    assert schedule.round_size(first=0, size=4, max_samples=8, free=10, grow=True) == 4  # never below the size
    assert [schedule.round_size(f, 1, 8, 100, True) for f in (0, 1, 2, 4)] == [1, 1, 2, 4]  # 8 in 4 rounds


def test_commits_gather_while_the_engine_is_full():
    every = schedule.COMMIT_EVERY
    assert not schedule.commit_due(every / 2, capacity=8, free=0)
    assert schedule.commit_due(every, capacity=8, free=0)
    assert schedule.commit_due(0.0, capacity=8, free=1)  # room in the engine: at once
    assert schedule.commit_due(0.0, capacity=None, free=0)  # an engine that says nothing of its capacity


def test_a_commit_takes_the_oldest_rounds_up_to_its_text_and_one_at_least():
    assert schedule.commit_take([100, 100, 100], most=150) == 2
    assert schedule.commit_take([500, 1], most=100) == 1
    assert schedule.commit_take([1, 1, 1], most=100) == 3
    assert schedule.commit_take([], most=100) == 0


def test_every_phase_leads_to_done_and_a_round_only_moves_along_them():
    seen, todo = set(), [None]
    while todo:
        for nxt in MOVES.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(Phase)
    loop = SimpleNamespace(count=Counter())
    rnd = Round(State(make("x", "math", "What is 1 + 1?", {})), 0, 1)
    for to in (Phase.ENGINE, Phase.VERIFYING, Phase.READY, Phase.COMMITTING, Phase.DONE):
        Stream._move(loop, rnd, to)
    assert rnd.phase is Phase.DONE and +loop.count == Counter({Phase.DONE: 1})
    for bad in (Phase.ENGINE, Phase.READY):  # nothing comes back from done, nor skips a phase
        with pytest.raises(AssertionError, match="cannot go from"):
            Stream._move(loop, rnd, bad)
    fresh = Round(rnd.state, 1, 1)
    with pytest.raises(AssertionError, match="cannot go from None to Phase.READY"):
        Stream._move(loop, fresh, Phase.READY)


def test_a_prompt_never_has_two_rounds_out():
    s = State(make("x", "math", "What is 1 + 1?", {}))
    s.drawing = Round(s, 0, 1)
    loop = SimpleNamespace()
    with pytest.raises(AssertionError, match="has a round out already"):
        Stream._launch(loop, s)
