"""MinHash dedup speed: `Deduper` against a plain datasketch loop on the same texts, in the same run.

The texts are synthetic reasoning traces (~3,000 words, about 4k tokens, Zipf-distributed words), one in ten a
5%-edited copy of an earlier one. Every arm tokenises the same way (filters.dedup.words) and uses the same LSH
bands, so the difference is the MinHash and index work:

- datasketch loop: per text a `MinHash`, `update` per 3-word shingle (sha1, its default hash), `MinHashLSH.query`
  and `insert` when new; the baseline the issue names.
- datasketch update_batch: the same with one `update_batch` call per text.
- Deduper.check: the filter, one text at a time; Deduper.check_many: batches of 256.

Then loading the index: 100k stored signatures read from a DuckDB table `dedup(scope, key, signature BLOB)` into a
fresh Deduper, against inserting the same signatures into a datasketch MinHashLSH (time and resident memory).

    .venv/bin/python benchmarks/dedup_speed.py [--texts 2000] [--words 3000] [--stored 100000]
"""

from __future__ import annotations

import argparse
import gc
import random
import time

import duckdb
import numpy as np
import pyarrow as pa
from common import table
from datasketch import LeanMinHash, MinHash, MinHashLSH

from filters.dedup import DedupConfig, Deduper, words


def traces(n: int, length: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("etaoinshrdlucmfwyp") for _ in range(rng.randint(2, 9))) for _ in range(20000)]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    out = []
    for i in range(n):
        if i % 10 == 9:  # a 5%-edited copy of an earlier trace
            ws = out[rng.randrange(i)].split(" ")
            out.append(" ".join(w + "x" if rng.random() < 0.05 else w for w in ws))
        else:
            out.append(" ".join(rng.choices(vocab, weights, k=length)))
    return out


def plain_loop(cfg: DedupConfig, texts: list[str], batch: bool) -> int:
    d = Deduper(cfg)  # only for the same LSH bands
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, params=(d.bands.b, d.bands.r))
    dups = 0
    for i, text in enumerate(texts):
        ws = words(text)
        grams = [" ".join(ws[j : j + cfg.ngram]).encode() for j in range(len(ws) - cfg.ngram + 1)]
        m = MinHash(cfg.num_perm, seed=cfg.seed)
        if batch:
            m.update_batch(grams)
        else:
            for g in grams:
                m.update(g)
        if lsh.query(m):
            dups += 1
        else:
            lsh.insert(str(i), m)
    return dups


def deduper(cfg: DedupConfig, texts: list[str], batch: int) -> int:
    d = Deduper(cfg)
    items = [(str(i), t) for i, t in enumerate(texts)]
    verdicts = []
    for start in range(0, len(items), batch):
        verdicts += d.check_many(items[start : start + batch])
    return sum(not v.accepted for v in verdicts)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def load_rows(cfg: DedupConfig, n: int) -> tuple[list[list], list[list]]:
    """Throughput of rebuilding the index from the store, against inserting into datasketch's MinHashLSH."""
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, (n, cfg.num_perm), dtype=np.uint32)
    keys = [f"{i:016x}" for i in range(n)]
    con = duckdb.connect()
    con.execute("CREATE TABLE dedup (scope VARCHAR, key VARCHAR, signature BLOB, PRIMARY KEY (scope, key))")
    rows = pa.table({"scope": [cfg.scope] * n, "key": keys, "signature": [s.tobytes() for s in sigs]})
    con.register("new_rows", rows)
    con.execute("INSERT INTO dedup SELECT * FROM new_rows")
    out = []
    gc.collect()
    before, t = rss_mb(), time.perf_counter()
    stored = con.execute("SELECT key, signature FROM dedup WHERE scope = ?", [cfg.scope]).fetchall()
    d = Deduper(cfg)
    d.load(stored)
    del stored
    gc.collect()
    out.append([f"Deduper.load from DuckDB ({n:,} rows)", time.perf_counter() - t, rss_mb() - before])
    del d
    gc.collect()
    before, t = rss_mb(), time.perf_counter()
    b, r = Deduper(cfg).bands.b, Deduper(cfg).bands.r
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, params=(b, r))
    for k, s in zip(keys, sigs, strict=True):
        lsh.insert(k, LeanMinHash(seed=cfg.seed, hashvalues=s, scheme="affine32"), check_duplication=False)
    gc.collect()
    out.append([f"MinHashLSH.insert ({n:,} signatures in memory)", time.perf_counter() - t, rss_mb() - before])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--words", type=int, default=3000)
    ap.add_argument("--stored", type=int, default=100_000)
    args = ap.parse_args()
    cfg = DedupConfig(field="response")
    texts = traces(args.texts, args.words)
    arms = [
        ("datasketch loop (update per shingle)", lambda: plain_loop(cfg, texts, batch=False)),
        ("datasketch update_batch", lambda: plain_loop(cfg, texts, batch=True)),
        ("Deduper.check (one at a time)", lambda: deduper(cfg, texts, 1)),
        ("Deduper.check_many (batches of 256)", lambda: deduper(cfg, texts, 256)),
    ]
    rows = []
    for name, fn in arms:
        t = time.perf_counter()
        dups = fn()
        rate = len(texts) / (time.perf_counter() - t)
        rows.append([name, dups, rate, rate / rows[0][2] if rows else 1.0])
    print(f"{len(texts):,} texts of {args.words:,} words ({len(texts) // 10} edited copies), ngram {cfg.ngram}, "
          f"num_perm {cfg.num_perm}, threshold {cfg.threshold}\n")  # fmt: skip
    print(table(["arm", "duplicates found", "texts/s", "ratio to datasketch loop"], rows))
    print()
    print(table(["index load", "seconds", "resident MB"], load_rows(cfg, args.stored)))


if __name__ == "__main__":
    main()
