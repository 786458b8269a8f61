"""The store's parts that speak no SQL: the files beside a store that let a writer and readers share it, the spool,
the writer's hashes of every key, and how an example holds its candidate's text.

Beside `data/factory.duckdb`: `.lock` (the writer's pid, under an exclusive lock), `.readers/` (one request file per
reader waiting for the writer to let go), `.hold` (locked by whoever has the file open: the writer alone, or readers),
`.spool/` (batches committed while a reader held the file), `.progress.json` (the running job's counters).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather


def beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


# readers ask, the writer lets go
def asking(path: Path, open_: Callable):
    """`open_()` with a request on file, so that the store's writer lets go of it; withdrawn once open."""
    ask = beside(path, ".readers") / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        ask.parent.mkdir(exist_ok=True)
        ask.touch()
    except OSError:  # a store on a read-only disk: no writer to ask
        return open_()
    try:
        return open_()
    finally:
        ask.unlink(missing_ok=True)


def asked(path: Path) -> bool:
    """Whether a live reader asks for the store; a request left by a reader that died is cleared."""
    try:
        asks = list(beside(path, ".readers").iterdir())
    except OSError:
        return False
    for ask in asks:
        if alive(ask.name.split("-")[0]):
            return True
        ask.unlink(missing_ok=True)
    return False


def alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def drained(path: Path, wait: float) -> None:
    """Wait up to `wait` seconds while a live writer has batches spooled: it commits them as soon as no reader has the
    file (and lets go again, as a reader asks), so a reader sees them, and readers one after another cannot keep them
    out of the file."""
    deadline = time.monotonic() + wait
    while beside(path, ".spool").exists() and writer(path) and time.monotonic() < deadline:
        time.sleep(0.01)


class Held(Exception):
    """The other side has the store's file open: readers while the writer wants it, the writer while a reader does."""


def hold(path: Path, shared: bool = False):
    """Lock `STORE.hold` before opening the file, and keep it until the file is closed: exclusive for the writer,
    shared for a reader; raises `Held` when the other side has it. DuckDB's own lock on the file comes too late for a
    reader: DuckDB reads the file's header before it locks the file (2.0 reads it with the magic bytes), so a writer
    that checkpoints and lets go in between leaves the reader with the header of before that checkpoint, whose blocks
    the checkpoint has truncated or reused (`Could not read enough bytes`). None when there is no file to lock and
    none can be made (a store on a read-only disk: no writer)."""
    try:
        fd = os.open(beside(path, ".hold"), os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError:
        return None
    f = os.fdopen(fd, "rb")
    try:
        fcntl.flock(f, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise Held(f"{path} is open in another process") from None
    return f


def let_go(held) -> None:
    """Unlock what `hold` locked, once the file is closed."""
    if held is not None:
        held.close()


def writer(path: Path) -> int | None:
    """The process id of a live writer of this store, if one runs."""
    try:
        pid = beside(path, ".lock").read_text().strip()
    except OSError:
        return None
    return int(pid) if pid and alive(pid) else None


# the spool: batches committed while a reader held the file
def spool(folder: Path, tables: dict[str, pa.Table]) -> None:
    """Write a batch's tables as the next numbered folder, whole or not at all, synced to disk."""
    folder.mkdir(exist_ok=True)
    done = sorted(int(d.name) for d in folder.iterdir() if d.name.isdigit())
    out = folder / f"{(done[-1] + 1 if done else 0):09d}"
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, t in tables.items():
        feather.write_feather(t, tmp / f"{name}.arrow", compression="lz4")
        with open(tmp / f"{name}.arrow", "rb+") as f:
            os.fsync(f.fileno())
    os.rename(tmp, out)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spooled(folder: Path) -> Iterator[tuple[Path, dict[str, pa.Table]]]:
    """The spooled batches, oldest first; the caller deletes each folder once its batch is committed."""
    if folder.exists():
        for d in sorted(d for d in folder.iterdir() if d.name.isdigit()):
            yield d, {f.stem: feather.read_table(f) for f in d.glob("*.arrow")}


# keys
class Seen:
    """The 64-bit hashes of a table's keys, sorted: a key whose hash is absent is new for sure, so only the few whose
    hash is present are looked up in the table (a hash collision costs a lookup, never a wrong answer)."""

    def __init__(self, hashes: np.ndarray):
        self.h = np.sort(hashes.astype(np.uint64))

    def maybe(self, hashes: np.ndarray) -> np.ndarray:
        if not len(self.h):
            return np.zeros(len(hashes), bool)
        at = np.minimum(np.searchsorted(self.h, hashes), len(self.h) - 1)
        return self.h[at] == hashes

    def add(self, hashes: np.ndarray) -> None:
        new = np.sort(hashes.astype(np.uint64))
        self.h = np.insert(self.h, np.searchsorted(self.h, new), new)


# an accepted text stored once
def held_by_example(text: str, reply: str) -> dict | None:
    """How `text` is rebuilt from an example's reply (`sampler.assistant_text`: stripped, maybe `<think>` put back
    in front), or None when it cannot be and the candidate keeps its own copy."""
    core = text.strip()
    cut = len(reply) - len(core)
    if cut < 0 or reply[cut:] != core:
        return None
    head = text[: len(text) - len(text.lstrip())]
    tail = text[len(text.rstrip()) :] if core else ""  # all whitespace: the head holds it all
    return {"head": head, "cut": cut, "tail": tail} if head + reply[cut:] + tail == text else None


def held(candidates: list[dict], examples: list[dict]) -> list[dict]:
    """Candidate rows as stored: the text of one an example holds is left out, with how to rebuild it."""
    replies = {e["candidate_id"]: e["messages"][-1]["content"] for e in examples}
    out = []
    for c in candidates:
        edit = held_by_example(c["text"], replies[c["candidate_id"]]) if c["candidate_id"] in replies else None
        out.append(c | {"text": None, "text_edit": edit} if edit else c | {"text_edit": None})
    return out
