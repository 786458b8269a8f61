"""MinHash near-duplicate removal: the first text seen is kept, later near-copies are `near_duplicate`.

A text is a set of word 3-grams (lowercased; prose punctuation, brackets and LaTeX markup dropped; operators kept).
Its signature is a datasketch MinHash (scheme affine32, bit for bit what `MinHash(num_perm, seed, hashfunc=...)`
gives) computed for all n-grams at once with numpy. The LSH bands are datasketch's optimum for the threshold, their
hashes kept in `filters.dedup_index` (MinHashLSH.query's candidates; recent texts in memory, the rest in files); a
candidate whose estimated Jaccard reaches the threshold makes the text a near-duplicate of the earliest such kept
text.

Prompts are near-duplicates only if they also hold the same numbers ("Simplify 13524/57134" and "Simplify
7072/7832" are different problems): every n-gram is salted with the text's sorted digit runs. Responses are not:
a slip in one number of a long trace leaves the same trace.

The index lives in the store: `export_new()` gives rows (scope, key, signature) kept since the last export, to be
written in the transaction of the batch that kept them; `load(rows)` rebuilds the index, a chunk at a time.

    d = Deduper(DedupConfig(field="prompt"))
    d.check("p1", "Find the prime factorization of 980. Write the factors separated by x.")  # kept
    d.check("p2", "find the prime factorization of 980; write the factors separated by x")   # near_duplicate
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path

import numpy as np
import xxhash

from filters.base import Verdict, accept, reject
from filters.dedup_index import Index

FIELDS = ("prompt", "response")
SCHEME = "affine32"  # datasketch >= 2.0's default permutation scheme: 32-bit values, a bijective permutation
VERSION = "v1"  # part of the scope: bump when tokenizing or hashing changes, so old signatures are not mixed in

# Words, and symbols that carry meaning: operators, so that "5 + 3" and "5 - 3" or "P ∨ Q" and "P ∧ Q" differ.
# Prose punctuation, brackets and LaTeX markup are dropped.
PROSE = ".,;:!?'\"`()[]{}$\\|&@#~_…–—“”‘’«»"
TOKEN = re.compile(r"\w+|[^\w\s" + re.escape(PROSE) + "]")
DIGITS = re.compile(r"\d+")
MAX_NGRAM = 32
_CHUNK = 1 << 18  # n-gram x permutation values hashed at once: 1 MB of uint32 stays in cache (fastest, measured)


@dataclass
class DedupConfig:
    """A recipe's `dedup:` section, one per deduplicated text. Defaults from benchmarks/dedup_quality.py: 3-grams at
    0.6 catch 96% of prompts and 97% of responses with 5% of words edited, at precision 0.99, and remove at most 2.2%
    of streams of distinct reasoning-gym, HumanEval and CHAMP problems; 1-2-grams or 0.5 remove up to 41% of some
    families, 0.7 misses a fifth of 5%-edited prompts. Families that differ in a few words under long boilerplate
    (word_sorting, propositional_logic) lose 79-99% at any setting: do not dedup their prompts."""

    field: str = "prompt"  # prompt | response: which text is deduplicated
    ngram: int = 3  # words per n-gram (see above; text-dedup and datatrove use 5 for web pages, which lost recall)
    num_perm: int = 128  # MinHash permutations (datasketch's default); 64 and 256 gave the same F1 (±0.005)
    threshold: float = 0.6  # estimated Jaccard at or above which a text is a near-duplicate (see above)
    match_numbers: bool | None = None  # texts must hold the same numbers; None: on for prompts, off for responses
    seed: int = 1  # MinHash permutation seed (datasketch's default)

    @property
    def numbers(self) -> bool:
        return self.field == "prompt" if self.match_numbers is None else self.match_numbers

    @property
    def scope(self) -> str:
        """Names the signatures' meaning in the store; a change of n-gram, permutations or numbers starts afresh."""
        n = "-num" if self.numbers else ""
        return f"{self.field}/minhash-{VERSION}/w{self.ngram}-p{self.num_perm}-s{self.seed}{n}"

    def problems(self, where: str = "dedup") -> list[str]:
        """What is wrong with the settings, one message per field (empty when fine)."""
        out = []
        if self.field not in FIELDS:
            out.append(f"{where}.field: {self.field!r} must be one of {', '.join(FIELDS)}")
        if not 1 <= self.ngram <= MAX_NGRAM:
            out.append(f"{where}.ngram: {self.ngram} must be a word count in 1..{MAX_NGRAM}")
        if not 2 <= self.num_perm <= 1024:
            out.append(f"{where}.num_perm: {self.num_perm} must be in 2..1024")
        if not 0 < self.threshold < 1:
            out.append(f"{where}.threshold: {self.threshold} must be a Jaccard similarity in (0, 1)")
        return out


def words(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def digits(ws: list[str]) -> str:
    """The digit runs of a text's words, sorted: "x_1=2, 3n+1" -> "1 1 2 3"."""
    return " ".join(sorted(m for w in ws for m in DIGITS.findall(w)))


def word_hashes(ws: list[str]) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(w.encode()) for w in ws), np.uint64, len(ws))


def ngram_hashes(h: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of the word n-grams of a text given its word hashes (a text shorter than n is one n-gram)."""
    n = min(n, len(h))
    m = len(h) - n + 1
    out = h[:m] * _MULT[0]
    for j in range(1, n):
        out = out + h[j : j + m] * _MULT[j]
    return _fmix64(out)


def shingles(text: str, ngram: int, numbers: bool) -> np.ndarray:
    """The 32-bit n-gram hashes that a datasketch MinHash of this text is updated with."""
    ws = words(text)
    if not ws:
        return np.empty(0, np.uint32)
    h = ngram_hashes(word_hashes(ws), ngram)
    if numbers:  # salt every n-gram with the text's numbers: texts with other numbers share no n-gram
        h = _fmix64(h ^ np.uint64(xxhash.xxh3_64_intdigest(digits(ws).encode())))
    return (h >> np.uint64(32)).astype(np.uint32)


class Bands:
    """LSH bands: `b` bands of `r` signature values, each hashed to 64 bits, salted with the band's number."""

    def __init__(self, bands: int, rows: int):
        self.b, self.r = bands, rows

    def hashes(self, sigs: np.ndarray) -> np.ndarray:
        """(texts, bands) hashes of each band's r values."""
        v = sigs[:, : self.b * self.r].reshape(len(sigs), self.b, self.r)
        h = np.zeros(v.shape[:2], np.uint64)
        for j in range(self.r):
            h ^= v[:, :, j]
            h *= _MULT[0]
        return _fmix64(h ^ _fmix64(np.arange(1, self.b + 1, dtype=np.uint64)))


class MinHasher:
    """Texts' MinHash signatures under a config: what a verification worker computes for the Deduper (it holds no
    state but the permutations, so any process makes the same signatures)."""

    def __init__(self, cfg: DedupConfig):
        from datasketch import MinHash  # with scipy, a third of a second: not for every command that reads a recipe

        self.cfg = cfg
        self.a, self.b = MinHash(cfg.num_perm, seed=cfg.seed, scheme=SCHEME).permutations

    def signatures(self, texts: list[str]) -> np.ndarray:
        """MinHash values, one row per text: the permutations applied to every n-gram at once, min per text."""
        cfg = self.cfg
        sets = [shingles(t, cfg.ngram, cfg.numbers) for t in texts]
        out = np.full((len(sets), cfg.num_perm), np.iinfo(np.uint32).max, np.uint32)
        start = 0
        while start < len(sets):  # chunks of texts whose n-grams x permutations fit in _CHUNK values
            end, size = start + 1, len(sets[start])
            while end < len(sets) and (size + len(sets[end])) * cfg.num_perm <= _CHUNK:
                size, end = size + len(sets[end]), end + 1
            self._minhash(sets[start:end], out[start:end])
            start = end
        return out

    def _minhash(self, sets: list[np.ndarray], out: np.ndarray) -> None:
        lens = np.array([len(s) for s in sets])
        if not lens.sum():
            return
        hv = _fmix32(np.concatenate(sets))  # datasketch's affine32: fmix32, then a * h + b mod 2^32
        values = np.multiply.outer(self.a, hv)  # permutation x n-gram: each minimum runs along memory (3x faster)
        values += self.b[:, None]
        full = lens > 0
        offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])[full]
        out[full] = np.minimum.reduceat(values, offsets, axis=1).T


class Deduper:
    """A MinHash LSH index over kept texts; `check` says whether a text nearly repeats one and keeps it if not.
    `folder`: where the index writes what it does not keep in memory (default: the system's temporary folder)."""

    def __init__(self, cfg: DedupConfig | None = None, folder: Path | None = None):
        self.cfg = cfg = cfg or DedupConfig()
        self.hasher = MinHasher(cfg)
        self.bands = Bands(*lsh_params(cfg.threshold, cfg.num_perm))
        self.width = self.bands.b * self.bands.r  # the values compared when estimating Jaccard
        self.index = Index(self.width, folder)
        self._new: list[tuple[str, bytes]] = []

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, key: str) -> bool:
        return self.index.find([key])[0] is not None

    def signatures(self, texts: list[str]) -> np.ndarray:
        return self.hasher.signatures(texts)

    def check(self, key: str, text: str, insert: bool = True) -> Verdict:
        return self.check_many([(key, text)], insert)[0]

    def check_many(
        self, items: Iterable[tuple[str, str]], insert: bool = True, sigs: list[np.ndarray | None] | None = None
    ) -> list[Verdict]:
        """Verdicts in order; each kept text is indexed before the next is checked, so the first of a batch wins.

        A key already in the index is the kept text itself (a resumed run, another candidate of the same prompt)
        and is accepted; a text with no words has nothing to compare and is accepted, not indexed; `insert=False`
        only asks. The index is asked about the whole batch at once; the texts kept in it are compared among
        themselves here and indexed together at the end. `sigs`: the items' signatures where already computed (by
        a `MinHasher` of the same config, in a verification worker), None where not.
        """
        items = list(items)
        worded = [i for i, (_, text) in enumerate(items) if TOKEN.search(text)]
        known = self.index.find([items[i][0] for i in worded])
        todo = [i for i, row in zip(worded, known, strict=True) if row is None]
        sigs = self._signatures(items, todo, sigs)
        bands = self.bands.hashes(sigs)
        near = self.index.near(bands)
        at = {i: n for n, i in enumerate(todo)}
        kept: dict[str, int] = {}  # key -> position in todo, of the texts this batch keeps
        recent: dict[int, list[int]] = {}  # band hash -> those texts
        out = []
        for i, (key, _) in enumerate(items):
            n = at.get(i)
            if n is None or key in kept:  # no words, indexed before, or the same key earlier in this batch
                out.append(accept())
                continue
            rows = sorted(near[n])  # the earliest kept first, then this batch's
            mine = sorted({m for h in bands[n].tolist() for m in recent.get(h, ())})
            v = self._verdict(sigs[n], rows, mine, sigs, [items[todo[m]][0] for m in mine])
            if v.accepted and insert:
                kept[key] = n
                for h in bands[n].tolist():
                    recent.setdefault(h, []).append(n)
            out.append(v)
        new = list(kept.values())
        self.index.add(list(kept), sigs[new], bands[new])
        self._new += [(key, sigs[n].tobytes()) for key, n in kept.items()]
        return out

    def _signatures(self, items: list, todo: list[int], given: list | None) -> np.ndarray:
        """The signatures of items `todo`: those `given`, the rest computed here."""
        out = np.empty((len(todo), self.cfg.num_perm), np.uint32)
        missing = [n for n, i in enumerate(todo) if given is None or given[i] is None]
        for n, i in enumerate(todo):
            if given is not None and given[i] is not None:
                out[n] = given[i]
        if missing:
            out[missing] = self.signatures([items[todo[n]][1] for n in missing])
        return out

    def _verdict(self, sig: np.ndarray, rows: list[int], mine: list[int], sigs: np.ndarray, keys: list[str]) -> Verdict:
        """Against the indexed `rows` and this batch's kept texts `mine` (positions in `sigs`, with their `keys`)."""
        if not rows and not mine:
            return accept()
        others = np.concatenate([self.index.signatures(rows), sigs[mine, : self.width]])
        est = np.count_nonzero(others == sig[: self.width], axis=1) / self.width
        best = int(np.argmax(est))  # the earliest kept among the most similar
        if est[best] < self.cfg.threshold:
            return accept()
        f = self.cfg.field
        of = self.index.key(rows[best]) if best < len(rows) else keys[best - len(rows)]
        return reject("near_duplicate", **{f"{f}_duplicate_of": of, f"{f}_jaccard": round(float(est[best]), 3)})

    # persistence
    def export_new(self) -> list[dict]:
        """Rows for the `dedup` table for texts kept since the last export; write them with the batch that kept them."""
        rows = [{"scope": self.cfg.scope, "key": k, "signature": s} for k, s in self._new]
        self._new = []
        return rows

    def load(self, rows: Iterable, chunk: int = 1 << 16) -> int:
        """Index stored rows ({key, signature} dicts or (key, signature) pairs of this scope), `chunk` at a time;
        returns how many were new."""
        it, added = iter(rows), 0
        while pairs := [(r["key"], r["signature"]) if isinstance(r, dict) else (r[0], r[1]) for r in islice(it, chunk)]:
            pairs = list(dict(pairs).items())
            known = self.index.find([k for k, _ in pairs])
            pairs = [p for p, row in zip(pairs, known, strict=True) if row is None]
            if not pairs:
                continue
            keys, blobs = zip(*pairs, strict=True)
            sigs = np.frombuffer(b"".join(blobs), np.uint32)
            if len(sigs) != len(keys) * self.cfg.num_perm:
                raise ValueError(f"dedup rows are not {self.cfg.num_perm}-value signatures of scope {self.cfg.scope}")
            sigs = sigs.reshape(len(keys), self.cfg.num_perm)
            self.index.add(list(keys), sigs, self.bands.hashes(sigs))
            added += len(keys)
        return added


@lru_cache
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's (bands, rows) for the threshold, weighted for recall since every candidate is checked against
    the threshold: equal weights find 40% of pairs at 0.6 (18 bands of 7), these 87% (25 of 5). Computed once (it
    integrates numerically); where the optimum is one band, which MinHashLSH refuses, two."""
    from datasketch import MinHashLSH

    try:
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    except ValueError:
        return 2, num_perm // 2
    return lsh.b, lsh.r


def _splitmix64(i: int) -> int:
    z = (i * 0x9E3779B97F4A7C15) & (2**64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return z ^ (z >> 31)


# Odd 64-bit multipliers, one per position in an n-gram (fixed, so stored signatures stay valid): an n-gram of word
# hashes w_j hashes to fmix64(sum_j w_j * C_j mod 2^64).
_MULT = np.array([_splitmix64(i) | 1 for i in range(1, MAX_NGRAM + 1)], dtype=np.uint64)


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch's affine32 scheme pre-mixes every input hash."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))
