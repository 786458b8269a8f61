"""Reading a store while `factory generate` writes it.

A reader opens the store itself, read-only, with nothing copied: it leaves a request beside the store, and the
writer (`StoreWriter`) checkpoints and lets go of the file at once when idle, or after the commit it is in. The reader
then sees every batch committed before it opened; the writer spools what it commits while the reader holds the file
and commits it afterwards. So a read costs the same whether a run is writing or not. The writer's progress snapshot
(`StoreWriter.post_progress`) says how far the running job is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from factory.store import StoreReader, snapshot_for, writer_pid


@contextmanager
def reading(path: str | Path) -> Iterator[tuple[StoreReader, str | None]]:
    """The store read-only, and a note saying how far the run writing it is (None when no run writes it)."""
    path = Path(path)
    store = StoreReader(path)
    try:
        yield store, note(path) if writer_pid(path) else None
    finally:
        store.close()


def snapshot(path: Path) -> dict | None:
    """The running job's last posted counters, if it posted any."""
    try:
        return json.loads(snapshot_for(path).read_text())
    except (OSError, ValueError):
        return None


def note(path: Path) -> str:
    """What a reader of a store being written should know: as of when, and where the running job stands."""
    s = snapshot(path)
    head = f"{path} is open in a running `factory generate`: read as of its last commit, at {datetime.now():%H:%M:%S}"
    if not s:
        return head + " (no progress posted yet)"
    rate = s.get("new_tokens", 0) / s["seconds"] if s.get("seconds") else 0
    return (
        f"{head}; run {s.get('run_id')}: {s.get('prompts_done')}/{s.get('prompts')} prompts done, "
        f"{s.get('candidates')} candidates, {s.get('examples')} examples, {rate:,.0f} tok/s (as of {s.get('at')})"
    )
