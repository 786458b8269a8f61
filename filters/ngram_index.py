"""An index of texts' word n-grams (64-bit hashes, sorted), and the words it sees: what decontamination looks up.

A text shares an item's n-grams, or not; `find` names the item that shares the most, when it shares enough. The
words are lowercased `\\w+` runs with LaTeX's spelling variants made one, so a copy typeset otherwise is the same
words. An n-gram of numbers only is not indexed (see `_numbers_only`).
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

from filters.dedup import ngram_hashes, word_hashes

WORD = re.compile(r"\w+")
FILTER_BITS = 26  # `NgramIndex._maybe`: a bitmap of 2^26 bits
LATEX = [
    (re.compile(r"\\[dt]frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\times(?![a-zA-Z])"), r"\\cdot"),
    (re.compile(r"\\(?:left|right|displaystyle|quad|qquad)(?![a-zA-Z])|\\[,;!]"), " "),
]


def words(text: str) -> list[str]:
    """The text's words, lowercased, with LaTeX's spelling variants made one (\\dfrac and \\tfrac are \\frac,
    \\times is \\cdot; \\left, \\right, \\displaystyle and spacing commands are dropped): a copy of a problem
    typeset otherwise is the same words. NFKC folds fullwidth letters and ligatures, and invisible format characters
    (zero-width spaces and joiners, soft hyphens) are dropped: inserted inside words, they split every n-gram."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():  # the categories of its distinct characters: one at a time took 1 ms a 12 KB trace
        cf = {ch for ch in set(text) if unicodedata.category(ch) == "Cf"}
        text = "".join(ch for ch in text if ch not in cf) if cf else text
    for pattern, repl in LATEX:
        text = pattern.sub(repl, text)
    return WORD.findall(text.lower())


def _numbers_only(ws: list[str], n: int) -> np.ndarray:
    """Which n-grams are numbers only. They are no evidence: HumanEval's example grids ("0 0 1 1 0 0 0 0") matched
    5% of 3,150 reasoning-gym prompts (grid puzzles), and no problem text otherwise."""
    n = min(n, len(ws))
    c = np.concatenate([[0], np.cumsum([w.isdigit() for w in ws])])
    return (c[n:] - c[:-n]) == n


class NgramIndex:
    """Sorted 64-bit hashes of benchmark items' word n-grams, each with the item it came from. An item shorter than
    `ngram` words is one n-gram (its whole text) when it has at least `min_words`; shorter ones are not indexed."""

    def __init__(self, hashes: np.ndarray, owners: np.ndarray, items: list[tuple[str, str]], sizes: list[int]):
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.owners, self.items, self.sizes = hashes[order], owners[order], items, sorted(set(sizes))
        self.totals = np.bincount(self.owners, minlength=len(items))  # each item's n-grams in the index
        self.common = np.empty(0, np.uint64)  # the phrasing left out of it (`build`'s `common`)
        self._bits: np.ndarray | None = None  # `_maybe`'s filter, made on the first lookup

    @classmethod
    def build(
        cls,
        benchmarks: dict[str, dict[str, str]],
        ngram: int,
        min_words: int,
        items: list[tuple[str, str]] | None = None,
        common: int = 0,
    ) -> NgramIndex:
        """The index of `benchmarks` ({name: {item id: text}}); `items` numbers the items (default: as they come).
        With `common`, an n-gram found in that many distinct texts or more is phrasing, not a problem, and is left
        out (filters.decontam.COMMON says why)."""
        items = items if items is not None else [(b, i) for b, texts in benchmarks.items() for i in texts]
        number = {key: n for n, key in enumerate(items)}
        hashes, owners, sizes = [], [], []
        for bench, texts in benchmarks.items():
            for item, text in texts.items():
                ws = words(text)
                if len(ws) < min_words:
                    continue
                h = np.unique(ngram_hashes(word_hashes(ws), ngram)[~_numbers_only(ws, ngram)])
                hashes.append(h)
                owners.append(np.full(len(h), number[bench, item], np.int32))
                sizes.append(min(len(ws), ngram))
        h = np.concatenate(hashes or [np.empty(0, np.uint64)])
        o = np.concatenate(owners or [np.empty(0, np.int32)])
        if common:
            keep = ~np.isin(h, common_ngrams(benchmarks, ngram, min_words, common))
            h, o = h[keep], o[keep]
        return cls(h, o, items, sizes)

    @classmethod
    def merge(cls, parts: list[NgramIndex]) -> NgramIndex:
        items, owners, base = [], [], 0
        for p in parts:
            items += p.items
            owners.append(p.owners + base)
            base += len(p.items)
        hashes = [p.hashes for p in parts] or [np.empty(0, np.uint64)]
        return cls(
            np.concatenate(hashes),
            np.concatenate(owners or [np.empty(0, np.int32)]),
            items,
            [n for p in parts for n in p.sizes],
        )

    def only(self, benchmarks: set[str]) -> NgramIndex:
        """The part of the index that came from these benchmarks."""
        keep = np.array([b in benchmarks for b, _ in self.items] or [False])[self.owners]
        return NgramIndex(self.hashes[keep], self.owners[keep], self.items, self.sizes)

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, ws: list[str], matches: int = 1) -> tuple[tuple[str, str], str] | None:
        """((benchmark, item), one of the shared n-grams' words) for the item that shares the most of `ws`'s
        n-grams, when it shares at least `matches` of them (all of its own, if it has fewer); else None."""
        if not len(self.hashes):
            return None
        wh, found = word_hashes(ws), {}  # owner -> (n-grams shared, where the first one starts, its length)
        for n in self.sizes:
            if len(ws) < n:
                continue
            hs = ngram_hashes(wh, n)
            at = np.flatnonzero(self._maybe(hs))  # most of a text's n-grams are in no benchmark: skip them at once
            hs, first = np.unique(hs[at], return_index=True)
            first = at[first]
            lo, hi = np.searchsorted(self.hashes, hs, "left"), np.searchsorted(self.hashes, hs, "right")
            for j in np.flatnonzero(hi > lo):
                for owner in set(self.owners[lo[j] : hi[j]].tolist()):
                    k, at, size = found.get(owner, (0, len(ws), n))
                    found[owner] = (k + 1, *min((at, size), (int(first[j]), n)))  # report the earliest
        ok = [(k, -o, at, size) for o, (k, at, size) in found.items() if k >= min(matches, self.totals[o])]
        if not ok:
            return None
        _, o, at, size = max(ok)
        return self.items[-o], " ".join(ws[at : at + size])

    def _maybe(self, hs: np.ndarray) -> np.ndarray:
        """Which of `hs` may be in the index: a bitmap of the hashes' top FILTER_BITS bits (8 MB; 1.2% of absent
        hashes pass at the registry's 790k solution n-grams). Two binary searches a hash into the whole index took
        0.9 ms a 12 KB trace."""
        top = (hs >> np.uint64(64 - FILTER_BITS)).astype(np.int64)
        if self._bits is None:
            at = (self.hashes >> np.uint64(64 - FILTER_BITS)).astype(np.int64)
            self._bits = np.zeros(1 << (FILTER_BITS - 3), np.uint8)
            np.bitwise_or.at(self._bits, at >> 3, (1 << (at & 7)).astype(np.uint8))
        return (self._bits[top >> 3] >> (top & 7).astype(np.uint8)) & 1 == 1

    def save(self, arrays: dict, prefix: str) -> None:
        """Into `arrays` for np.savez: the hashes in item order and each item's count (owners cost no bytes then)."""
        order = np.argsort(self.owners, kind="stable")
        counts = np.bincount(self.owners, minlength=len(self.items)).astype(np.int32)
        arrays |= {
            f"{prefix}_hashes": self.hashes[order],
            f"{prefix}_sizes": np.array(self.sizes, np.int32),
            f"{prefix}_counts": counts,
            f"{prefix}_common": self.common,
        }

    @classmethod
    def load(cls, arrays, prefix: str, items: list[tuple[str, str]]) -> NgramIndex:
        owners = np.repeat(np.arange(len(items), dtype=np.int32), arrays[f"{prefix}_counts"])
        index = cls(arrays[f"{prefix}_hashes"], owners, items, arrays[f"{prefix}_sizes"].tolist())
        index.common = arrays[f"{prefix}_common"]
        return index


def common_ngrams(benchmarks: dict[str, dict[str, str]], ngram: int, min_words: int, common: int) -> np.ndarray:
    """The n-gram hashes found in `common` or more distinct texts (a text published twice counts once)."""
    texts = {" ".join(ws): ws for t in benchmarks.values() for x in t.values() if len(ws := words(x)) >= min_words}
    per = [np.unique(ngram_hashes(word_hashes(ws), ngram)) for ws in texts.values()]
    values, counts = np.unique(np.concatenate(per or [np.empty(0, np.uint64)]), return_counts=True)
    return values[counts >= common]
