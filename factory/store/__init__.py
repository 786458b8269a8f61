"""The DuckDB store, the only package that speaks SQL: `StoreWriter` writes a run's batches, `StoreReader` answers
every query, `schema` defines the tables, and `handoff` lets readers open the file while a writer runs."""

from factory.store.handoff import DEFAULT_DB, StoreBusy, snapshot_for, writer_pid
from factory.store.reader import StoreReader
from factory.store.writer import Batch, StoreWriter, candidate_id, now

__all__ = [
    "DEFAULT_DB",
    "Batch",
    "StoreBusy",
    "StoreReader",
    "StoreWriter",
    "candidate_id",
    "now",
    "snapshot_for",
    "writer_pid",
]
