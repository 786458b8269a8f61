"""The stages that hold state across candidates, and so run in the main process: decontamination and MinHash dedup.

Before sampling, prompts that leak a benchmark (an 8-word n-gram in common with any registered test set, by
default, filters/decontam.py) or repeat a prompt the store already has are set aside, each with its reason, and are
never sampled. At commit, responses that passed every other filter are checked against the benchmarks' reference
solutions (12-word n-grams, by default), and against problems and earlier responses when the recipe asks
(`decontam.fields` holds "response", `dedup.field` is "response"). The dedup index starts from the store's
signatures and its new ones are written in the same transaction as the batch they came from, so dedup holds across
runs, resumes and `factory filter --db`.

The per-response work that needs no state of the run (a response's decontamination verdict, its MinHash signature)
is a `Prep`, run by the verification workers on each candidate that passed them: it runs beside the engine, and the
commit thread only looks signatures up in the dedup index (a response without one is worked out there, as before).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from factory.recipe import Recipe
from factory.sources import Prompt
from factory.store import StoreWriter
from filters.base import Verdict, narrow
from filters.registry import DECONTAM, DEDUP

if TYPE_CHECKING:
    import numpy as np

    from filters.decontam import DecontamConfig
    from filters.dedup import DedupConfig


@dataclass(frozen=True)
class Prepared:
    decontam: Verdict | None  # the response's decontamination verdict (None: not checked)
    signature: np.ndarray | None  # its dedup MinHash signature (None: not deduplicated)


class Prep:
    """A Gate's per-response work that holds no state of the run, for a verification worker to do: it travels as its
    two configs and builds the benchmarks' index and the MinHash permutations where it first runs (0.2 s)."""

    def __init__(self, decontam: DecontamConfig | None, dedup: DedupConfig | None):
        self.decontam_cfg, self.dedup_cfg = decontam, dedup
        self._parts: tuple | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_parts": None}

    def __call__(self, text: str) -> Prepared:
        if self._parts is None:
            from factory import benchmarks
            from filters.decontam import Decontaminator
            from filters.dedup import MinHasher

            d, h = self.decontam_cfg, self.dedup_cfg
            d = Decontaminator(d, registry_texts=benchmarks.texts) if d else None
            self._parts = (d, MinHasher(h) if h else None)
        d, h = self._parts
        return Prepared(d.response(text) if d else None, h.signatures([text])[0] if h else None)


class Gate:
    """Decontamination and dedup for one recipe, on prompts (`split`) and on responses (`__call__`)."""

    def __init__(self, recipe: Recipe, store: StoreWriter | None = None):
        from filters.decontam import Decontaminator
        from filters.dedup import Deduper

        on = set(recipe.filters) | ({DECONTAM} if recipe.decontam.enabled else set())
        listed = [n for n in recipe.filters if n in (DECONTAM, DEDUP)]  # as the recipe lists them
        self.order = listed if DECONTAM in listed or DECONTAM not in on else [DECONTAM, *listed]
        d = recipe.decontam
        from factory import benchmarks

        active = DECONTAM in on and (d.fields or d.solution_ngram)
        self.decontam = Decontaminator(d, registry_texts=benchmarks.texts) if active else None
        self.decontam_prompts = "prompt" in d.fields
        self.decontam_responses = "response" in d.fields or bool(d.solution_ngram)
        folder = store.path.parent if store is not None else None  # the index's files go beside the store
        self.dedup = Deduper(recipe.dedup, folder) if DEDUP in on else None
        self.dedup_field = recipe.dedup.field
        if self.dedup is not None and store is not None:
            self.dedup.load(store.dedup_rows(recipe.dedup.scope))

    @property
    def active(self) -> bool:
        return self.decontam is not None or self.dedup is not None

    @property
    def prep(self) -> Prep | None:
        """The work on responses that verification workers can do for this gate (None: none)."""
        d = self.decontam.cfg if self.decontam is not None and self.decontam_responses else None
        h = self.dedup.cfg if self.dedup is not None and self.dedup_field == "response" else None
        return Prep(d, h) if d or h else None

    def _checks(self, field: str) -> list:
        """The batch checks on `field` (prompt | response) of (key, text, Prepared or None), in the recipe's order."""
        on = {
            DECONTAM: self.decontam is not None
            and (self.decontam_prompts if field == "prompt" else self.decontam_responses),
            DEDUP: self.dedup is not None and self.dedup_field == field,
        }
        run = {DECONTAM: self._decontam_prompts if field == "prompt" else self._decontam_responses, DEDUP: self._dedup}
        return [run[n] for n in self.order if on[n]]

    def _decontam_prompts(self, items: list[tuple]) -> list[Verdict]:
        return [self.decontam(text) for _, text, _ in items]

    def _decontam_responses(self, items: list[tuple]) -> list[Verdict]:
        return [self.decontam.response(t) if p is None or p.decontam is None else p.decontam for _, t, p in items]

    def _dedup(self, items: list[tuple]) -> list[Verdict]:
        return self.dedup.check_many([(k, t) for k, t, _ in items], sigs=[p and p.signature for _, _, p in items])

    def _apply(self, field: str, items: list[tuple], verdicts: list[Verdict]) -> list[Verdict]:
        for check in self._checks(field):
            narrow(verdicts, items, check)
        return verdicts

    def split(self, prompts: list[Prompt]) -> tuple[list[Prompt], list[tuple[Prompt, Verdict]]]:
        """(prompts to sample, prompts set aside with their verdict)."""
        pairs = [(p.prompt_id, p.prompt, None) for p in prompts]
        verdicts = self._apply("prompt", pairs, [Verdict(True) for _ in prompts])
        kept = [p for p, v in zip(prompts, verdicts, strict=True) if v.accepted]
        return kept, [(p, v) for p, v in zip(prompts, verdicts, strict=True) if not v.accepted]

    def __call__(self, items: list[tuple]) -> list[Verdict]:
        """Verdicts on (candidate_id, response text) pairs that passed every other filter, in order. A third element,
        when there is one, is what the verification workers worked out for it (`Prepared`, or None)."""
        items = [(x[0], x[1], x[2] if len(x) > 2 else None) for x in items]
        return self._apply("response", items, [Verdict(True) for _ in items])

    def records(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        """Verdicts on (key, prompt, completion) records for `factory filter`: prompt stages, then response ones."""
        verdicts = self._apply("prompt", [(k, p, None) for k, p, _ in items], [Verdict(True) for _ in items])
        return self._apply("response", [(k, c, None) for k, _, c in items], verdicts)

    def new_signatures(self) -> list[dict]:
        """Signatures kept since the last call, for the store (written with the batch that made them)."""
        return self.dedup.export_new() if self.dedup is not None else []


def set_aside(store: StoreWriter, run_id: str, gate: Gate | None, dropped: list[tuple[Prompt, Verdict]]) -> None:
    """Store the prompts `Gate.split` set aside, and the prompt signatures it added, in one transaction."""
    from factory.store import Batch

    rows = Batch([p.row() for p, _ in dropped], [], [])
    rows.prompt_drops = [
        {"run_id": run_id, "prompt_id": p.prompt_id, "reason": v.reason, "scores": json.dumps(v.scores)}
        for p, v in dropped
    ]
    rows.dedup = gate.new_signatures() if gate is not None else []
    store.commit(rows)
