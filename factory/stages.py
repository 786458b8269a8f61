"""The stages that hold state across candidates, and so run in the main process: decontamination and MinHash dedup.

Before sampling, prompts that leak a benchmark (an 8-word n-gram in common with any registered test set, by
default, filters/decontam.py) or repeat a prompt the store already has are set aside, each with its reason, and are
never sampled. At commit, responses that passed every other filter are checked against the benchmarks' reference
solutions (12-word n-grams, by default), and against problems and earlier responses when the recipe asks
(`decontam.fields` holds "response", `dedup.field` is "response"). The dedup index starts from the store's
signatures and its new ones are written in the same transaction as the batch they came from, so dedup holds across
runs, resumes and `factory filter --db`.
"""

from __future__ import annotations

import json

from factory.recipe import Recipe
from factory.sources import Prompt
from factory.store import Store
from filters.base import Verdict, narrow

DEDUP, DECONTAM = "dedup", "decontam"


class Gate:
    """Decontamination and dedup for one recipe, on prompts (`split`) and on responses (`__call__`)."""

    def __init__(self, recipe: Recipe, store: Store | None = None):
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

    def _checks(self, field: str) -> list:
        """The batch checks on `field` (prompt | response) of (key, text) pairs, in the recipe's order."""
        on = {DECONTAM: self.decontam is not None and (self.decontam_prompts if field == "prompt" else
                                                       self.decontam_responses),
              DEDUP: self.dedup is not None and self.dedup_field == field}  # fmt: skip
        check = self.decontam if field == "prompt" else getattr(self.decontam, "response", None)
        run = {DECONTAM: lambda pairs: [check(text) for _, text in pairs],
               DEDUP: lambda pairs: self.dedup.check_many(pairs)}  # fmt: skip
        return [run[n] for n in self.order if on[n]]

    def _apply(self, field: str, pairs: list[tuple[str, str]], verdicts: list[Verdict]) -> list[Verdict]:
        for check in self._checks(field):
            narrow(verdicts, pairs, check)
        return verdicts

    def split(self, prompts: list[Prompt]) -> tuple[list[Prompt], list[tuple[Prompt, Verdict]]]:
        """(prompts to sample, prompts set aside with their verdict)."""
        verdicts = self._apply("prompt", [(p.prompt_id, p.prompt) for p in prompts], [Verdict(True) for _ in prompts])
        kept = [p for p, v in zip(prompts, verdicts, strict=True) if v.accepted]
        return kept, [(p, v) for p, v in zip(prompts, verdicts, strict=True) if not v.accepted]

    def __call__(self, items: list[tuple[str, str]]) -> list[Verdict]:
        """Verdicts on (candidate_id, response text) pairs that passed every other filter, in order."""
        return self._apply("response", items, [Verdict(True) for _ in items])

    def records(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        """Verdicts on (key, prompt, completion) records for `factory filter`: prompt stages, then response ones."""
        verdicts = self._apply("prompt", [(k, p) for k, p, _ in items], [Verdict(True) for _ in items])
        return self._apply("response", [(k, c) for k, _, c in items], verdicts)

    def new_signatures(self) -> list[dict]:
        """Signatures kept since the last call, for the store (written with the batch that made them)."""
        return self.dedup.export_new() if self.dedup is not None else []


def set_aside(store: Store, run_id: str, gate: Gate, dropped: list[tuple[Prompt, Verdict]]) -> None:
    """Store the prompts `Gate.split` set aside, and the prompt signatures it added, in one transaction."""
    from factory.store import Batch

    rows = Batch([p.row() for p, _ in dropped], [], [])
    rows.prompt_drops = [
        {"run_id": run_id, "prompt_id": p.prompt_id, "reason": v.reason, "scores": json.dumps(v.scores)}
        for p, v in dropped
    ]
    rows.dedup = gate.new_signatures()
    store.commit(rows)
