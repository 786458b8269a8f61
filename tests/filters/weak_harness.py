"""The harness as it was: candidate, tests and check() in one interpreter. Kept to prove the reward-hacking battery
bites: tests/filters/test_reward_hacking.py runs its attacks against this one and expects them to pass here.

What follows is the old docstring.

Before any candidate code runs it reads its job from fd 3 and closes it: the format, the tests or inputs, and a
nonce the host drew for this run. Every report it writes to stdout is one line that starts with the nonce, so
nothing the candidate prints can pass for one (filters/code.py says what the host trusts, and why).

    <nonce> <case> <status> <data>      e.g. "9f..e1 0 passed -", "9f..e1 3 ok [1, 2]", "9f..e1 -1 runtime_error -"

Standard library only, imported lazily: it runs under `python -S`, and each import costs every run (hence
try/except/pass here rather than contextlib.suppress).
"""

import builtins
import marshal
import os
import signal
import sys

MEMORY_EXIT = 86  # filters.sandbox.MEMORY_EXIT
JOB_FD = 3  # sandbox_boot.SECRET_FD


def normalize(text: str) -> str:
    """stdout as compared: trailing whitespace on each line and trailing blank lines do not count."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def status_of(e: BaseException) -> str:
    if isinstance(e, AssertionError):
        return "wrong_answer"
    if isinstance(e, MemoryError):
        return "memory_limit"
    return "runtime_error"  # SystemExit too: a program that exits before the tests end has not passed


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def humaneval(job: dict, src: str, report) -> None:
    """The program, then the test code in the same namespace (tests call helpers the prompt defined), then check."""
    ns = {"__name__": "solution", "__builtins__": builtins}  # not __main__: demo code under the guard stays out
    try:
        exec(compile(src, "solution.py", "exec"), ns)
        exec(compile(job["test"], "test.py", "exec"), ns)
        if job["entry_point"]:
            ns["check"](ns[job["entry_point"]])
    except BaseException as e:
        report(0, status_of(e), type(e).__name__)
    else:
        report(0, "passed")


def calls(job: dict, src: str, report) -> None:
    """f(*args) per case, or Solution().f(*args) as LeetCode and TACO write them; results go back as JSON."""
    import json

    ns = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(compile(src, "solution.py", "exec"), ns)
    except BaseException as e:
        return report(-1, status_of(e), type(e).__name__)
    name = job["fn_name"]
    for i, args in enumerate(job["inputs"]):
        try:
            cls = ns.get("Solution")
            fn = getattr(cls(), name) if isinstance(cls, type) and hasattr(cls, name) else ns[name]
            got = fn(*args) if isinstance(args, list) else fn(args)
        except BaseException as e:
            report(i, status_of(e), type(e).__name__)
            continue
        try:  # plain JSON values only: an object that says it equals anything never reaches the comparison
            report(i, "ok", json.dumps(got))
        except (TypeError, ValueError, RecursionError):
            report(i, "wrong_answer", "unserializable")


def stdio(job: dict, src: str, report) -> None:
    """Each input in a fresh process forked from this one, which never ran candidate code: a fresh module state."""
    import hashlib

    code = compile(src, "solution.py", "exec")
    for i, text in enumerate(job["inputs"]):
        status, out = one_case(code, text if isinstance(text, str) else "\n".join(text), job["output_bytes"])
        digest = hashlib.sha256(normalize(out.decode("utf-8", "replace")).encode()).hexdigest()
        report(i, status, digest if status == "ok" else "-")


def one_case(code, text: str, cap: int) -> tuple[str, bytes]:
    stdin = os.memfd_create("stdin")  # unnamed, any size, no deadlock against a program that never reads it
    write_all(stdin, text.encode())
    os.lseek(stdin, 0, os.SEEK_SET)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        run_child(code, stdin, w)
    os.close(w)
    os.close(stdin)
    out, over = read_capped(r, cap)
    if over:
        os.killpg(pid, signal.SIGKILL)
    os.close(r)
    _, st = os.waitpid(pid, 0)
    try:  # noqa: SIM105  (whatever it left in its process group must not run on into the next case)
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    code = os.waitstatus_to_exitcode(st)
    if over:
        return "output_limit", out
    if code == 0:
        return "ok", out
    if code == MEMORY_EXIT:
        return "memory_limit", out
    return ("timeout" if code == -signal.SIGXCPU else "runtime_error"), out


def run_child(code, stdin: int, out: int) -> None:
    status = 1
    try:
        os.setpgid(0, 0)
        os.dup2(stdin, 0)
        os.dup2(out, 1)
        os.close(stdin)
        os.close(out)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        main = type(sys)("__main__")
        sys.modules["__main__"] = main
        exec(code, main.__dict__)
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except MemoryError:
        status = MEMORY_EXIT
    except BaseException:
        import traceback

        traceback.print_exc()
    try:  # noqa: SIM105
        sys.stdout.flush()
    except BaseException:
        pass
    os._exit(status)


def read_capped(fd: int, cap: int) -> tuple[bytes, bool]:
    buf = bytearray()
    while chunk := os.read(fd, 1 << 16):
        buf += chunk
        if len(buf) > cap:
            return bytes(buf[:cap]), True
    return bytes(buf), False


def main() -> None:
    with open(JOB_FD, "rb") as f:  # read and closed before candidate code runs: the nonce lives on in memory only
        job = marshal.loads(f.read())
    nonce = job["nonce"]

    def report(case: int, status: str, data: str = "-") -> None:
        write_all(1, f"\n{nonce} {case} {status} {data}\n".encode())

    with open(os.path.join(os.path.dirname(__file__), "solution.py"), encoding="utf-8") as f:
        src = f.read()
    {"humaneval": humaneval, "calls": calls, "stdio": stdio}[job["format"]](job, src, report)
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105
            stream.flush()
        except BaseException:
            pass
    os._exit(0)  # not the candidate's atexit handlers or lingering threads


if __name__ == "__main__":
    main()
