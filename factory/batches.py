"""A commit: judged rounds deduplicated by the gate and written to the store as one batch, in one transaction; what
it changed goes back to the sampler's loop to apply (the commit thread writes nothing the loop reads)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from factory.chat import example
from factory.recipe import Recipe
from factory.store import Batch, StoreWriter, candidate_id, now
from filters.base import narrow

if TYPE_CHECKING:
    from factory.rounds import Round


@dataclass
class Committed:
    """What a commit changed, for the main loop to apply (the commit thread writes nothing the loop reads)."""

    rounds: list[Round]
    kept: list[int]  # each round's prompt's examples kept once it is in
    reasons: dict[str, int]
    candidates: int = 0
    tokens: int = 0
    passed: int = 0
    examples: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0  # engine seconds (the cost ledger's)
    lengths: list = field(default_factory=list)  # (completion tokens, cut at max_tokens, accepted) per candidate


def commit(recipe: Recipe, store: StoreWriter, run_id: str, rounds: list[Round], gate=None) -> Committed:
    """Deduplicate (the gate) and store judged rounds in one transaction; what changed, for the main loop to apply.
    (In the commit thread: it reads the rounds' prompts' state, which the main loop changes only once this is done.)"""
    if gate is not None and gate.active:
        flat = [(r, i) for r in rounds for i in range(len(r.completions))]
        items = [
            (
                candidate_id(run_id, r.state.prompt.prompt_id, r.first + i),
                r.completions[i].text,
                r.preps[i] if r.preps else None,
            )
            for r, i in flat
        ]
        for (r, i), v in zip(flat, narrow([r.verdicts[i] for r, i in flat], items, gate), strict=True):
            r.verdicts[i] = v
    rows = Batch([], [], [])
    done = Committed(rounds, [], {})
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
    done.prompt_tokens = sum(c["n_prompt_tokens"] or 0 for c in rows.candidates)
    done.seconds = sum(c["engine_seconds"] or 0.0 for c in rows.candidates)
    done.lengths = [(c["n_tokens"], c["finish_reason"] == "length", c["accepted"]) for c in rows.candidates]
    return done


def _rows(recipe: Recipe, run_id: str, rnd: Round, kept: int, rows: Batch, reasons: dict) -> int:
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
                "engine_seconds": c.seconds,
            }
        )
        if not v.accepted:
            reasons[v.reason] = reasons.get(v.reason, 0) + 1
        elif kept < recipe.rejection.accept_per_prompt:  # passed beyond k are kept as candidates only
            kept += 1
            rows.examples.append(example(recipe, p, run_id, cid, c.text, c.n_tokens))
    return kept
