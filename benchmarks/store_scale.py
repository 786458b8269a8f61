"""The store at scale: realistic traces through the path a run takes, then the reads users make, at several sizes.

A scripted engine writes distinct English-like traces (sentences drawn from a large pool: a median near 12 KB, a
tail to 60 KB) and a scripted verifier accepts one candidate of three; everything else is `factory`'s own path:
the verification workers work out what passed for the gate (decontamination against the benchmark registry, the
MinHash signature), `sampler.sample` builds the rows, the gate looks the signatures up in the response-dedup index,
`StoreWriter.commit` writes each batch (`--filters` also runs every CPU filter, readability and language, in the
workers on every candidate). The prompts
are made as the sampler reads them (`Problems`), not held in a list. The load
grows in segments up to each N of `--examples`; after each, the writer pauses and the reads run in their own
processes: counts by source and reason, length percentiles, pass rates per prompt, `factory stats`, `factory export`
to Parquet, `factory report`. During the last segment a `factory stats` runs beside the writer (a live read).

Printed per N: the load's wall time, the scripted engine's share (making traces) and how long the engine waited for
the store (the store's work runs in a thread beside the engine: this is what is left on the engine's critical path),
the store-side work (building rows, response dedup, commit) and its rate, the writer's RSS now and at peak, the
store's size (file and WAL) against its own tables written as zstd Parquet, and each read's time and peak RSS.

    python benchmarks/store_scale.py --examples 10000,30000,100000
    python benchmarks/store_scale.py --examples 600000 --filters
"""

from __future__ import annotations

import argparse
import itertools
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import table  # noqa: E402
from factory import batches  # noqa: E402
from factory import recipe as recipes  # noqa: E402
from factory.engines import Completion  # noqa: E402
from factory.run import make_pool  # noqa: E402
from factory.sampler import Job, sample  # noqa: E402
from factory.sources import make  # noqa: E402
from factory.stages import Gate  # noqa: E402
from factory.store import StoreWriter  # noqa: E402
from filters.base import Verdict, reject  # noqa: E402

RECIPE = """name: store_scale
model: scripted
engine: {kind: vllm}
prompt: {think: true}
rejection: {accept_per_prompt: 1, max_samples: 3, round_size: 3, batch_prompts: 256}
dedup: {field: response}
filters: [format, verify, dedup]
"""
QUERIES = {
    "counts by source and reason": "SELECT p.source, c.reason, count(*) FROM candidates c JOIN prompts p USING"
    " (prompt_id) GROUP BY ALL",
    "length percentiles": "SELECT quantile_cont(n_tokens, [0.5, 0.9, 0.99]) FROM candidates",
    "pass rate per prompt": "SELECT prompt_id, avg(accepted::INT) FROM candidates GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
}


class Traces:
    """Distinct English-like texts: sentences drawn from a pool big enough that two traces share few 3-grams."""

    def __init__(self, seed: int = 0, pool: int = 200_000):
        rng = random.Random(seed)
        letters = "etaoinshrdlucmfwypvbgkjqxz"
        words = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(20_000)]
        cum = list(itertools.accumulate(1 / (i + 1) for i in range(len(words))))  # Zipf-like, as in English
        self.sentences = []
        for _ in range(pool):
            s = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(6, 24)))  # as `weights`, summed once
            self.sentences.append(s[0].upper() + s[1:] + ".")
        self.rng = rng

    def __call__(self) -> str:
        size = min(60_000, int(self.rng.lognormvariate(9.39, 0.55)))  # median e^9.39 = 12 KB, the tail cut at 60 KB
        out, n = [], 0
        while n < size:
            s = self.rng.choice(self.sentences)
            out.append(s)
            n += len(s) + 1
        return "<think>\n" + " ".join(out) + "\n</think>\nThe answer is 42."


class Problems(Sequence):
    """Problems `start` to `end`, each made when the sampler asks for it (it reads them twice, in order), so that the
    writer's memory is the store's side alone (`factory generate` holds its source's prompts in a list: ~0.7 KB
    each of these)."""

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        n = self.start + i
        return make(f"source{n % 7}", "math", f"Problem {n}: what is {n} + 1?", {"answer": str(n + 1)})


class ScriptedEngine:
    """Completions from `Traces`; the time spent making them is kept apart from the store's."""

    def __init__(self, traces: Traces):
        self.traces, self.seconds = traces, 0.0

    def generate(self, requests, sampling=None):
        t = time.perf_counter()
        out = [[self._one() for _ in range(r.n)] for r in requests]
        self.seconds += time.perf_counter() - t
        return out

    def _one(self) -> Completion:
        text = self.traces()
        return Completion(text, len(text) // 4, "stop", 64)

    def close(self) -> None:
        pass


class ScriptedVerifier:
    """One candidate of each prompt's three passes. The passes go to real verification workers, which do the gate's
    per-response work on them (decontamination, the MinHash signature) as in a run; with `filters`, every candidate
    also goes through the real CPU filters there (their cost counts; their verdict on made-up words does not)."""

    def __init__(self, pool, filters: bool = False):
        self.pool, self.filters = pool, filters

    def submit(self, jobs) -> Future:
        sent = [i for i in range(len(jobs)) if self.filters or i % 3 == 0]
        names = ["readability", "language"] if self.filters else []
        real = self.pool.submit([(jobs[i][0], names) for i in sent])
        done: Future = Future()

        def finish(f: Future) -> None:
            prep = {i: v.prep for i, v in zip(sent, f.result(), strict=True)}
            done.set_result([Verdict(True, None, {}, prep[i]) if i % 3 == 0 else reject("wrong_answer")
                             for i in range(len(jobs))])  # fmt: skip

        real.add_done_callback(finish)
        return done


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS:")


def peak_mb() -> float:
    """This process's own peak: VmHWM, which exec resets. getrusage's ru_maxrss keeps the forking parent's: run
    from a pytest worker that had grown to 2.8 GB, the writer "peaked" at 2,845 MB at 400 examples."""
    return _status_mb("VmHWM:")


WRAP = (
    "import atexit, runpy, sys\n"
    "def hwm():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            print('VmHWM', line.split()[1], file=sys.stderr)\n"
    "atexit.register(hwm)\n"
    "sys.argv = ['factory', *sys.argv[1:]]\n"
    "runpy.run_module('factory.cli', run_name='__main__')\n"
)


def child(args: list[str]) -> tuple[float, float]:
    """A `factory` command in its own process: seconds, and its peak RSS in MB (VmHWM, which exec resets, unlike
    getrusage's, which keeps the forking parent's)."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", WRAP, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"factory {' '.join(args)} failed (exit {p.returncode}): {p.stderr[-2000:]}")
    kb = [int(line.split()[1]) for line in p.stderr.splitlines() if line.startswith("VmHWM ")]
    return seconds, (kb[-1] / 1024 if kb else float("nan"))


def size_mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 2**20


PARQUET = """import duckdb, os, sys
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SET memory_limit = '4GB'")
con.execute("SET threads = 1")  # one row group of 12 KB texts in memory at a time
con.execute("SET enable_progress_bar = false")
con.execute("SET preserve_insertion_order = false")  # the rows as they are: nothing held back to keep their order
total = 0
for t in ("runs", "prompts", "candidate_rows", "examples", "prompt_drops", "dedup"):
    out = os.path.join(sys.argv[2], t + ".parquet")
    con.execute(f"COPY {t} TO '{out}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 8192)")
    total += os.path.getsize(out)
    os.unlink(out)
print(total)
"""


def parquet_mb(db: Path, work: Path) -> float:
    """The store's tables as zstd Parquet (in another process, so its memory is not the writer's): what the same
    content takes in a compact columnar file."""
    out = subprocess.run([sys.executable, "-c", PARQUET, str(db), str(work)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"writing Parquet failed: {out.stderr[-2000:]}", file=sys.stderr)
        return float("nan")
    return int(out.stdout.split()[-1]) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", default="10000,30000,100000", help="store sizes (accepted examples) to measure at")
    ap.add_argument("--filters", action="store_true", help="run the CPU filters on every candidate too")
    ap.add_argument("--workdir", type=Path, help="keep the store here (default: a temporary folder)")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.examples.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        run(sizes, work, args.filters)


def run(sizes: list[int], work: Path, filters: bool) -> None:
    (work / "recipe.yaml").write_text(RECIPE)
    r = recipes.load(work / "recipe.yaml", needs_source=False)
    with make_pool(r, Gate(r)) as pool:
        pool.wait_ready()
        load(sizes, work, r, ScriptedVerifier(pool, filters))


def load(sizes: list[int], work: Path, r: recipes.Recipe, verifier: ScriptedVerifier) -> None:
    db = work / "store.duckdb"
    db.unlink(missing_ok=True)
    engine = ScriptedEngine(Traces())
    rows, reads = [], {}
    made, seconds, wall = 0, 0.0, 0.0
    busy = Busy()
    store = StoreWriter(db)
    run_id = Job(r, [], store, None).begin(engine="scripted")
    store.close()
    for n in sizes:
        prompts = Problems(made, n)
        store = StoreWriter(db)
        gate = Gate(r, store)
        live = Live(db, len(prompts) // 2) if n == sizes[-1] else None
        t, b0 = time.perf_counter(), busy.seconds
        sample(Job(r, prompts, store, run_id, gate=gate), engine, verifier, progress=live)
        store.close()
        took = time.perf_counter() - t
        wall += took
        seconds += busy.seconds - b0
        on_disk = size_mb(db, db.with_name(db.name + ".wal"))
        rows.append({"n": n, "wall": wall, "engine": engine.seconds, "seconds": seconds,
                     "waited": wall - engine.seconds, "rate": (n - made) / (busy.seconds - b0), "rss": rss_mb(),
                     "peak": peak_mb(), "store": on_disk, "parquet": parquet_mb(db, work)})  # fmt: skip
        made = n
        reads["python and factory's imports (baseline)", n] = child(["--help"])
        for name, sql in QUERIES.items():
            reads[name, n] = child(["query", sql, "--db", str(db), "--format", "csv"])
        reads["factory stats", n] = child(["stats", "--db", str(db)])
        reads["factory export (Parquet)", n] = child(["export", "--db", str(db), "--out", str(work / "x.parquet")])
        reads["factory report", n] = child(["report", "--db", str(db), "--out", str(work / "r.html")])
        if live is not None:
            live.join()
            reads["factory stats, live", n] = live.result
        for f in work.glob("x*.parquet"):
            f.unlink()
        print(f"{n:,} examples: {seconds:.0f} s store-side", file=sys.stderr, flush=True)
        print(report(rows, reads), file=sys.stderr, flush=True)  # so far: a later size that fails loses nothing
    print(report(rows, reads))


def report(rows: list[dict], reads: dict) -> str:
    head = ["examples", *(f"{x['n']:,}" for x in rows)]
    lines = [
        ["load, wall seconds, cumulative", *(round(x["wall"]) for x in rows)],
        ["  of which the scripted engine (making traces)", *(round(x["engine"]) for x in rows)],
        ["  of which the engine waited for the store", *(round(x["waited"]) for x in rows)],
        ["store-side work (rows, dedup, commit), s", *(round(x["seconds"]) for x in rows)],
        ["store-side examples/s over the segment", *(round(x["rate"]) for x in rows)],
        ["writer RSS now / peak, MB", *(f"{x['rss']:,.0f} / {x['peak']:,.0f}" for x in rows)],
        ["store file + WAL, MB", *(f"{x['store']:,.0f}" for x in rows)],
        ["its tables as zstd Parquet, MB", *(f"{x['parquet']:,.0f}" for x in rows)],
        ["store / Parquet", *(f"{x['store'] / x['parquet']:.2f}x" for x in rows)],
    ]
    for name in dict.fromkeys(k for k, _ in reads):
        lines.append([f"{name}: s / peak MB", *(_read(reads.get((name, x["n"])), x) for x in rows)])
    return table(head, lines)


def _read(value, row) -> str:
    return "-" if value is None else f"{value[0]:.1f} / {value[1]:,.0f}"


class Busy:
    """Seconds spent judging-merging, deduplicating and committing batches (`batches.commit`), wherever it runs."""

    def __init__(self):
        self.seconds = 0.0
        inner = batches.commit

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t

        batches.commit = timed


class Live(threading.Thread):
    """`factory stats` on the store while the writer runs: started once half the segment's prompts are done."""

    def __init__(self, db: Path, at: int):
        super().__init__(daemon=True)
        self.db, self.at, self.result, self.failed, self.begun = db, at, None, None, False

    def __call__(self, tally) -> None:  # the sampler's progress callback
        if tally.prompts_done >= self.at and not self.begun:
            self.begun = True
            self.start()

    def run(self) -> None:
        try:
            self.result = child(["stats", "--db", str(self.db)])
        except SystemExit as e:  # said when the segment ends, not lost with this thread
            self.failed = str(e)

    def join(self, timeout=None) -> None:
        if self.begun:
            super().join(timeout)
        if self.failed:
            raise SystemExit(f"the live read failed: {self.failed}")


if __name__ == "__main__":
    main()
