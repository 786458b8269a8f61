"""Reading a store while `factory generate` writes it.

DuckDB lets one process open a file for writing and then no other process may open it, not even to read. So a
reader that finds the store locked reads a private copy instead: the file and its write-ahead log are copied, and
the copy is used only if neither changed while it was taken (size and mtime before and after), so both belong to
the same instant. DuckDB recovers a file and WAL caught at any instant (it survives kill -9 there too): a commit
that was half-written is dropped by the WAL's checksums, and the copy holds every batch committed before it.
The writer's progress snapshot (`Store.publish`) says how far the running job is.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from factory.errors import FactoryError
from factory.store import Store, StoreBusy

TRIES = 50  # a commit takes milliseconds and comes every few seconds: a quiet moment comes quickly


@contextmanager
def reading(path: str | Path) -> Iterator[tuple[Store, str | None]]:
    """The store read-only, or a consistent copy of it when a writer holds it; and a note saying which."""
    path = Path(path)
    try:
        store = Store(path, read_only=True)
    except StoreBusy:
        with tempfile.TemporaryDirectory(prefix="factory-live-") as tmp:
            store = _open_copy(path, Path(tmp))
            try:
                yield store, note(path)
            finally:
                store.close()
        return
    try:
        yield store, None
    finally:
        store.close()


def _stamp(files: list[Path]) -> list[tuple[int, int] | None]:
    """Size and mtime of each file, None for one that is absent (the writer deletes its WAL at each checkpoint)."""
    out = []
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_size, st.st_mtime_ns))
    return out


def _copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        shutil.copyfile(src, dst)
    except FileNotFoundError:
        dst.unlink(missing_ok=True)  # gone between the stamp and the copy: the stamps differ and it is taken again


def _open_copy(path: Path, tmp: Path) -> Store:
    files = [path, path.with_name(path.name + ".wal")]
    for attempt in range(TRIES):
        before = _stamp(files)
        for f in files:
            _copy(f, tmp / f.name)
        if _stamp(files) == before:
            try:
                return Store(tmp / path.name)  # not read-only: opening replays the copied WAL into the copy
            except FactoryError:
                pass  # caught mid-write after all: take it again
        time.sleep(min(0.02 * (attempt + 1), 0.5))
    raise StoreBusy(
        f"the store {path} is being written by a running `factory generate` and changed during every one of"
        f" {TRIES} copies; its progress is in {Store.snapshot_for(path)}, or run this again when the job ends"
    )


def snapshot(path: Path) -> dict | None:
    """The running job's last published counters, if it published any."""
    try:
        return json.loads(Store.snapshot_for(path).read_text())
    except (OSError, ValueError):
        return None


def note(path: Path) -> str:
    """What a reader of a copy should know: when it was taken, and where the running job stands."""
    s = snapshot(path)
    head = f"{path} is open in a running `factory generate`: reading a copy taken at {datetime.now():%H:%M:%S}"
    if not s:
        return head + " (no progress published yet)"
    rate = s.get("new_tokens", 0) / s["seconds"] if s.get("seconds") else 0
    return (
        f"{head}; run {s.get('run_id')}: {s.get('prompts_done')}/{s.get('prompts')} prompts done, "
        f"{s.get('candidates')} candidates, {s.get('examples')} examples, {rate:,.0f} tok/s (as of {s.get('at')})"
    )
