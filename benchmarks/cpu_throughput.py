"""The whole CPU side of `factory generate` (verification, every filter, dedup, store) on 4k-token traces.

The engine is replaced by one that replays ready-made traces (so only the CPU side is measured); everything after
it is the real pipeline: `sample()` with the verify workers (format, verify with math-verify, readability,
language), the dedup stage on responses and a DuckDB commit per batch. The baseline is the sum of the same parts
called directly, one candidate after another in one process (`run_chain`, the dedup stage, the same commits). One
run, same traces; candidates per second of each and the ratio.

    .venv/bin/python benchmarks/cpu_throughput.py [--prompts 128] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

from common import table
from filter_quality import load, paragraphs_of, synthetic, token_counter

from factory import recipe as recipes
from factory import sources
from factory.engines import Completion
from factory.run import make_pool
from factory.sampler import Job, sample
from factory.stages import Gate
from factory.store import StoreWriter
from filters.registry import Settings, run_chain

FILTERS = ["format", "verify", "readability", "language", "dedup"]
N = 4  # samples per prompt, one round


class Replay:
    """Hands out the prepared traces in order, as if a model had written them."""

    def __init__(self, texts: list[str], tokens: int):
        self.texts, self.i, self.tokens = texts, 0, tokens

    def generate(self, requests, sampling=None):
        out = []
        for r in requests:
            out.append(
                [Completion(self.texts[(self.i + k) % len(self.texts)], self.tokens, "stop") for k in range(r.n)]
            )
            self.i += r.n
        return out


class Inline:
    """The baseline's 'pool': judges each candidate right away, in this process."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def submit(self, items):
        fut: Future = Future()
        fut.set_result([run_chain(c, names, self.settings) for c, names in items])
        return fut


def run(recipe, prompts, texts, tokens, pool) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = StoreWriter(Path(tmp) / "bench.duckdb")
        job = Job(recipe, prompts, store, None, gate=Gate(recipe, store))
        job.begin(engine="replay")
        start = time.perf_counter()
        tally = sample(job, Replay(texts, tokens), pool)
        secs = time.perf_counter() - start
        store.close()
    return tally.new_candidates, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=4096)
    args = ap.parse_args()
    count, unit = token_counter()
    paragraphs = paragraphs_of(load("readability_cases.jsonl") + load("language_cases.jsonl"), "en")
    texts = [c.text for c in synthetic(paragraphs, 64, args.tokens, count, seed=1)]
    r = recipes.parse(
        {
            "source": {"kind": "jsonl", "path": "x"},
            "filters": FILTERS,
            "dedup": {"field": "response"},
            "verify": {"workers": args.workers, "timeout": 30},
            "rejection": {"accept_per_prompt": N, "max_samples": N, "round_size": N, "batch_prompts": 32},
        }
    )
    prompts = [
        sources.make("bench", "math", f"Problem {i}: what is 2 + 3?", {"answer": "5"}) for i in range(args.prompts)
    ]
    with make_pool(r) as pool:
        pool.wait_ready()
        run(r, prompts[:8], texts, args.tokens, pool)  # warm the workers' imports and caches
        n, secs = run(r, prompts, texts, args.tokens, pool)
    settings = Settings(sandbox=r.sandbox, readability=r.readability, language=r.language)
    n0, secs0 = run(r, prompts, texts, args.tokens, Inline(settings))
    rows = [
        ["sum of the parts, one loop in one process", n0, n0 / secs0, 1.0],
        [f"factory pipeline ({args.workers} verify workers)", n, n / secs, (n / secs) / (n0 / secs0)],
    ]
    print(f"{n} candidates of ~{args.tokens} {unit}; filters {', '.join(FILTERS)} (dedup on responses); store commits")
    print(table(["arm", "candidates", "candidates/s", "ratio to baseline"], rows))


if __name__ == "__main__":
    main()
