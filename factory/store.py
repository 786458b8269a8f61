"""The DuckDB store: the only module that speaks SQL.

Every batch (new prompts, its candidates, its examples) is written through Arrow in one transaction, so a run
killed at any point leaves whole batches only; a second write of the same sample fails loudly instead of
duplicating it (the store checks the keys itself: DuckDB's indexes live whole in memory and are rewritten at every
checkpoint, which a store of 600k examples cannot afford).

Sized for the mission's store (~600k examples, ~1.8M candidates of ~12 KB) on a small machine:
- an accepted text is stored once, in the example's messages; its candidate row keeps how to rebuild the raw text;
- the writer's memory is bounded (`MEMORY_LIMIT`), row groups are small (a checkpoint rewrites at most one partial
  row group, not one of 122,880 texts), and the store checkpoints between commits once the WAL passes
  `CHECKPOINT_BYTES`, never in the middle of one;
- readers (`factory stats`, `export`, `report`) open the store itself, with nothing copied: a reader leaves a request
  beside the store (`STORE.readers/`), and the writer checkpoints and lets go of the file within a moment (at once
  when idle, after its current commit otherwise), and keeps off it until the reader has closed it (`storefiles.hold`,
  taken before DuckDB reads the file's header). A commit that then finds a reader holding the file is spooled
  (Arrow files beside the store, written atomically) and committed before the next one: the writer never waits for
  a reader, and a spooled batch survives a crash like a committed one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from factory import storefiles as files
from factory.errors import FactoryError

DEFAULT_DB = "data/factory.duckdb"
MEMORY_LIMIT = os.environ.get("FACTORY_STORE_MEMORY", "1GB")  # DuckDB's share of the writer's and readers' memory
ROW_GROUP = 2048  # rows per row group: DuckDB's 122,880 would put 1.5 GB of traces in each
READ_WAIT = 120.0  # seconds a reader waits for the writer to let go of the file
SPOOL_WAIT = 2.0  # seconds a reader waits for a live writer to commit what it spooled (see `storefiles.drained`)
CHECKPOINT_BYTES = 256 * 2**20  # the WAL folded into the file past this size (DuckDB's own 16 MiB is one batch)

_CANDIDATE = pa.schema(
    [
        ("candidate_id", pa.string()),
        ("run_id", pa.string()),
        ("prompt_id", pa.string()),
        ("sample_index", pa.int32()),
        ("text", pa.string()),
        ("n_tokens", pa.int32()),
        ("n_prompt_tokens", pa.int32()),
        ("finish_reason", pa.string()),
        ("accepted", pa.bool_()),
        ("reason", pa.string()),
        ("scores", pa.string()),
        ("created_at", pa.timestamp("us")),
    ]
)
_EDIT = pa.struct([("head", pa.string()), ("cut", pa.int32()), ("tail", pa.string())])
_ROW = _CANDIDATE.append(pa.field("text_edit", _EDIT))  # a candidate as stored: see `storefiles.held_by_example`
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_EXAMPLE = pa.schema(
    [
        ("example_id", pa.string()),
        ("candidate_id", pa.string()),
        ("prompt_id", pa.string()),
        ("run_id", pa.string()),
        ("messages", _MESSAGES),
        ("task", pa.string()),
        ("source", pa.string()),
        ("n_tokens", pa.int32()),
        ("created_at", pa.timestamp("us")),
    ]
)
_DEDUP = pa.schema([("scope", pa.string()), ("key", pa.string()), ("signature", pa.binary())])
_DROP = pa.schema([(n, pa.string()) for n in ("run_id", "prompt_id", "reason", "scores")])
_CHECK = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("battery", pa.string()),
        ("weak_tests", pa.string()),
        ("passed", pa.string()),
        ("bad_reference", pa.bool_()),
        ("detail", pa.string()),
        ("checked_at", pa.timestamp("us")),
    ]
)
_PROMPT = pa.schema([(n, pa.string()) for n in ("prompt_id", "source", "task", "prompt", "reference", "metadata")])
# each table's unique key, kept by `_write`: DuckDB's own indexes cost memory and time that grow with the store
_KEYS = {"prompts": ["prompt_id"], "candidate_rows": ["candidate_id", "run_id, prompt_id, sample_index"],
         "examples": ["example_id", "candidate_id"], "dedup": ["scope, key"],
         "prompt_drops": ["run_id, prompt_id"], "prompt_checks": ["prompt_id, battery"]}  # fmt: skip


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """An Arrow table of row dicts, built a column at a time: `pa.Table.from_pylist` took 57 ms for 660 candidate
    rows (12 KB texts), this 3.4 ms."""
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}, schema=schema)


def _held(e: Exception) -> bool:
    """Whether opening the store failed because another process has it (ours, `files.Held`, or DuckDB's lock)."""
    return isinstance(e, files.Held) or "lock" in str(e).lower()


def candidate_id(run_id: str, prompt_id: str, sample_index: int) -> str:
    return hashlib.sha256(f"{run_id}/{prompt_id}/{sample_index}".encode()).hexdigest()[:20]


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Batch:
    """What one commit writes: rows as dicts keyed by column name."""

    prompts: list[dict]
    candidates: list[dict]
    examples: list[dict]
    dedup: list[dict] = field(default_factory=list)  # signatures of newly kept texts
    prompt_drops: list[dict] = field(default_factory=list)
    prompt_checks: list[dict] = field(default_factory=list)  # code prompts' tests against trivial programs


class StoreBusy(FactoryError):
    """The store is held by another process: a second writer, or a reader or writer that did not let go in time."""


class Store:
    """The store at `path`. A writer keeps the file until a reader asks for it (see the module's note); a reader
    asks, and waits up to `wait` seconds for the writer to let go."""

    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False, wait: float = READ_WAIT):
        self.path = Path(path)
        self.read_only = read_only
        self._con = None
        self._lock = None
        self._hold = None  # `storefiles.hold`: locked while this process has the file open
        if read_only:
            if not self.path.exists():
                raise FactoryError(f"no store at {self.path}; run `factory generate RECIPE --db {self.path}` first")
            try:
                self._con = files.asking(self.path, lambda: self._open(wait))
            except BaseException:
                self._let_go()
                raise
            self._con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            if not self._has("runs"):
                self.close()
                raise FactoryError(f"{self.path} is a DuckDB file but not a factory store (it has no `runs` table)")
            if not self._has("candidate_rows"):  # a schema 1 store, read as it is
                self._con.execute("CREATE TEMP VIEW candidate_rows AS SELECT *, NULL AS text_edit FROM candidates")
            if not self._has("prompt_checks"):  # before schema 4: no prompt checked
                self._con.execute(_NO_CHECKS)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.lock_for(self.path), "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StoreBusy(
                f"the store {self.path} is being written by another process (a running `factory generate`?)."
                f" Wait for it to end, or read its progress in {self.snapshot_path}"
            ) from None
        self._lock.truncate(0)
        self._lock.write(str(os.getpid()))  # who writes: readers say so (`live.writer`)
        self._lock.flush()
        self._seen: dict[tuple[str, str], files.Seen] = {}  # the keys' hashes, by table and key (`_unique`)
        self._mutex = threading.RLock()  # the commit thread, the main thread and the watcher share the connection
        self._stop = threading.Event()
        self._mem = duckdb.connect()
        self._mem.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        self._mem.execute("SET checkpoint_threshold = '1TB'")  # the store decides when to checkpoint, never DuckDB
        spill = str(files.beside(self.path, ".tmp")).replace("'", "''")
        self._mem.execute(f"SET temp_directory = '{spill}'")  # what does not fit MEMORY_LIMIT, beside the store
        try:
            self._retry(self._attach, wait)
            if self._has("candidates") and not self._has("candidate_rows"):
                self._migrate()
            self._con.execute(resources.files("factory").joinpath("schema.sql").read_text())
            self._drain()
            self._checkpoint()
        except BaseException:
            self.close(drain=False)
            raise
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="store-yield")
        self._watcher.start()

    # who holds the file
    def _retry(self, open_, wait: float):
        deadline = time.monotonic() + wait
        while True:
            try:
                return open_()
            except (files.Held, duckdb.IOException) as e:
                if not _held(e):
                    raise FactoryError(f"cannot open the store {self.path}: {e}") from None
                if time.monotonic() >= deadline:
                    raise StoreBusy(
                        f"the store {self.path} is held by another process (a running `factory generate` lets go of"
                        f" it when asked, so this is a long read, or a tool that is not factory). Try again, or read"
                        f" its progress in {self.snapshot_path}"
                    ) from None
                time.sleep(0.01)
            except duckdb.Error as e:  # not a DuckDB file (DuckDB reads some other files as an in-memory database)
                raise FactoryError(f"cannot open the store {self.path}: not a DuckDB database ({e})") from None

    def _open(self, wait: float):
        """A reader's connection, once the writer has committed what it spooled."""
        files.drained(self.path, min(wait, SPOOL_WAIT))
        return self._retry(self._connect, wait)

    def _connect(self):
        if self._hold is None:  # first: DuckDB reads the file's header before it locks the file
            self._hold = files.hold(self.path, shared=True)
        return duckdb.connect(str(self.path), read_only=True)

    def _watch(self) -> None:
        """Commit what was spooled as soon as no reader has the file, and let go of the file soon after a reader asks,
        even when no commit comes for a while."""
        while not self._stop.wait(0.05):
            spooled = self._con is None and self.spool.exists()
            asked = self._con is not None and files.asked(self.path)
            if (spooled or asked) and self._mutex.acquire(blocking=False):
                try:
                    if spooled and not self._stop.is_set():
                        self._attached()  # commits the spool, unless a reader has the file again
                    if self._con is not None and files.asked(self.path):
                        self._release()
                finally:
                    self._mutex.release()

    def _attached(self) -> bool:
        """Attach the file if the writer had let go of it (committing what was spooled); False while another process
        has it."""
        if self._con is None:
            try:
                self._attach()
            except (files.Held, duckdb.IOException) as e:
                if not _held(e):
                    raise FactoryError(f"cannot open the store {self.path}: {e}") from None
                return False
        return True

    def _attach(self):
        quoted = str(self.path).replace("'", "''")
        if self._hold is None:  # readers out (`files.Held` if one is in) until the file is detached again
            self._hold = files.hold(self.path)
        try:
            self._mem.execute(f"ATTACH '{quoted}' AS store (ROW_GROUP_SIZE {ROW_GROUP})")
        except BaseException:
            self._let_go()
            raise
        self._mem.execute("USE store")
        self._con = self._mem
        if self._has("candidate_rows"):  # not yet while a new store is made
            self._drain()
        return self._con

    @contextmanager
    def _use(self):
        """The writer's connection for one step, the file attached again (waiting for readers) if it was let go."""
        if self.read_only:
            yield self._con
            return
        with self._mutex:
            if self._con is None:
                self._retry(self._attach, READ_WAIT)
            yield self._con

    def _checkpoint(self) -> None:
        """Fold the WAL into the file: at the store's choosing, between commits, never inside one."""
        self._con.execute("CHECKPOINT")

    def _release(self) -> None:
        """Checkpoint and let go of the file, so readers can open it until the next commit."""
        if self._con is not None and not self.read_only:
            self._checkpoint()
            self._mem.execute("USE memory")
            self._mem.execute("DETACH store")
            self._con = None
            self._let_go()

    def _let_go(self) -> None:
        files.let_go(self._hold)
        self._hold = None

    def _wal(self) -> int:
        try:
            return files.beside(self.path, ".wal").stat().st_size
        except FileNotFoundError:
            return 0

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection, the file attached again (waiting for readers) when the writer had let go of it."""
        if self._con is None:
            with self._mutex:
                if self._con is None:
                    self._retry(self._attach, READ_WAIT)
        return self._con

    def _has(self, table: str) -> bool:
        sql = "SELECT 1 FROM information_schema.tables WHERE table_name = ? AND table_catalog = current_database()"
        return bool(self._con.execute(sql, [table]).fetchall())

    @property
    def snapshot_path(self) -> Path:
        return self.snapshot_for(self.path)

    @property
    def spool(self) -> Path:
        return files.beside(self.path, ".spool")

    @staticmethod
    def snapshot_for(path: Path) -> Path:
        return files.beside(path, ".progress.json")

    @staticmethod
    def lock_for(path: Path) -> Path:
        return files.beside(path, ".lock")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, drain: bool = True) -> None:
        """Let go of the store; a writer first commits what it spooled, if no reader holds the file for long (else
        the spool stays, and the next writer commits it)."""
        if self.read_only:
            self._con.close()
            self._let_go()  # after the file is closed
            return
        self._stop.set()
        try:
            with self._mutex:
                if drain and self.spool.exists():
                    with self._use():  # attaching commits what was spooled
                        pass
                self._release()
                self._mem.close()
        finally:
            self._let_go()
            if self._lock is not None:
                self._lock.truncate(0)  # no writer now
                self._lock.close()  # releases the writer's lock
                self._lock = None

    # runs
    def find_run(self, recipe_hash: str, retry_of: str | None = None) -> str | None:
        """The latest run of this recipe, or of this recipe retrying run `retry_of`: the one a rerun resumes."""
        with self._use() as con:
            row = con.execute(
                """SELECT run_id FROM runs WHERE recipe_hash = ? AND retry_of IS NOT DISTINCT FROM ?
                   ORDER BY started_at DESC LIMIT 1""",
                [recipe_hash, retry_of],
            ).fetchone()
            return row[0] if row else None

    def start_run(self, name: str, recipe_hash: str, recipe: str, model: str, engine: str, sampling: dict,
                  versions: dict, retry_of: str | None = None) -> str:  # fmt: skip
        run_id = f"{now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        row = [run_id, name, recipe_hash, recipe, model, engine, json.dumps(sampling), json.dumps(versions), now()]
        with self._use() as con:  # retry_of last: a store older than schema 3 had it added at the end
            con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 'running', ?)", [*row, retry_of])
            return run_id

    def lineage(self, run_id: str) -> list[str]:
        """The run, the run it retried, that one's, and so on: [] when there is no such run."""
        out: list[str] = []
        with self._use() as con:
            while run_id is not None and run_id not in out:
                row = con.execute("SELECT retry_of FROM runs WHERE run_id = ?", [run_id]).fetchone()
                if row is None:
                    break
                out.append(run_id)
                run_id = row[0]
        return out

    def set_status(self, run_id: str, status: str) -> None:
        ended = now() if status != "running" else None
        with self._use() as con:
            con.execute("UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?", [status, ended, run_id])

    def progress(self, run_id: str) -> dict[str, tuple[int, int, int, int]]:
        """prompt_id -> (samples drawn, candidates passed, examples kept, tokens) for the run."""
        with self._use() as con:
            rows = con.execute(
                """SELECT c.prompt_id, count(*), count(*) FILTER (WHERE c.accepted), count(e.example_id),
                          coalesce(sum(c.n_tokens), 0)
                   FROM candidate_rows c LEFT JOIN examples e USING (candidate_id)
                   WHERE c.run_id = ? GROUP BY c.prompt_id""",
                [run_id],
            ).fetchall()
            return {r[0]: tuple(r[1:]) for r in rows}

    # writes
    def commit(self, batch: Batch) -> None:
        """Write one batch in one transaction: all of it lands, or none of it. When a reader holds the file, the
        batch is spooled to disk instead (as durable as a commit) and written before the next one."""
        tables = self._tables(batch)
        with self._mutex:
            if not self._attached():  # attaching commits what was spooled, oldest first
                files.spool(self.spool, tables)
                return
            self._write(tables)
            if files.asked(self.path):
                self._release()
            elif self._wal() > CHECKPOINT_BYTES:
                self._checkpoint()

    @staticmethod
    def _tables(batch: Batch) -> dict[str, pa.Table]:
        kept = files.held(batch.candidates, batch.examples)
        rows = {
            "prompts": (_PROMPT, batch.prompts),
            "candidate_rows": (_ROW, kept),
            "examples": (_EXAMPLE, batch.examples),
            "dedup": (_DEDUP, batch.dedup),
            "prompt_drops": (_DROP, batch.prompt_drops),
            "prompt_checks": (_CHECK, batch.prompt_checks),
        }
        return {name: _table(r, schema) for name, (schema, r) in rows.items() if r}

    def _write(self, tables: dict[str, pa.Table]) -> None:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            for name, t in tables.items():
                con.register("_batch", t)
                for key in _KEYS[name]:
                    self._unique(name, key, t)
                con.execute(f"INSERT INTO {name} SELECT * FROM _batch")
                con.unregister("_batch")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _unique(self, name: str, key: str, t: pa.Table) -> None:
        """Keep `key` unique in table `name` as the batch `t` (registered as _batch) goes in: a sample stored again
        fails the batch; a prompt, signature or drop seen before is kept as it was. Only the keys whose hash the
        writer has seen before are looked up in the table, so a commit costs the same however big the store."""
        con = self._con
        seen = self._seen.get((name, key))
        if seen is None:  # once per writer: 8 bytes a row
            seen = self._seen[(name, key)] = files.Seen(
                con.execute(f"SELECT hash({key}) AS h FROM {name}").fetchnumpy()["h"]
            )
        hashes = con.execute(f"SELECT hash({key}) AS h FROM _batch").fetchnumpy()["h"]
        maybe = seen.maybe(hashes)
        have: set = set()
        if maybe.any():  # a hash seen before: the key itself decides (the batch's rows with it are the small side)
            con.register("_maybe", t.filter(pa.array(maybe, pa.bool_())))
            have = set(con.execute(f"SELECT {key} FROM {name} SEMI JOIN _maybe USING ({key})").fetchall())
            con.unregister("_maybe")
        keys = list(zip(*(t.column(c).to_pylist() for c in key.split(", ")), strict=True))
        if name in ("candidate_rows", "examples"):
            if have or len(set(keys)) != len(keys):
                raise FactoryError(f"{name}: a ({key}) of this batch is already in the store {self.path}")
            seen.add(hashes)
            return
        keep = []
        for k in keys:
            keep.append(k not in have)
            have.add(k)  # and once only within the batch
        mask = pa.array(keep, pa.bool_())
        con.register("_batch", t.filter(mask))
        seen.add(hashes[mask.to_numpy(zero_copy_only=False)])

    def _drain(self) -> None:
        """Commit the spooled batches, oldest first; one a crash left committed but not deleted is skipped."""
        for folder, tables in files.spooled(self.spool):
            ids = tables["candidate_rows"].column("candidate_id").to_pylist() if "candidate_rows" in tables else []
            self.con.register("_ids", pa.table({"candidate_id": ids}))
            [(have,)] = self.con.execute(
                "SELECT count(*) FROM candidate_rows WHERE candidate_id IN (SELECT candidate_id FROM _ids)"
            ).fetchall()
            self.con.unregister("_ids")
            if not ids or have < len(ids):
                self._write(tables)
            shutil.rmtree(folder)
        if self.spool.exists():
            shutil.rmtree(self.spool, ignore_errors=True)

    def _migrate(self) -> None:
        """A schema 1 store (indexed tables, accepted texts twice) rewritten as the current schema into a new file that
        takes its place: a crash before that leaves the old store as it was, and the new file is compact."""
        fresh = files.beside(self.path, ".migrating")
        for f in (fresh, files.beside(fresh, ".wal")):
            f.unlink(missing_ok=True)  # a migration a crash cut short
        con, quoted = self._mem, str(fresh).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS fresh (ROW_GROUP_SIZE {ROW_GROUP})")
        con.execute("USE fresh")
        con.execute(resources.files("factory").joinpath("schema.sql").read_text())
        for t in ("runs", "prompts", "examples", "prompt_drops", "dedup"):  # by name: schema 1 has no runs.retry_of
            con.execute(f"INSERT INTO fresh.{t} BY NAME SELECT * FROM store.{t}")
        [(n,)] = con.execute("SELECT coalesce(max(rowid) + 1, 0) FROM store.candidates").fetchall()
        for lo in range(0, n, 20_000):  # in slices: the rows pass through Python to find what examples hold
            cur = con.execute(
                """SELECT c.*, e.messages[len(e.messages)].content AS _reply
                   FROM store.candidates c LEFT JOIN store.examples e USING (candidate_id)
                   WHERE c.rowid >= ? AND c.rowid < ? ORDER BY c.rowid""",
                [lo, lo + 20_000],
            )
            cols = [d[0] for d in cur.description]
            rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
            for r in rows:
                reply = r.pop("_reply")
                r["text_edit"] = files.held_by_example(r["text"], reply) if reply is not None else None
                if r["text_edit"]:
                    r["text"] = None
            con.register("_rows", pa.Table.from_pylist(rows, schema=_ROW))
            con.execute("INSERT INTO fresh.candidate_rows SELECT * FROM _rows")
            con.unregister("_rows")
        con.execute("CHECKPOINT fresh")
        con.execute("USE memory")
        con.execute("DETACH fresh")
        con.execute("DETACH store")
        self._con = None
        files.beside(self.path, ".wal").unlink(missing_ok=True)  # the old file's, replayed already
        os.replace(fresh, self.path)
        self._attach()

    def checks(self, prompt_ids: list[str], battery: str) -> dict[str, dict]:
        """The stored `prompt_checks` rows of these prompts under this battery, by prompt_id."""
        with self._use() as con:
            cur = con.execute(
                "SELECT * FROM prompt_checks WHERE battery = ? AND prompt_id IN (SELECT unnest(?::VARCHAR[]))",
                [battery, prompt_ids],
            )
            cols = [d[0] for d in cur.description]
            return {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}

    def dedup_rows(self, scope: str, chunk: int = 1 << 16) -> Iterator[tuple[str, bytes]]:
        """(key, signature) of every text kept under this dedup scope, by any run, fetched `chunk` at a time (a
        store's signatures are half a KB each: not all of them in memory at once)."""
        with self._use() as con:
            result = con.execute("SELECT key, signature FROM dedup WHERE scope = ?", [scope])
            while rows := result.fetchmany(chunk):
                yield from rows

    def publish(self, snapshot: dict) -> None:
        """Progress for readers that cannot open the file while this process writes it."""
        tmp = self.snapshot_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot, default=str))
        os.replace(tmp, self.snapshot_path)

    # reads
    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        with self._use() as con:
            try:
                cur = con.execute(sql)
            except duckdb.Error as e:
                raise FactoryError(f"query failed: {e}") from None
            if cur.description is None:
                return [], []
            return [d[0] for d in cur.description], cur.fetchall()

    def stats(self) -> dict:
        one = lambda sql: self.con.execute(sql).fetchone()  # noqa: E731
        runs = self.con.execute(
            """SELECT r.run_id, r.name, r.model, r.status, r.started_at, r.ended_at,
                      count(DISTINCT c.prompt_id), count(c.candidate_id), count(*) FILTER (WHERE c.accepted),
                      coalesce(sum(c.n_tokens), 0)
               FROM runs r LEFT JOIN candidate_rows c USING (run_id)
               GROUP BY ALL ORDER BY r.started_at"""
        ).fetchall()
        keys = ("run_id", "name", "model", "status", "started_at", "ended_at", "prompts", "candidates", "passed",
                "tokens")  # fmt: skip
        reasons = self.con.execute(
            """SELECT reason, count(*) FROM (SELECT reason FROM candidate_rows WHERE NOT accepted
                                            UNION ALL SELECT 'prompt_' || reason FROM prompt_drops)
               GROUP BY reason ORDER BY 2 DESC, 1"""
        ).fetchall()
        by_source = self.con.execute(
            """SELECT p.source, p.task, count(*), count(*) FILTER (WHERE c.accepted), count(e.example_id)
               FROM candidate_rows c JOIN prompts p USING (prompt_id) LEFT JOIN examples e USING (candidate_id)
               GROUP BY ALL ORDER BY 1, 2"""
        ).fetchall()
        checks = self.con.execute(_CHECKS).fetchall()
        return {
            "store": str(self.path),
            "prompts": one("SELECT count(*) FROM prompts")[0],
            "candidates": one("SELECT count(*) FROM candidate_rows")[0],
            "passed": one("SELECT count(*) FROM candidate_rows WHERE accepted")[0],
            "examples": one("SELECT count(*) FROM examples")[0],
            "runs": [dict(zip(keys, r, strict=True)) for r in runs],
            "reasons": dict(reasons),
            "by_source": [
                {"source": s, "task": t, "candidates": n, "passed": p, "examples": e} for s, t, n, p, e in by_source
            ],
            "test_checks": _test_checks(checks),
            "contaminated": self.leaks(),
        }

    # reads for export, publish and report
    def _select(self, what: str, columns: list[str] | None, where: str | None, pass_rate: tuple | None) -> str:
        if what not in VIEWS:
            raise FactoryError(f"--what {what!r}: choose one of {', '.join(VIEWS)}")
        have = self.columns(what)
        unknown = [c for c in columns or [] if c not in have]
        if unknown:
            raise FactoryError(f"--columns {','.join(unknown)}: not a column of {what}; choose from {', '.join(have)}")
        cond = [f"({where})"] if where else []
        if pass_rate is not None:
            lo, hi = (float(x) for x in pass_rate)
            cond.append(f"prompt_id IN (SELECT prompt_id FROM ({_PASS}) WHERE pass_rate BETWEEN {lo} AND {hi})")
        cols = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return f"SELECT {cols} FROM ({VIEWS[what]}) v" + (" WHERE " + " AND ".join(cond) if cond else "")

    def columns(self, what: str) -> list[str]:
        return [d[0] for d in self.con.execute(f"SELECT * FROM ({VIEWS[what]}) v LIMIT 0").description]

    def rows(self, what: str, columns: list[str] | None = None, where: str | None = None, pass_rate=None,
             batch_rows: int = 1024) -> pa.RecordBatchReader:  # fmt: skip
        """Stream an export view (`VIEWS`) as Arrow batches: the rows `where` picks, in a stable order."""
        sql = self._select(what, columns, where, pass_rate)
        try:
            return self.con.sql(sql + _ORDER[what]).to_arrow_reader(batch_rows)
        except duckdb.Error as e:
            raise FactoryError(f"export failed: {e}") from None

    def count(self, what: str, where: str | None = None, pass_rate=None) -> int:
        sql = f"SELECT count(*) FROM ({self._select(what, None, where, pass_rate)})"
        try:
            return self.con.execute(sql).fetchone()[0]
        except duckdb.Error as e:
            raise FactoryError(f"export failed: {e}") from None

    def runs(self) -> list[dict]:
        cur = self.con.execute("SELECT * FROM runs ORDER BY started_at")
        return [dict(zip([d[0] for d in cur.description], r, strict=True)) for r in cur.fetchall()]

    # reads for the trainers; `where` is a SQL condition on the examples (or prompts) table, as a recipe writes it
    def messages(self, where: str | None = None, limit: int = 0, order: str = "committed") -> list[list[dict]]:
        """The `messages` of the examples `where` picks, in commit order ("committed") or by example_id ("id")."""
        sql = "SELECT messages FROM examples" + (f" WHERE {where}" if where else "")
        sql += f" ORDER BY {_MESSAGE_ORDER[order]}" + (f" LIMIT {int(limit)}" if limit else "")
        return [m for (m,) in self.query(sql)[1]]

    def prompts_by_pass_rate(self, where: str | None = None, pass_rate: tuple | None = None,
                             limit: int = 0) -> list[tuple]:  # fmt: skip
        """(source, task, prompt, reference, metadata, pass rate or None when never sampled) of the prompts `where`
        and the pass-rate window pick, by prompt_id."""
        cond = [f"({where})"] if where else []
        if pass_rate is not None:
            cond.append(f"r.pass_rate BETWEEN {float(pass_rate[0])} AND {float(pass_rate[1])}")
        sql = f"""SELECT p.source, p.task, p.prompt, p.reference, p.metadata, r.pass_rate
                  FROM prompts p LEFT JOIN ({_PASS}) r USING (prompt_id)
                  {"WHERE " + " AND ".join(cond) if cond else ""}
                  ORDER BY p.prompt_id {f"LIMIT {int(limit)}" if limit else ""}"""
        return self.query(sql)[1]

    def prompt_texts(self) -> list[str]:
        """Every prompt's text (what `factory eval --training` counts as seen)."""
        return [t for (t,) in self.query("SELECT prompt FROM prompts")[1]]

    def task_rows(self, task: str, columns: list[str], where: str | None = None) -> pa.RecordBatchReader:
        """The examples of one task that `where` picks, streamed like `rows`."""
        quoted = task.replace("'", "''")
        return self.rows("examples", columns, (f"({where}) AND " if where else "") + f"task = '{quoted}'")

    def leaks(self) -> list[dict]:
        """Decontamination's hits: per benchmark, method (problem or solution n-grams) and field (prompt, response)."""
        keys = ("benchmark", "method", "field", "count")
        return [dict(zip(keys, r, strict=True)) for r in self.con.execute(_LEAKS).fetchall()]

    def facts(self) -> dict:
        """What a dataset card and a report show beyond `stats`: pass rates, lengths, tokens spent, dedup, leaks."""
        col = lambda sql: [r[0] for r in self.con.execute(sql).fetchall()]  # noqa: E731
        spent = self.con.execute(_SPENT).fetchall()
        return {
            "pass_rates": col(f"SELECT pass_rate FROM ({_PASS}) ORDER BY 1"),
            "lengths": {
                a: col(f"SELECT n_tokens FROM candidate_rows WHERE accepted = {a} ORDER BY 1")
                for a in ("true", "false")
            },
            "tokens_per_example": [dict(zip(("source", "task", "tokens", "examples"), r, strict=True)) for r in spent],
            "clusters": col(_CLUSTERS),  # texts per near-duplicate cluster: the kept one and those dropped for it
            "contaminated": self.leaks(),
        }


# each code prompt's latest check: (first trivial program the tests accepted, whether the reference failed them)
_CHECKS = """SELECT weak_tests, bad_reference FROM prompt_checks
             QUALIFY row_number() OVER (PARTITION BY prompt_id ORDER BY checked_at DESC) = 1"""


_NO_CHECKS = """CREATE TEMP VIEW prompt_checks AS
                SELECT NULL::VARCHAR AS prompt_id, NULL::VARCHAR AS weak_tests, NULL::BOOLEAN AS bad_reference,
                       NULL::TIMESTAMP AS checked_at
                WHERE false"""


def _test_checks(rows: list[tuple]) -> dict:
    """What the weak-test gate found (filters/weak_tests.py): prompts checked, weak (by the class of the first
    trivial program their tests accepted), and with a reference solution that fails their tests."""
    weak = [w.split("(", 1)[0] for w, _ in rows if w]
    by = {k: weak.count(k) for k in sorted(set(weak), key=lambda k: (-weak.count(k), k))}
    bad = sum(bool(b) for _, b in rows)
    return {"checked": len(rows), "weak_tests": len(weak), "bad_reference": bad, "by_program": by}


_SPENT = """SELECT p.source, p.task, coalesce(sum(c.n_tokens), 0), count(e.example_id)
            FROM candidate_rows c JOIN prompts p USING (prompt_id) LEFT JOIN examples e USING (candidate_id)
            GROUP BY ALL ORDER BY 1, 2"""
_CLUSTERS = """SELECT count(*) + 1 FROM (
                 SELECT coalesce(scores->>'response_duplicate_of', scores->>'prompt_duplicate_of') AS of
                 FROM candidate_rows WHERE reason = 'near_duplicate'
                 UNION ALL SELECT scores->>'prompt_duplicate_of' FROM prompt_drops WHERE reason = 'near_duplicate')
               GROUP BY of ORDER BY 1"""
_LEAKS = """SELECT scores->>'benchmark', coalesce(scores->>'method', 'problem'), coalesce(scores->>'field', kind),
                   count(*)
            FROM (SELECT scores, 'prompt' AS kind FROM prompt_drops WHERE reason = 'contaminated'
                  UNION ALL SELECT scores, 'response' FROM candidate_rows WHERE reason = 'contaminated')
            GROUP BY ALL ORDER BY 4 DESC, 1, 2, 3"""
_MESSAGE_ORDER = {"committed": "created_at, example_id", "id": "example_id"}
_PASS = "SELECT prompt_id, avg(accepted::INT) AS pass_rate FROM candidate_rows GROUP BY prompt_id"
_CANDIDATES = """SELECT c.candidate_id, c.run_id, c.prompt_id, c.sample_index, p.source, p.task, p.prompt,
                        p.reference, c.text AS completion, c.n_tokens, c.finish_reason, c.accepted, c.reason, c.scores
                 FROM {t} c JOIN prompts p USING (prompt_id)"""
# what `factory export` can write; each a view whose columns `--columns` and `--where` name
VIEWS = {
    "examples": "SELECT * EXCLUDE (created_at) FROM examples",
    "candidates": _CANDIDATES.format(t="candidates"),
    "prompts": f"""SELECT p.prompt_id, p.source, p.task, p.prompt, p.reference, p.reference->>'answer' AS answer,
                          count(*) AS samples, count(*) FILTER (WHERE c.accepted) AS passed, any_value(r.pass_rate)
                          AS pass_rate
                   FROM prompts p JOIN candidate_rows c USING (prompt_id) JOIN ({_PASS}) r USING (prompt_id)
                   GROUP BY ALL""",
    "rejected": _CANDIDATES.format(t="candidate_rows") + " WHERE NOT c.accepted",  # never an example's text
}
# examples stream in the order they were committed (no sort: memory stays flat however big the store); the
# others are joins or groups, whose order DuckDB does not keep, so they are sorted (spilling to disk when large)
_ORDER = {"examples": "", "prompts": " ORDER BY prompt_id"}
_ORDER["candidates"] = _ORDER["rejected"] = " ORDER BY run_id, prompt_id, sample_index"
