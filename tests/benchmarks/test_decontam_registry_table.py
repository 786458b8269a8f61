"""benchmarks/decontam_registry.py on sets a package ships (CHAMP leaked, HumanEval clean): its tables and rates."""

from __future__ import annotations

from conftest import number, run_benchmark, tables


def test_decontam_registry_prints_recall_and_false_positives():
    out = run_benchmark("decontam_registry.py", "--leaks", "champ", "--clean", "humaneval:test", "--limit", "40")
    recall, clean = tables(out)[:2]
    assert [r[0] for r in recall[1:]] == ["whitespace", "latex", "sentence", "all three", "solution in a response"]
    for rewrite, problems, caught, rate in recall[1:]:
        assert int(problems) == 40 and int(caught) >= 36 and number(rate) >= 90, rewrite  # CHAMP rewritten: found
    [(name, problems, prompt_hits, _, solution_hits, _)] = clean[1:]
    assert (name, problems, prompt_hits, solution_hits) == ("humaneval:test", "40", "0", "0")
    assert out.rstrip().endswith("none")  # no hit to list
