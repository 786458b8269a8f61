"""The sampler's scheduling policy as pure functions: how much the engine holds, which prompt goes next, how big a
round is, and when and how much goes to the commit. factory/sampler.py says why each rule is what it is."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PROMPTS = 64  # prompts in an engine that says nothing of its capacity (one that generates lists)
COMMIT_EVERY = 1.0  # seconds between commits while the engine is full (a crash loses at most this much more)
COMMIT_CHARS = 8 << 20  # text in one commit at most (the rest waits for the next): ~220 rounds of 3 12-KB traces


@dataclass(frozen=True)
class Limits:
    most_seqs: int | None  # samples in the engine at once, running and waiting (None: no limit)
    most_prompts: int | None  # rounds in the engine at once (None: no limit)
    window: int  # prompts begun and not finished before a new one waits (round-robin over them)


def limits(capacity: int | None, round_size: int, batch_prompts: int | None) -> Limits:
    """For an engine running `capacity` samples at once (None: it does not say): as many waiting as running, so each
    place that frees is taken at the next step; a window twice the prompts it holds."""
    most_seqs = 2 * capacity + round_size if capacity else None
    most_prompts = batch_prompts or (None if capacity else DEFAULT_PROMPTS)
    rounds = most_seqs and -(-most_seqs // round_size)
    held = min(m for m in (most_prompts, rounds) if m)
    return Limits(most_seqs, most_prompts, 2 * held)


def room(lim: Limits, rounds: int, samples: int) -> bool:
    """Whether the engine takes another round, holding `rounds` rounds and `samples` samples not yet finished."""
    prompts_ok = lim.most_prompts is None or rounds < lim.most_prompts
    return prompts_ok and (lim.most_seqs is None or samples < lim.most_seqs)


def next_prompt(lim: Limits, open_: int, fresh: bool, begun: bool) -> str | None:
    """Which prompt's round goes next: "fresh" (a new prompt) while the window has room, else "begun" (the next
    prompt waiting for its next round); a new one beyond the window when none is waiting, never beyond twice it."""
    if fresh and (open_ < lim.window or not begun and open_ < 2 * lim.window):
        return "fresh"
    return "begun" if begun else None


def round_size(first: int, size: int, max_samples: int, free: int, grow: bool) -> int:
    """Samples in a prompt's round that starts at sample `first`: `size`, or with `grow` (every prompt begun, and
    `rejection.fill_engine`) as many as it has drawn where that many of the engine's places are `free` (at most
    doubling); never past `max_samples`."""
    n = max(size, min(first, free)) if grow else size
    return min(n, max_samples - first)


def commit_due(since_last: float, capacity: int | None, free: int) -> bool:
    """Whether ready rounds go to the commit now: every COMMIT_EVERY seconds while the engine is full, at once when
    it has room or says nothing of its capacity."""
    return since_last >= COMMIT_EVERY or capacity is None or free > 0


def commit_take(sizes: list[int], most: int = COMMIT_CHARS) -> int:
    """How many of the ready rounds (their text sizes, oldest first) go in one commit: up to `most` characters, one
    at least."""
    chars = n = 0
    while n < len(sizes) and (n == 0 or chars < most):
        chars += sizes[n]
        n += 1
    return n
