"""A labelled near-duplicate set, made reproducibly (fixed seed) from real texts, for choosing dedup's defaults.

Prompt-length bases: reasoning-gym problems from 14 families, HumanEval prompts and CHAMP problems. Response-length
bases: CHAMP's model answers (GPT-3.5, GPT-4, PaLM 2 and Llama 2 solving CHAMP problems) of 300+ words. Each pair is
(a, b, duplicate) with a `kind`:

duplicates (the same problem, or the same answer, in other words)
    edit_1 .. edit_30   character and word edits (typo, deletion, insertion, substitution) at 1-30% of the words;
                        numbers are never edited, so the problem stays the same
    reorder             sentences shuffled (texts of 3+ sentences)
    synonyms            common words swapped for synonyms ("find" -> "determine")
    format              case, whitespace and punctuation changed
    wrapper             prompts: another instruction around the problem ("Solve the following problem.")
    truncated           responses: the first 80% of the answer (a sample cut at max_tokens)
    one_number          responses: one number changed (a slip in the working; still the same answer text)
non-duplicates (a different problem, or a different answer, that shares boilerplate)
    numbers             prompts: every number changed. A math problem with other numbers is another problem with
                        another answer (reasoning-gym makes exactly these), so it is NOT a duplicate
    one_number_prompt   prompts: a single number changed: still another problem
    template            prompts: another problem of the same family / category (same template, other numbers or
                        entities); responses: another problem's answer by the same model in the same setting
    other_sample        responses: another model's answer to the same problem (kept only where difflib's word
                        ratio is under 0.5, so near-identical answers are not labelled different)

    .venv/bin/python benchmarks/near_duplicates.py [--out data/labelled/near_duplicates.jsonl]
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import re
from pathlib import Path

SEED = 0
FAMILIES = ["gsm_symbolic", "leg_counting", "fraction_simplification", "letter_counting", "number_sorting",
            "word_sorting", "base_conversion", "prime_factorization", "propositional_logic", "family_relationships",
            "time_intervals", "polynomial_equations", "decimal_arithmetic", "gcd"]  # fmt: skip
EDIT_RATES = (0.01, 0.05, 0.10, 0.20, 0.30)
SYNONYMS = {
    "find": "determine", "calculate": "compute", "total": "sum", "each": "every", "given": "provided",
    "answer": "result", "following": "below", "write": "give", "number": "quantity", "numbers": "values",
    "return": "output", "list": "sequence", "buys": "purchases", "bought": "purchased", "gets": "receives",
    "many": "much", "what": "which", "smallest": "least", "largest": "greatest", "show": "demonstrate",
    "problem": "question", "solve": "work out", "so": "thus", "then": "next", "we": "one", "get": "obtain",
    "have": "possess", "use": "employ", "need": "require", "first": "initially", "check": "verify",
}  # fmt: skip
PREFIXES = ["Solve the following problem.\n\n", "Question: ", "Please answer carefully. ", "Problem:\n"]
SUFFIXES = ["\nPut your final answer within \\boxed{}.", " Show your work.", "\nAnswer:", " Think step by step."]
NUMBER = re.compile(r"\d+")
SENTENCE = re.compile(r"(?<=[.?!])\s+")


def edit(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    """Edit about `rate` of the words (never a number): a typo, a deletion, an insertion or a substitution."""
    parts = re.split(r"(\s+)", text)
    for i in range(0, len(parts), 2):
        w = parts[i]
        if not w or any(c.isdigit() for c in w) or rng.random() >= rate:
            continue
        op = rng.choice(["typo", "delete", "insert", "replace"])
        if op == "typo":
            parts[i] = typo(w, rng)
        elif op == "delete":
            parts[i] = ""
        elif op == "insert":
            parts[i] = f"{w} {rng.choice(vocab)}"
        else:
            parts[i] = rng.choice(vocab)
    return "".join(parts)


def typo(w: str, rng: random.Random) -> str:
    k = rng.randrange(len(w))
    c = rng.choice("abcdefghijklmnopqrstuvwxyz")
    return rng.choice(
        [
            w[:k] + w[k + 1 :],
            w[:k] + c + w[k:],
            w[:k] + c + w[k + 1 :],
            w[:k] + w[k + 1 : k + 2] + w[k : k + 1] + w[k + 2 :],
        ]
    )


def synonyms(text: str, rng: random.Random) -> str:
    def swap(m: re.Match) -> str:
        w = m.group(0)
        s = SYNONYMS.get(w.lower())
        if s is None or rng.random() < 0.3:
            return w
        return s.capitalize() if w[0].isupper() else s

    return re.sub(r"[A-Za-z]+", swap, text)


def reformat(text: str, rng: random.Random) -> str:
    text = text.lower() if rng.random() < 0.5 else text.upper()
    text = re.sub(r"\s+", lambda m: rng.choice([" ", "  ", "\n", " \n "]), text)
    return re.sub(r"[,;:]", lambda m: rng.choice(["", " ,", ";", m.group(0)]), text)


def reorder(text: str, rng: random.Random) -> str | None:
    sents = SENTENCE.split(text.strip())
    if len(sents) < 3:
        return None
    shuffled = sents[:]
    while shuffled == sents:
        rng.shuffle(shuffled)
    return " ".join(shuffled)


def change_numbers(text: str, rng: random.Random, only_one: bool) -> str | None:
    spots = list(NUMBER.finditer(text))
    if not spots:
        return None
    chosen = {rng.randrange(len(spots))} if only_one else set(range(len(spots)))

    def other(n: str) -> str:
        v = int(n)
        new = v
        while new == v:
            new = rng.randint(max(0, v - 5 - v // 2), v + 5 + v // 2)
        return str(new)

    out, last = [], 0
    for i, m in enumerate(spots):
        out += [text[last : m.start()], other(m.group(0)) if i in chosen else m.group(0)]
        last = m.end()
    return "".join(out + [text[last:]])


def prompt_bases(rng: random.Random) -> list[dict]:
    """{id, group, text}: `group` holds problems of one template (reasoning-gym family, CHAMP category)."""
    import reasoning_gym

    from filters.decontam import champ_problems, humaneval_problems

    out = []
    for name in FAMILIES:
        ds = reasoning_gym.create_dataset(name, size=12, seed=SEED)
        out += [{"id": f"{name}/{i}", "group": name, "math": True, "text": ds[i]["question"]} for i in range(12)]
    he = sorted(humaneval_problems().items())
    out += [{"id": k, "group": "humaneval", "math": False, "text": t} for k, t in rng.sample(he, 30)]
    champ = sorted(champ_problems().items())
    out += [{"id": k, "group": k.split("_")[1], "math": True, "text": t} for k, t in rng.sample(champ, 40)]
    return out


def champ_answers() -> list[dict]:
    """CHAMP's model answers: {problem, category, setting, model, text}."""
    import champ_dataset

    out = []
    for pid, p in champ_dataset.load("v0").problems.items():
        for name, conv in p.conversations.items():
            first = next((m for m in conv.messages if m.role.startswith("Model.") and m.text), None)
            if first is not None:
                model, setting = name.split("|")
                out.append({"problem": pid, "category": p.category, "setting": setting, "model": model,
                            "text": first.text})  # fmt: skip
    return out


def prompt_pairs(rng: random.Random) -> list[dict]:
    bases = prompt_bases(rng)
    vocab = sorted({w for b in bases for w in re.findall(r"[a-z]{3,}", b["text"].lower())})
    by_group: dict[str, list[dict]] = {}
    for b in bases:
        by_group.setdefault(b["group"], []).append(b)
    pairs = []
    for b in bases:
        a, t = b["id"], b["text"]
        variants = [(f"edit_{round(r * 100)}", True, edit(t, r, rng, vocab)) for r in EDIT_RATES]
        variants += [("reorder", True, reorder(t, rng)), ("synonyms", True, synonyms(t, rng)),
                     ("format", True, reformat(t, rng)),
                     ("wrapper", True, rng.choice(PREFIXES) + t + rng.choice(SUFFIXES))]  # fmt: skip
        if b["math"]:
            variants += [("numbers", False, change_numbers(t, rng, False)),
                         ("one_number_prompt", False, change_numbers(t, rng, True))]  # fmt: skip
        others = [o for o in by_group[b["group"]] if o["text"] != t]
        variants.append(("template", False, rng.choice(others)["text"]))
        pairs += [{"length": "prompt", "kind": k, "duplicate": d, "base": a, "a": t, "b": v}
                  for k, d, v in variants if v is not None and v != t]  # fmt: skip
    return pairs


def response_pairs(rng: random.Random, n: int = 80) -> list[dict]:
    answers = champ_answers()
    long = [x for x in answers if len(x["text"].split()) >= 300]
    bases = rng.sample(long, n)
    vocab = sorted({w for b in bases for w in re.findall(r"[a-z]{3,}", b["text"].lower())})
    pairs = []
    for b in bases:
        t = b["text"]
        words = t.split(" ")
        variants = [(f"edit_{round(r * 100)}", True, edit(t, r, rng, vocab)) for r in EDIT_RATES]
        variants += [("reorder", True, reorder(t, rng)), ("synonyms", True, synonyms(t, rng)),
                     ("format", True, reformat(t, rng)),
                     ("truncated", True, " ".join(words[: int(len(words) * 0.8)])),
                     ("one_number", True, change_numbers(t, rng, True))]  # fmt: skip
        same_setting = [x for x in answers if x["model"] == b["model"] and x["setting"] == b["setting"]
                        and x["category"] == b["category"] and x["problem"] != b["problem"]]  # fmt: skip
        variants.append(("template", False, rng.choice(same_setting)["text"]))
        samples = [x for x in answers if x["problem"] == b["problem"] and x["model"] != b["model"]]
        for x in rng.sample(samples, min(len(samples), 6)):
            if difflib.SequenceMatcher(None, t.split(), x["text"].split()).ratio() < 0.5:
                variants.append(("other_sample", False, x["text"]))
                break
        key = f"{b['problem']}|{b['model']}|{b['setting']}"
        pairs += [{"length": "response", "kind": k, "duplicate": d, "base": key, "a": t, "b": v}
                  for k, d, v in variants if v is not None and v != t]  # fmt: skip
    return pairs


def streams(per_family: int = 300) -> dict[str, list[str]]:
    """Distinct problems (or answers to distinct problems) in the order a run would meet them: every removal is a
    false one. Prompts: reasoning-gym families, HumanEval, CHAMP; responses: each model's 0-shot CHAMP answers."""
    import reasoning_gym

    from filters.decontam import champ_problems, humaneval_problems

    out = {}
    for name in FAMILIES + ["basic_arithmetic", "chain_sum", "simple_equations"]:
        ds = reasoning_gym.create_dataset(name, size=per_family, seed=SEED + 1)
        out[name] = [ds[i]["question"] for i in range(per_family)]
    out["humaneval"] = list(humaneval_problems().values())
    out["champ"] = list(champ_problems().values())
    for a in champ_answers():
        if a["setting"] == "0-Shot":
            out.setdefault(f"answers {a['model']}", []).append(a["text"])
    return out


def make(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    pairs = prompt_pairs(rng) + response_pairs(rng)
    return [{"id": i} | p for i, p in enumerate(pairs)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("data/labelled/near_duplicates.jsonl"))
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    pairs = make(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    print(f"{len(pairs)} pairs -> {args.out}")


if __name__ == "__main__":
    main()
