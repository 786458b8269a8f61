"""MinHash dedup: the first seen is kept, near-copies are dropped, different problems are not, and the index
survives a trip through the store's rows."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash, MinHashLSH

from filters.dedup import Bands, DedupConfig, Deduper, shingles
from filters.dedup_index import Index

PROMPT = (
    "A carpenter works for 2 weeks every month and for 6 days every week. If he gets paid 195 pounds every day, "
    "how much does he earn if he works for a year? Give the result as your final answer. Do not include units."
)
VOCAB = [
    *(
        [
            "we",
            "the",
            "total",
            "is",
            "so",
            "next",
            "add",
            "check",
            "result",
            "step",
            "wait",
            "let",
            "me",
            "verify",
            "again",
            "number",
            "sum",
            "both",
            "sides",
        ]
    ),
    *(
        [
            "equation",
            "term",
            "factor",
            "prime",
            "divide",
            "multiply",
            "square",
            "root",
            "value",
            "answer",
            "hmm",
            "okay",
            "first",
            "then",
        ]
    ),
]


def trace(seed: int, n: int = 400) -> str:
    """A reasoning-trace-like text of n words (varied, so that its 3-grams are mostly distinct)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) if i % 7 else str(rng.randint(2, 999)) for i in range(n))


TRACE = trace(0)


def edited(text: str, every: int) -> str:
    """A copy with one word in `every` misspelt (a letter added): 1/every of the words edited."""
    ws = text.split(" ")
    return " ".join(w + "q" if i % every == every // 2 else w for i, w in enumerate(ws))


def test_first_seen_is_kept_and_copies_are_dropped():
    d = Deduper(DedupConfig(field="prompt"))
    assert d.check("p1", PROMPT).accepted
    v = d.check("p2", PROMPT.upper().replace(",", ""))
    assert (v.accepted, v.reason) == (False, "near_duplicate")
    assert v.scores["prompt_duplicate_of"] == "p1"
    assert v.scores["prompt_jaccard"] == 1.0
    assert len(d) == 1  # the duplicate is not indexed


def test_five_percent_edited_copy_is_caught():
    copy = edited(TRACE, 20)
    assert copy != TRACE
    d = Deduper(DedupConfig(field="response"))
    assert d.check("c1", TRACE).accepted
    v = d.check("c2", copy)
    assert v.reason == "near_duplicate"
    assert 0.6 <= v.scores["response_jaccard"] < 1


def test_same_template_other_numbers_is_another_problem():
    d = Deduper(DedupConfig(field="prompt"))
    assert d.check("p1", PROMPT).accepted
    assert d.check("p2", PROMPT.replace("195", "210")).accepted
    other = "Find the prime factorization of 139. Write the factors separated by x (for 12: 2 x 2 x 3)."
    assert d.check("p3", other).accepted
    assert d.check("p4", other.replace("139", "980")).accepted
    # without match_numbers the shared wording decides
    loose = Deduper(DedupConfig(field="prompt", match_numbers=False))
    loose.check("p1", PROMPT)
    assert loose.check("p2", PROMPT.replace("195", "210")).reason == "near_duplicate"


def test_operators_and_logic_symbols_count():
    d = Deduper(DedupConfig(field="prompt", match_numbers=False))
    d.check("a", "Is (P ∨ Q) → R valid?")
    assert d.check("b", "Is (P ∧ Q) → R valid?").accepted
    assert d.check("c", "is P ∨ Q → R valid").reason == "near_duplicate"


def test_rechecking_a_known_key_is_not_its_own_duplicate():
    d = Deduper()
    assert d.check("p1", PROMPT).accepted
    assert d.check("p1", PROMPT).accepted  # another candidate of the same prompt, or a resumed run
    assert d.check_many([("p1", PROMPT), ("p1", PROMPT)]) == [d.check("p1", PROMPT)] * 2
    assert len(d) == 1 and len(d.export_new()) == 1


def test_batch_keeps_the_first_of_a_batch():
    d = Deduper()
    vs = d.check_many([("a", PROMPT), ("b", PROMPT + " Thanks!"), ("c", "Something else entirely, about cats.")])
    assert [v.accepted for v in vs] == [True, False, True]
    assert vs[1].scores["prompt_duplicate_of"] == "a"
    assert [r["key"] for r in d.export_new()] == ["a", "c"]
    assert d.export_new() == []  # only what is new since the last export


def test_insert_false_only_asks():
    d = Deduper()
    assert d.check("a", PROMPT, insert=False).accepted
    assert len(d) == 0


def test_empty_text_is_kept_and_not_indexed():
    d = Deduper()
    assert d.check("a", "").accepted and d.check("b", "  ...  ").accepted
    assert len(d) == 0


def test_persistence_round_trip():
    cfg = DedupConfig(field="response")
    d = Deduper(cfg)
    texts = [trace(i) for i in range(50)]
    assert all(v.accepted for v in d.check_many((f"c{i}", t) for i, t in enumerate(texts)))
    rows = d.export_new()
    assert {r["scope"] for r in rows} == {cfg.scope}
    assert all(isinstance(r["signature"], bytes) and len(r["signature"]) == 4 * cfg.num_perm for r in rows)

    fresh = Deduper(cfg)
    assert fresh.load([(r["key"], r["signature"]) for r in rows]) == 50
    assert fresh.load(rows) == 0  # loading twice adds nothing
    v = fresh.check("new", edited(texts[7], 20))
    assert (v.reason, v.scores["response_duplicate_of"]) == ("near_duplicate", "c7")
    assert fresh.check("c7", texts[7]).accepted  # a stored key is itself
    assert fresh.export_new() == []  # loaded rows are not new


def test_load_rejects_signatures_of_another_size():
    with pytest.raises(ValueError, match="128-value"):
        Deduper().load([("k", b"\0" * 16)])


def test_signature_is_datasketch_minhash():
    cfg = DedupConfig(ngram=3)
    sig = Deduper(cfg).signatures([PROMPT])[0]
    m = MinHash(cfg.num_perm, seed=cfg.seed, hashfunc=int)
    m.update_batch(shingles(PROMPT, cfg.ngram, cfg.numbers).tolist())
    assert np.array_equal(m.hashvalues, sig)


@pytest.mark.parametrize("flush_at", [1 << 20, 64])
def test_band_index_finds_what_minhashlsh_finds(tmp_path, flush_at):
    """The index's candidates are MinHashLSH.query's, from memory alone and from runs written to files (every 64
    entries: most of the 200 texts are in files, read back through their filters and blocks)."""
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, (400, 128), dtype=np.uint32)
    sigs[1::2] = sigs[::2]
    noise = rng.random(sigs[1::2].shape) < rng.uniform(0.1, 0.7, (200, 1))
    sigs[1::2][noise] = rng.integers(0, 2**32, noise.sum(), dtype=np.uint32)
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    bands = Bands(lsh.b, lsh.r)
    index = Index(lsh.b * lsh.r, tmp_path, flush_at)
    hs = bands.hashes(sigs)
    for i in range(0, 400, 2):
        lsh.insert(i, LeanMinHash(seed=1, hashvalues=sigs[i], scheme="affine32"))
        index.add([f"k{i}"], sigs[i : i + 1], hs[i : i + 1])
    assert (len(index.runs) > 20) == (flush_at == 64)
    near = index.near(hs[1::2])
    for j, i in enumerate(range(1, 400, 2)):
        assert set(lsh.query(LeanMinHash(seed=1, hashvalues=sigs[i], scheme="affine32"))) == {2 * r for r in near[j]}
    assert index.find(["k0", "k398", "k1", "k3990"]) == [0, 199, None, None]
    assert index.key(7) == "k14" and np.array_equal(index.signatures([7])[0], sigs[14, : lsh.b * lsh.r])


def test_a_deduper_whose_index_is_in_files_gives_the_same_verdicts(tmp_path):
    """The same texts through an index that keeps everything in memory and one that writes a run every 64 entries
    (2 texts): the same verdicts, reasons and scores; its folder goes with it."""
    cfg = DedupConfig(field="response")
    texts = [trace(i % 30) if i % 4 else edited(trace(i % 30), 20) for i in range(90)]
    items = [(f"c{i}", t) for i, t in enumerate(texts)]
    small = Deduper(cfg, tmp_path)
    small.index.flush_at = 64
    got = [small.check_many(items[i : i + 4]) for i in range(0, 90, 4)]
    big = Deduper(cfg)
    want = [big.check_many(items[i : i + 4]) for i in range(0, 90, 4)]
    assert got == want and sum(not v.accepted for vs in got for v in vs) > 30
    assert len(small.index.runs) > 5 and len(list(tmp_path.iterdir())) == 1
    assert "c1" in small and "c0" in small and len(small) == len(big)
    del small
    assert list(tmp_path.iterdir()) == []


def test_config_problems_name_the_field():
    assert DedupConfig().problems() == []
    bad = DedupConfig(field="answer", ngram=0, threshold=1.5).problems()
    assert [p.split(":")[0] for p in bad] == ["dedup.field", "dedup.ngram", "dedup.threshold"]
    assert DedupConfig(field="prompt").scope != DedupConfig(field="prompt", ngram=5).scope
