"""The store's one writer: a run's rows, a batch at a time, each in one transaction.

Every batch (new prompts, its candidates, its examples) is written through Arrow in one transaction, so a run killed at
any point leaves whole batches only; a second write of the same sample fails loudly instead of duplicating it (the
writer checks the keys itself: DuckDB's indexes live whole in memory and are rewritten at every checkpoint, which a
store of 600k examples cannot afford).

Sized for the mission's store (~600k examples, ~1.8M candidates of ~12 KB) on a small machine: an accepted text is
stored once, in the example's messages (`schema.held`); the writer's memory is bounded (`handoff.MEMORY_LIMIT`), row
groups are small (a checkpoint rewrites at most one partial row group, not one of 122,880 texts), and the store
checkpoints between commits once the WAL passes `CHECKPOINT_BYTES`, never in the middle of one. While a reader has
the file, a commit is spooled beside it instead (`handoff`).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from factory.errors import FactoryError
from factory.store import handoff, schema
from factory.store.handoff import DEFAULT_DB, READ_WAIT
from factory.store.reader import StoreReader

CHECKPOINT_BYTES = 256 * 2**20  # the WAL folded into the file past this size (DuckDB's own 16 MiB is one batch)


def _trim() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL(None).malloc_trim(0)


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


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """An Arrow table of row dicts, built a column at a time: `pa.Table.from_pylist` took 57 ms for 660 candidate
    rows (12 KB texts), this 3.4 ms."""
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}, schema=schema)


def _tables(batch: Batch) -> dict[str, pa.Table]:
    """A batch as Arrow tables, by the table each goes into; a candidate's text an example holds left out."""
    rows = {
        "prompts": (schema.PROMPT, batch.prompts),
        "candidate_rows": (schema.ROW, schema.held(batch.candidates, batch.examples)),
        "examples": (schema.EXAMPLE, batch.examples),
        "dedup": (schema.DEDUP, batch.dedup),
        "prompt_drops": (schema.DROP, batch.prompt_drops),
        "prompt_checks": (schema.CHECK, batch.prompt_checks),
    }
    return {name: _table(r, s) for name, (s, r) in rows.items() if r}


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


class StoreWriter(StoreReader):
    """The store at `path`, written: one writer at a time (a second is refused at once). It keeps the file until a
    reader asks for it, waits up to `wait` seconds for readers when it opens, and offers every query a reader does."""

    def __init__(self, path: str | Path = DEFAULT_DB, wait: float = READ_WAIT):
        self._seen: dict[tuple[str, str], Seen] = {}  # the keys' hashes, by table and key (`_unique`)
        super().__init__(path, wait)

    def _open(self, wait: float) -> handoff.WriterFile:
        """The file attached, migrated to the current schema if older, its spool committed and checkpointed."""
        f = handoff.WriterFile(self.path, on_attach=self._attached, before_detach=self._checkpoint)
        try:
            con = f.open(wait)
            if schema.needs_migration(con):
                con = f.replace(schema.migrate(con, self.path))
            con.execute(schema.DDL)
            self._drain(con)
            self._checkpoint(con)
        except BaseException:
            f.close(drain=False)
            raise
        f.watch()
        return f

    @property
    def spool(self) -> Path:
        return handoff.beside(self.path, ".spool")

    @property
    def snapshot_path(self) -> Path:
        return handoff.snapshot_for(self.path)

    # runs
    def start_run(
        self,
        name: str,
        recipe_hash: str,
        recipe: str,
        model: str,
        engine: str,
        sampling: dict,
        versions: dict,
        retry_of: str | None = None,
    ) -> str:
        run_id = f"{now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        row = [run_id, name, recipe_hash, recipe, model, engine, json.dumps(sampling), json.dumps(versions), now()]
        cols = "run_id, name, recipe_hash, recipe, model, engine, sampling, versions, started_at, status, retry_of"
        with self._use() as con:  # by name: older stores had columns added at the end
            con.execute(f"INSERT INTO runs ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)", [*row, retry_of])
            return run_id

    def set_status(self, run_id: str, status: str) -> None:
        ended = now() if status != "running" else None
        with self._use() as con:
            con.execute("UPDATE runs SET status = ?, ended_at = ? WHERE run_id = ?", [status, ended, run_id])

    # audits (factory/audit.py)
    def save_audit(self, audit) -> None:
        population = json.dumps([[*k, n] for k, n in sorted(audit.population.items())])
        items = [[audit.audit_id, i.candidate_id, i.task, i.source, i.verdict, i.second, i.detail] for i in audit.items]
        with self._use() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    "INSERT INTO audits VALUES (?, ?, ?, ?, ?, ?)",
                    [audit.audit_id, audit.run_id, now(), audit.size, audit.seed, population],
                )
                if items:
                    con.executemany("INSERT INTO audit_items VALUES (?, ?, ?, ?, ?, ?, ?)", items)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def label(self, marks: dict[str, bool], note: str | None = None) -> None:
        """A person's verdicts on candidates (id -> the answer is right); a later label of one replaces its last."""
        with self._use() as con:
            sql = "SELECT candidate_id FROM candidate_rows WHERE candidate_id IN (SELECT unnest(?))"
            known = {r[0] for r in con.execute(sql, [list(marks)]).fetchall()}
            unknown = sorted(set(marks) - known)
            if unknown:
                raise FactoryError(f"no candidate {unknown[0]} in the store {self.path}")
            con.executemany(
                "INSERT OR REPLACE INTO audit_labels VALUES (?, ?, ?, ?)",
                [[cid, right, note, now()] for cid, right in marks.items()],
            )

    def set_canaries(self, run_id: str, result: dict) -> None:
        """The judge's canary grades (factory.judging.check_canaries), in the run's row; a resumed run's replace the
        first check's and keep the checks made during the run."""
        with self._use() as con:
            raw = con.execute("SELECT canaries FROM runs WHERE run_id = ?", [run_id]).fetchone()
            rechecks = json.loads(raw[0]).get("rechecks", []) if raw and raw[0] else []
            result = {**result, "rechecks": rechecks} if rechecks else result
            con.execute("UPDATE runs SET canaries = ? WHERE run_id = ?", [json.dumps(result), run_id])

    def add_canaries(self, run_id: str, result: dict) -> None:
        """A canary check made during the run (factory.judging.Recheck, or a Ray worker's before its first shard):
        the run's first when its row holds none, else one more of its `rechecks`."""
        with self._use() as con:
            raw = con.execute("SELECT canaries FROM runs WHERE run_id = ?", [run_id]).fetchone()
            held = json.loads(raw[0]) if raw and raw[0] else None
            held = result if held is None else {**held, "rechecks": [*held.get("rechecks", []), result]}
            con.execute("UPDATE runs SET canaries = ? WHERE run_id = ?", [json.dumps(held), run_id])

    def set_budget(self, run_id: str, budget: dict) -> None:
        """The budget the run ran under last ({} for none), in its row."""
        with self._use() as con:
            con.execute("UPDATE runs SET budget = ? WHERE run_id = ?", [json.dumps(budget), run_id])

    def add_notice(self, run_id: str, key: str, notice: dict) -> None:
        """What a run noticed (`truncation`: factory/truncation.py), kept in its row's `notices` by key."""
        with self._use() as con:
            [(old,)] = con.execute("SELECT notices FROM runs WHERE run_id = ?", [run_id]).fetchall()
            notices = json.loads(old) if old else {}
            con.execute("UPDATE runs SET notices = ? WHERE run_id = ?", [json.dumps(notices | {key: notice}), run_id])

    def post_progress(self, snapshot: dict) -> None:
        """Progress for readers that cannot open the file while this process writes it."""
        tmp = self.snapshot_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot, default=str))
        os.replace(tmp, self.snapshot_path)

    # batches
    def commit(self, batch: Batch) -> None:
        """Write one batch in one transaction: all of it lands, or none of it. When a reader holds the file, the
        batch is spooled to disk instead (as durable as a commit) and written before the next one."""
        tables = _tables(batch)
        with self._file.attached() as con:  # attaching again commits what was spooled, oldest first
            if con is None:
                handoff.spool_batch(self.spool, tables)
                return
            self._write(con, tables)
            if handoff.asked(self.path):
                self._file.release()
            elif self._file.wal_bytes() > CHECKPOINT_BYTES:
                self._checkpoint(con)

    def _write(self, con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
        con.execute("BEGIN TRANSACTION")
        try:
            for name, t in tables.items():
                con.register("_batch", t)
                for key in schema.KEYS[name]:
                    self._unique(con, name, key, t)
                con.execute(f"INSERT INTO {name} SELECT * FROM _batch")
                con.unregister("_batch")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _unique(self, con: duckdb.DuckDBPyConnection, name: str, key: str, t: pa.Table) -> None:
        """Keep `key` unique in table `name` as the batch `t` (registered as _batch) goes in: a sample stored again
        fails the batch; a prompt, signature or drop seen before is kept as it was. Only the keys whose hash the
        writer has seen before are looked up in the table, so a commit costs the same however big the store."""
        seen = self._seen.get((name, key))
        if seen is None:  # once per writer: 8 bytes a row
            seen = self._seen[(name, key)] = Seen(con.execute(f"SELECT hash({key}) AS h FROM {name}").fetchnumpy()["h"])
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

    # the file attached and let go (`handoff.WriterFile` calls these)
    def _attached(self, con: duckdb.DuckDBPyConnection) -> None:
        if schema.has(con, "candidate_rows"):  # not yet while a new store is made
            self._drain(con)

    def _drain(self, con: duckdb.DuckDBPyConnection) -> None:
        """Commit the spooled batches, oldest first; one a crash left committed but not deleted is skipped."""
        for folder, tables in handoff.spooled(self.spool):
            ids = tables["candidate_rows"].column("candidate_id").to_pylist() if "candidate_rows" in tables else []
            con.register("_ids", pa.table({"candidate_id": ids}))
            [(have,)] = con.execute(
                "SELECT count(*) FROM candidate_rows WHERE candidate_id IN (SELECT candidate_id FROM _ids)"
            ).fetchall()
            con.unregister("_ids")
            if not ids or have < len(ids):
                self._write(con, tables)
            shutil.rmtree(folder)
        if self.spool.exists():
            shutil.rmtree(self.spool, ignore_errors=True)

    def _checkpoint(self, con: duckdb.DuckDBPyConnection) -> None:
        """Fold the WAL into the file: at the store's choosing, between commits, never inside one. Then the freed
        heap goes back to the system: the batches' texts leave glibc's arenas fragmented (~300 MB free, unreturned,
        in a writer of 1.1 GB at 500k examples), and only a trim returns it."""
        con.execute("CHECKPOINT")
        _trim()
