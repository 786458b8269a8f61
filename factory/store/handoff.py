"""Who has the store's file: the writer's lock, readers' requests, and the handoff of the file between them.

A writer keeps the file until a reader asks for it. A reader leaves a request beside the store, and the writer
checkpoints and lets go of the file within a moment (at once when idle, after its current commit otherwise), and keeps
off it until the reader has closed it (`hold`, taken before DuckDB reads the file's header). A commit that then finds
a reader holding the file is spooled (Arrow files beside the store, written atomically) and committed before the next
one: the writer never waits for a reader, and a spooled batch survives a crash like a committed one.

Beside `data/factory.duckdb`: `.lock` (the writer's pid, under an exclusive lock), `.readers/` (one request file per
reader waiting for the writer to let go), `.hold` (locked by whoever has the file open: the writer alone, or readers),
`.spool/` (batches committed while a reader held the file), `.progress.json` (the running job's counters).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.feather as feather

from factory.errors import FactoryError
from factory.store.schema import ROW_GROUP, sql_path

DEFAULT_DB = "data/factory.duckdb"
MEMORY_LIMIT = os.environ.get("FACTORY_STORE_MEMORY", "1GB")  # DuckDB's share of a reader's memory
# ... and of the writer's: it appends, so what it caches is blocks it wrote, which it seldom reads again; 1 GB let its
# cache grow with the store (writer peak 936 MB at 100k examples, 1,373 MB at 600k; docs/benchmarks.md)
WRITER_MEMORY = os.environ.get("FACTORY_STORE_WRITER_MEMORY", "256MB")
READ_WAIT = 120.0  # seconds a reader waits for the writer to let go of the file
SPOOL_WAIT = 2.0  # seconds a reader waits for a live writer to commit what it spooled (see `drained`)


class StoreBusy(FactoryError):
    """The store is held by another process: a second writer, or a reader or writer that did not let go in time."""


class Held(Exception):
    """The other side has the store's file open: readers while the writer wants it, the writer while a reader does."""


def beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def snapshot_for(path: Path) -> Path:
    """Where the writer posts the running job's counters, for readers."""
    return beside(Path(path), ".progress.json")


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
    while beside(path, ".spool").exists() and writer_pid(path) and time.monotonic() < deadline:
        time.sleep(0.01)


# who has the file open
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


def writer_pid(path: Path) -> int | None:
    """The process id of a live writer of this store, if one runs."""
    try:
        pid = beside(path, ".lock").read_text().strip()
    except OSError:
        return None
    return int(pid) if pid and alive(pid) else None


def _held(e: Exception) -> bool:
    """Whether opening the store failed because another process has it (ours, `Held`, or DuckDB's lock)."""
    return isinstance(e, Held) or "lock" in str(e).lower()


def retry(path: Path, open_: Callable, wait: float):
    """`open_()`, tried again while another process has the file, for up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return open_()
        except (Held, duckdb.IOException) as e:
            if not _held(e):
                raise FactoryError(f"cannot open the store {path}: {e}") from None
            if time.monotonic() >= deadline:
                raise StoreBusy(
                    f"the store {path} is held by another process (a running `factory generate` lets go of"
                    f" it when asked, so this is a long read, or a tool that is not factory). Try again, or read"
                    f" its progress in {snapshot_for(path)}"
                ) from None
            time.sleep(0.01)
        except duckdb.Error as e:  # not a DuckDB file (DuckDB reads some other files as an in-memory database)
            raise FactoryError(f"cannot open the store {path}: not a DuckDB database ({e})") from None


# the spool: batches committed while a reader held the file
def spool_batch(folder: Path, tables: dict[str, pa.Table]) -> None:
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


class ReaderFile:
    """A reader's side: the file opened read-only once the writer has let go of it (asked to), held until closed."""

    def __init__(self, path: Path, wait: float):
        self.path = path
        self._hold = None  # `hold`, shared: taken before DuckDB reads the file's header
        try:
            self._con = asking(path, lambda: self._open(wait))
        except BaseException:
            self._let_go()
            raise
        self._con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")

    def _open(self, wait: float) -> duckdb.DuckDBPyConnection:
        """The connection, once the writer has committed what it spooled."""
        drained(self.path, min(wait, SPOOL_WAIT))
        return retry(self.path, self._connect, wait)

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self._hold is None:  # first: DuckDB reads the file's header before it locks the file
            self._hold = hold(self.path, shared=True)
        return duckdb.connect(str(self.path), read_only=True)

    @contextmanager
    def use(self) -> Iterator[duckdb.DuckDBPyConnection]:
        yield self._con

    def close(self) -> None:
        self._con.close()
        self._let_go()  # after the file is closed

    def _let_go(self) -> None:
        let_go(self._hold)
        self._hold = None


def _lock_writer(path: Path):
    """Take the writer's lock (`STORE.lock`, holding its pid), or raise `StoreBusy` at once if another writer has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(beside(path, ".lock"), "a+")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StoreBusy(
            f"the store {path} is being written by another process (a running `factory generate`?)."
            f" Wait for it to end, or read its progress in {snapshot_for(path)}"
        ) from None
    lock.truncate(0)
    lock.write(str(os.getpid()))  # who writes: readers say so (`writer_pid`)
    lock.flush()
    return lock


def _memory(path: Path) -> duckdb.DuckDBPyConnection:
    """The writer's in-memory database, which attaches the store's file as `store` while no reader wants it."""
    mem = duckdb.connect()
    mem.execute(f"SET memory_limit = '{WRITER_MEMORY}'")
    mem.execute("SET checkpoint_threshold = '1TB'")  # the store decides when to checkpoint, never DuckDB
    mem.execute(f"SET temp_directory = '{sql_path(beside(path, '.tmp'))}'")  # what does not fit WRITER_MEMORY
    return mem


class WriterFile:
    """The writer's side: the file attached while no reader wants it. `on_attach(con)` runs each time it is attached
    (the writer commits its spool), `before_detach(con)` each time before it is let go (the writer checkpoints)."""

    def __init__(self, path: Path, on_attach: Callable, before_detach: Callable):
        self.path = path
        self.spool = beside(path, ".spool")
        self._on_attach, self._before_detach = on_attach, before_detach
        self._lock = _lock_writer(path)
        self._hold = None  # `hold`: locked while this process has the file attached
        self._con = None  # the connection while the file is attached
        self._mutex = threading.RLock()  # the commit thread, the main thread and the watcher share the connection
        self._stop = threading.Event()
        self._mem = _memory(path)

    def open(self, wait: float) -> duckdb.DuckDBPyConnection:
        """Attach the file, waiting up to `wait` seconds for readers to let go of it."""
        return retry(self.path, self._attach, wait)

    def watch(self) -> None:
        """From now on, commit what was spooled and let go of the file for readers, even between commits."""
        threading.Thread(target=self._watch, daemon=True, name="store-yield").start()

    def _watch(self) -> None:
        """Commit what was spooled as soon as no reader has the file, and let go of the file soon after a reader asks,
        even when no commit comes for a while."""
        while not self._stop.wait(0.05):
            waiting = self._con is None and self.spool.exists()
            wanted = self._con is not None and asked(self.path)
            if (waiting or wanted) and self._mutex.acquire(blocking=False):
                try:
                    if waiting and not self._stop.is_set():
                        self._try_attach()  # commits the spool, unless a reader has the file again
                    if self._con is not None and asked(self.path):
                        self.release()
                finally:
                    self._mutex.release()

    @contextmanager
    def use(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection for one step, the file attached again (waiting for readers) if it was let go."""
        with self._mutex:
            if self._con is None:
                retry(self.path, self._attach, READ_WAIT)
            yield self._con

    @contextmanager
    def attached(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """The connection for one commit, the file attached again if it was let go; None while a reader has it."""
        with self._mutex:
            yield self._con if self._try_attach() else None

    def _try_attach(self) -> bool:
        """Attach the file if it was let go; False while another process has it."""
        if self._con is None:
            try:
                self._attach()
            except (Held, duckdb.IOException) as e:
                if not _held(e):
                    raise FactoryError(f"cannot open the store {self.path}: {e}") from None
                return False
        return True

    def _attach(self) -> duckdb.DuckDBPyConnection:
        if self._hold is None:  # readers out (`Held` if one is in) until the file is let go again
            self._hold = hold(self.path)
        try:
            self._mem.execute(f"ATTACH '{sql_path(self.path)}' AS store (ROW_GROUP_SIZE {ROW_GROUP})")
        except BaseException:
            self._let_go()
            raise
        self._mem.execute("USE store")
        self._con = self._mem
        self._on_attach(self._con)
        return self._con

    def replace(self, fresh: Path) -> duckdb.DuckDBPyConnection:
        """Put the file `fresh` (a migration's) in the store's place, and attach it; readers stay out all along."""
        self._detach()
        beside(self.path, ".wal").unlink(missing_ok=True)  # the old file's, replayed already
        os.replace(fresh, self.path)
        return self._attach()

    def release(self) -> None:
        """Let go of the file (`before_detach` first), so readers can open it until the next commit."""
        if self._con is not None:
            self._before_detach(self._con)
            self._detach()
            self._let_go()

    def _detach(self) -> None:
        self._mem.execute("USE memory")
        self._mem.execute("DETACH store")
        self._con = None

    def _let_go(self) -> None:
        let_go(self._hold)
        self._hold = None

    def wal_bytes(self) -> int:
        try:
            return beside(self.path, ".wal").stat().st_size
        except FileNotFoundError:
            return 0

    def close(self, drain: bool = True) -> None:
        """Let go of the store; first commit what was spooled, if no reader holds the file for long (else the spool
        stays, and the next writer commits it)."""
        self._stop.set()
        try:
            with self._mutex:
                if drain and self.spool.exists():
                    with self.use():  # attaching commits what was spooled
                        pass
                self.release()
                self._mem.close()
        finally:
            self._let_go()
            if self._lock is not None:
                self._lock.truncate(0)  # no writer now
                self._lock.close()  # releases the writer's lock
                self._lock = None
