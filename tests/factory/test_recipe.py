"""Recipes: loading, refusing every kind of mistake at once, --set overrides, the job's hash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from factory import recipe as recipes
from factory.errors import FactoryError

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "arithmetic_demo.yaml"
FILTER_MATH = DEMO.with_name("filter_math.yaml")
BASE = {"source": {"kind": "reasoning_gym", "name": "basic_arithmetic", "size": 4}}


def _write(tmp_path: Path, raw: dict, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def _problems(tmp_path: Path, raw: dict) -> str:
    with pytest.raises(FactoryError) as e:
        recipes.load(_write(tmp_path, raw))
    return str(e.value)


def _merge(**sections) -> dict:
    raw = {k: dict(v) for k, v in BASE.items()}
    for k, v in sections.items():
        raw[k] = raw.get(k, {}) | v if isinstance(v, dict) else v
    return raw


def test_demo_recipe_loads():
    r = recipes.load(DEMO)
    assert r.name == "arithmetic_demo"
    assert r.source.kind == "reasoning_gym" and r.source.name == "basic_arithmetic" and r.source.size == 48
    assert r.source.config["operators"] == ["+", "-"]
    assert r.rejection.max_samples == 8 and r.rejection.round_size == 1 and r.rejection.batch_prompts == 0
    assert r.sampling.temperature == 0.7 and r.prompt.think is False
    assert r.verify.timeout == 10.0 and isinstance(r.verify.timeout, float)  # an int where a number goes
    assert r.filters == ["format", "verify"]
    assert yaml.safe_load(r.text)["sampling"]["max_tokens"] == 64  # the resolved YAML is kept


def test_filter_recipe_needs_no_source():
    r = recipes.load(FILTER_MATH, needs_source=False)
    assert r.source is None and r.name == "filter_math"
    assert r.filters == ["format", "verify", "readability", "language", "dedup"]
    assert r.verify.workers == 2 and r.dedup.field == "response" and r.language.target == "en"
    assert r.model == recipes.Recipe().model  # model and sampling keep their defaults: a filter does not sample
    assert len(r.hash()) == 16


def test_a_recipe_without_source_cannot_generate(tmp_path):
    with pytest.raises(FactoryError) as e:
        recipes.load(FILTER_MATH)  # as factory generate loads it
    msg = str(e.value)
    assert msg.startswith(f"{FILTER_MATH}: 1 problem(s):\n  - source: missing; factory generate needs prompts")
    assert "source: {kind: reasoning_gym, name: basic_arithmetic}" in msg and "only factory filter" in msg
    assert "source: missing" in _problems(tmp_path, {"source": None})  # written out as null: the same


def test_a_filter_recipe_is_still_checked_whole(tmp_path):
    raw = {"filters": ["format", "verifyy"], "colour": "red", "dedup": {"field": "answer"}, "verify": {"workers": -1}}
    with pytest.raises(FactoryError) as e:
        recipes.load(_write(tmp_path, raw), needs_source=False)
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'r.yaml'}: 4 problem(s):") and "source: missing" not in msg
    for field in ("filters[1]", "colour", "dedup.field", "verify.workers"):
        assert f"  - {field}:" in msg
    with pytest.raises(FactoryError) as e:
        recipes.load(_write(tmp_path, raw))  # for generate: the missing source is one more problem, not the only one
    assert str(e.value).startswith(f"{tmp_path / 'r.yaml'}: 5 problem(s):") and "  - source: missing" in str(e.value)
    # a source given to a filter recipe is checked like any other section
    with pytest.raises(FactoryError, match=r"source.kind: 'csv' is not one of"):
        recipes.load(_write(tmp_path, {"source": {"kind": "csv"}}), needs_source=False)


def test_name_defaults_to_the_file_stem(tmp_path):
    assert recipes.load(_write(tmp_path, BASE, "my_job.yaml")).name == "my_job"


@pytest.mark.parametrize(
    "raw, field",
    [
        (_merge(colour="red"), "colour: unknown key"),
        (_merge(sampling={"temprature": 0.5}), "sampling.temprature: unknown key"),
        (_merge(source={"colour": 1}), "source.colour: unknown key"),
        (_merge(sampling={"temperature": "hot"}), "sampling.temperature: 'hot' is not a number"),
        (_merge(rejection={"max_samples": 2.5}), "rejection.max_samples: 2.5 is not an integer"),
        (_merge(prompt={"think": "yes"}), "prompt.think: 'yes' is not true/false"),
        (_merge(rejection={"round_size": True}), "rejection.round_size: True is not an integer"),
        (_merge(filters="format"), "filters: 'format' is not a list of a string"),
        (_merge(sampling=[1, 2]), "sampling: expected a mapping"),
        (_merge(source={"kind": "csv"}), "source.kind: 'csv' is not one of"),
        (_merge(filters=["format", "dedupe"]), "filters[1]: 'dedupe' is not a filter; allowed: format, verify"),
        (_merge(sampling={"top_p": 0}), "sampling.top_p: 0.0 must be in (0, 1]"),
        (_merge(rejection={"max_samples": 2, "round_size": 4}), "rejection.max_samples: 2 must be >= round_size"),
        (_merge(prompt={"template": "no slot"}), "prompt.template: 'no slot' must contain {prompt}"),
        (_merge(source={"kind": "jsonl", "name": None}), "source.path: required for source.kind jsonl"),
        (_merge(source={"name": None}), "source.name: required for reasoning_gym"),
        (_merge(verify={"timeout": 0}), "verify.timeout: 0.0 must be > 0"),
        (_merge(engine={"replay_tokens_per_s": -1}), "engine.replay_tokens_per_s: -1.0 must be >= 0 (0: at once)"),
    ],
)
def test_refused(tmp_path, raw, field):
    assert field in _problems(tmp_path, raw)


def test_unknown_family_suggests_a_near_name(tmp_path):
    msg = _problems(tmp_path, _merge(source={"name": "basic_arithmetc"}))  # a typo
    assert "source.name: 'basic_arithmetc' is not a reasoning-gym task family" in msg
    assert "did you mean basic_arithmetic" in msg
    msg = _problems(tmp_path, _merge(source={"name": "arithmetic"}))  # a part of the name
    assert "did you mean" in msg and "basic_arithmetic" in msg
    assert "see reasoning_gym.factory.DATASETS" in _problems(tmp_path, _merge(source={"name": "zzzzqqqq"}))


def test_mixing_families_keys_config_by_family(tmp_path):
    raw = _merge(source={"name": ["basic_arithmetic", "chain_sum"], "config": {"min_terms": 2}})
    assert "source.config.min_terms: mixing families, config is keyed by family" in _problems(tmp_path, raw)
    raw = _merge(source={"name": ["basic_arithmetic", "chain_sum"], "config": {"chain_sum": {"min_terms": 2}}})
    assert recipes.load(_write(tmp_path, raw)).source.name == ["basic_arithmetic", "chain_sum"]


def test_every_problem_is_reported_at_once(tmp_path):
    raw = _merge(
        colour="red",  # unknown top-level key
        sampling={"temperature": "hot", "seeed": 1},  # wrong type, unknown nested key
        rejection={"max_samples": 2.5},
        source={"name": "basic_arithmetc"},  # unknown family
        filters=["format", "dedupe"],  # unknown filter
        engine={"kind": "tgi"},
        language={"scope": "summary"},  # a rule of the section itself
    )
    msg = _problems(tmp_path, raw)
    assert msg.startswith(f"{tmp_path / 'r.yaml'}: 8 problem(s):")
    for field in ("colour", "sampling.temperature", "sampling.seeed", "rejection.max_samples", "source.name",
                  "filters[1]", "engine.kind", "language"):  # fmt: skip
        assert f"  - {field}:" in msg


def test_greedy_sampling_draws_one_sample(tmp_path):
    raw = _merge(sampling={"temperature": 0})
    assert "sampling.temperature: 0 is greedy" in _problems(tmp_path, raw)
    raw = _merge(sampling={"temperature": 0}, rejection={"max_samples": 1, "round_size": 1})
    assert recipes.load(_write(tmp_path, raw)).sampling.temperature == 0


def test_set_overrides(tmp_path):
    sets = ["sampling.temperature=0.9", "rejection.max_samples=12", "prompt.think=true", "filters=[format]",
            "source.config.max_terms=3", "prompt.system=Be brief."]  # fmt: skip
    r = recipes.load(DEMO, sets)
    assert r.sampling.temperature == 0.9 and r.rejection.max_samples == 12
    assert r.prompt.think is True and r.filters == ["format"]
    assert r.source.config["max_terms"] == 3 and r.source.config["min_terms"] == 2  # the rest of config stays
    assert r.prompt.system == "Be brief."
    assert yaml.safe_load(r.text)["sampling"]["temperature"] == 0.9  # stored with the run as resolved

    r = recipes.load(_write(tmp_path, BASE), ["engine.kind=openai", "sampling.max_tokens=7"])  # a new section
    assert r.engine.kind == "openai" and r.sampling.max_tokens == 7
    assert r.sampling.temperature == recipes.SamplingConfig().temperature


@pytest.mark.parametrize(
    "item, says",
    [
        ("sampling.temperature", "expected key=value"),
        ("=0.5", "expected key=value"),
        ("model.name=x", "model is not a section"),
        ("sampling.temperature.low=1", "temperature is not a section"),
        ("filters=[format", "is not valid YAML"),
    ],
)
def test_malformed_override(item, says):
    with pytest.raises(FactoryError, match="--set") as e:
        recipes.load(DEMO, [item])
    assert says in str(e.value)


def test_override_is_validated(tmp_path):
    with pytest.raises(FactoryError, match=r"sampling.temperature: 'hot' is not a number"):
        recipes.load(DEMO, ["sampling.temperature=hot"])
    with pytest.raises(FactoryError, match=r"rejection.bogus: unknown key"):
        recipes.load(DEMO, ["rejection.bogus=1"])


def test_missing_or_bad_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FactoryError, match="recipe not found") as e:
        recipes.load(missing)
    assert str(missing) in str(e.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [unclosed\n")
    with pytest.raises(FactoryError, match="not valid YAML") as e:
        recipes.load(bad)
    assert str(bad) in str(e.value)
    bad.write_text("- a\n- list\n")
    with pytest.raises(FactoryError, match="a recipe is a mapping of settings, got list"):
        recipes.load(bad)


def test_recipe_file_must_be_utf8(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + DEMO.read_bytes())  # a UTF-8 byte-order mark (Notepad) is fine
    assert recipes.load(path).hash() == recipes.load(DEMO).hash()
    path.write_bytes(DEMO.read_text().encode("utf-16"))
    with pytest.raises(FactoryError, match=re.escape(f"{path}:1: the file is UTF-16")):
        recipes.load(path)
    path.write_bytes(b"name: caf\xe9\nfilters: [format]\n")
    with pytest.raises(FactoryError, match=re.escape(f"{path}:1: not UTF-8 (byte 0xe9 at column 10)")):
        recipes.load(path)


def test_hash_identifies_the_job(tmp_path):
    h = recipes.load(DEMO).hash()
    assert len(h) == 16 and h == recipes.load(DEMO).hash()
    copy = tmp_path / "arithmetic_demo.yaml"
    copy.write_text(DEMO.read_text() + "\n# a comment changes nothing\n")
    assert recipes.load(copy).hash() == h  # same content, another file
    assert recipes.load(DEMO, ["sampling.temperature=0.8"]).hash() != h
    assert recipes.load(DEMO, ["sampling.temperature=0.7"]).hash() == h  # the same value as the file
    assert recipes.load(DEMO, ["rejection.max_samples=9"]).hash() != h
    assert recipes.load(DEMO, ["verify.workers=4"]).hash() == h  # how fast, not what
    assert recipes.load(DEMO, ["rejection.fill_engine=false"]).hash() == h  # how rounds are sized at the end
