"""Where the near-duplicate index keeps its texts: recent ones in memory, the rest in files, so that the memory of a
writer that deduplicates does not grow with the texts it has kept (a Python index took 2.6 KB a text, measured).

A kept text is a row: its key, its signature (the bands' values) and an entry (hash, row) for each LSH band and one
for its key. Entries of recent rows are sorted arrays in memory; past FLUSH_AT entries they are written to a file as
one sorted run, of which only a Bloom filter (BITS bits an entry) and every BLOCK-th hash stay in memory: ~66 bytes
a text of 25 bands. A lookup reads a block of a run only where its filter says the hash may be there (a true match,
or 2 in a thousand of the rest), so most lookups read no file. The keys and signatures of written rows are read
back one by one, for a band's candidate or a key seen before.

The files are a cache of the store's `dedup` rows (`Deduper.load` rebuilds the index from them), in a folder of
their own that goes with the index (or, after a crash, with the next index made beside it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import xxhash

FLUSH_AT = 1 << 20  # entries in memory before they go to a run: 12 MB, about 40k texts
BLOCK = 256  # entries between two hashes kept in memory: a lookup reads 3 KB
BITS = 20  # Bloom filter bits an entry, in one 64-bit word a hash (8 of its bits set): 0.2% of misses pass (16: 0.46%)
ENTRY = np.dtype([("h", "<u8"), ("r", "<u4")])
PREFIX = ".factory-dedup-"  # the folder: PREFIX + pid + "-" + random
_U = np.uint64


def key_hashes(keys: list[str]) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(k.encode(), seed=0x6B6579) for k in keys), np.uint64, len(keys))


class Run:
    """A sorted run of entries in the bands file: where it starts, its filter and every BLOCK-th hash."""

    def __init__(self, start: int, entries: np.ndarray):
        self.start, self.n = start, len(entries)
        self.fences = entries["h"][::BLOCK].copy()
        self.words = np.zeros(max(1, -(-self.n * BITS // 64)), np.uint64)
        np.bitwise_or.at(self.words, entries["h"] % _U(len(self.words)), _bloom_bits(entries["h"]))

    def maybe(self, q: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Which of the hashes `q` may be in the run (no false negatives)."""
        return (self.words[q % _U(len(self.words))] & bits) == bits

    def rows(self, fd: int, h: int) -> list[int]:
        """The rows of the run's entries with hash `h`, read block by block from its last fence below it."""
        block = max(0, int(np.searchsorted(self.fences, _U(h), "left")) - 1)
        out = []
        while block * BLOCK < self.n:
            size = min(BLOCK, self.n - block * BLOCK)
            got = np.frombuffer(os.pread(fd, size * ENTRY.itemsize, self.start + block * BLOCK * ENTRY.itemsize), ENTRY)
            out += got["r"][got["h"] == h].tolist()
            if got["h"][-1] > h:
                break
            block += 1
        return out


class Index:
    """Rows of kept texts: `add` them, `find` keys, `near` their band hashes, read `signatures` and `key`s back."""

    def __init__(self, width: int, folder: Path | None = None, flush_at: int = FLUSH_AT):
        self.width, self.folder, self.flush_at = width, folder, flush_at
        self.n = self.written = 0  # rows, and rows whose key and signature are in the files
        self.keys: list[str] = []  # of rows written..n
        self.sigs = np.empty((0, width), np.uint32)  # of rows written..n, grown by doubling
        self.h, self.r = np.empty(0, np.uint64), np.empty(0, np.uint32)  # entries in memory, sorted by hash
        self.runs: list[Run] = []
        self.dir: Path | None = None

    def __len__(self) -> int:
        return self.n

    def add(self, keys: list[str], sigs: np.ndarray, bands: np.ndarray) -> None:
        """Index texts: their keys, signatures (at least `width` values) and band hashes, one row each."""
        if not keys:
            return
        rows = np.arange(self.n, self.n + len(keys), dtype=np.uint32)
        h = np.concatenate([bands.ravel(), key_hashes(keys)])
        r = np.concatenate([np.repeat(rows, bands.shape[1]), rows])
        order = np.argsort(h, kind="stable")
        at = np.searchsorted(self.h, h[order], "right")
        self.h, self.r = np.insert(self.h, at, h[order]), np.insert(self.r, at, r[order])
        held = self.n - self.written
        if held + len(keys) > len(self.sigs):
            grown = np.empty((max(2 * len(self.sigs), held + len(keys), 1024), self.width), np.uint32)
            grown[:held] = self.sigs[:held]
            self.sigs = grown
        self.sigs[held : held + len(keys)] = sigs[:, : self.width]
        self.keys += keys
        self.n += len(keys)
        if len(self.h) >= self.flush_at:
            self._flush()

    def find(self, keys: list[str]) -> list[int | None]:
        """The row of each key, None where it is not indexed."""
        out: list[int | None] = [None] * len(keys)
        for i, row in self._lookup(key_hashes(keys)):
            if out[i] is None and self.key(row) == keys[i]:
                out[i] = row
        return out

    def near(self, bands: np.ndarray) -> list[set[int]]:
        """For each text's band hashes (a row of `bands`), the rows that share one of them."""
        out: list[set[int]] = [set() for _ in range(len(bands))]
        for i, row in self._lookup(bands.ravel()):
            out[i // bands.shape[1]].add(row)
        return out

    def signatures(self, rows: list[int]) -> np.ndarray:
        out = np.empty((len(rows), self.width), np.uint32)
        size = self.width * 4
        for j, row in enumerate(rows):
            if row >= self.written:
                out[j] = self.sigs[row - self.written]
            else:
                out[j] = np.frombuffer(os.pread(self._fds["sigs"], size, row * size), np.uint32)
        return out

    def key(self, row: int) -> str:
        if row >= self.written:
            return self.keys[row - self.written]
        at = max(row - 1, 0)  # the keys file holds them end to end; the ends file, where each ends
        ends = np.frombuffer(os.pread(self._fds["ends"], 8 * (row - at + 1), at * 8), np.uint64).tolist()
        start, end = ends if row else (0, ends[0])
        return os.pread(self._fds["keys"], end - start, start).decode()

    def _lookup(self, q: np.ndarray) -> list[tuple[int, int]]:
        """(index in q, row) of every entry whose hash is q[index]: in memory, then in the runs that may hold it."""
        order = np.argsort(q)  # sorted, the searches walk the array in order: 7x faster than at random, measured
        lo, hi = np.searchsorted(self.h, q[order], "left"), np.searchsorted(self.h, q[order], "right")
        out = [(int(order[i]), row) for i in np.flatnonzero(hi > lo).tolist() for row in self.r[lo[i] : hi[i]].tolist()]
        if self.runs:
            bits = _bloom_bits(q)
            for run in self.runs:
                for i in np.flatnonzero(run.maybe(q, bits)).tolist():
                    out += [(i, row) for row in run.rows(self._fds["bands"], int(q[i]))]
        return out

    def _flush(self) -> None:
        """Write the rows held in memory (keys, signatures) and their entries (one sorted run) to the files."""
        if self.dir is None:
            self._open()
        fds, held = self._fds, self.n - self.written
        blob = "".join(self.keys).encode()
        lengths = np.fromiter((len(k.encode()) for k in self.keys), np.uint64, held)
        ends = self.key_bytes + np.cumsum(lengths, dtype=np.uint64)
        os.pwrite(fds["keys"], blob, self.key_bytes)
        os.pwrite(fds["ends"], ends.tobytes(), self.written * 8)
        os.pwrite(fds["sigs"], self.sigs[:held].tobytes(), self.written * self.width * 4)
        entries = np.empty(len(self.h), ENTRY)
        entries["h"], entries["r"] = self.h, self.r
        start = sum(run.n for run in self.runs) * ENTRY.itemsize
        os.pwrite(fds["bands"], entries.tobytes(), start)
        self.runs.append(Run(start, entries))
        self.key_bytes += len(blob)
        self.written = self.n
        self.keys, self.sigs = [], np.empty((0, self.width), np.uint32)
        self.h, self.r = np.empty(0, np.uint64), np.empty(0, np.uint32)

    def _open(self) -> None:
        folder = Path(self.folder or tempfile.gettempdir())
        _remove_stale(folder)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=folder))
        self._fds = {
            name: os.open(self.dir / name, os.O_RDWR | os.O_CREAT, 0o600) for name in ("keys", "ends", "sigs", "bands")
        }
        self.key_bytes = 0
        weakref.finalize(self, _close, list(self._fds.values()), self.dir)


def _bloom_bits(h: np.ndarray) -> np.ndarray:
    """The filter bits of each hash in its word: 8 positions from 6-bit fields of its top 48 bits (the word comes
    from the hash modulo the word count, its low bits)."""
    bits = np.zeros(len(h), np.uint64)
    for j in range(8):
        bits |= _U(1) << ((h >> _U(16 + 6 * j)) & _U(63))
    return bits


def _close(fds: list[int], folder: Path) -> None:
    for fd in fds:
        os.close(fd)
    shutil.rmtree(folder, ignore_errors=True)


def _remove_stale(folder: Path) -> None:
    """Folders that an index of a process no longer running left behind (it was killed)."""
    for d in folder.glob(PREFIX + "*"):
        pid = d.name[len(PREFIX) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
