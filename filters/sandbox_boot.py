"""The first code to run inside the sandbox: set the limits, give up root, then run the program.

`filters.sandbox` passes this file's text as `python -S -I -B -c <text> CONFIG`, CONFIG being the repr of a dict of
plain values. It runs under the sandboxed interpreter with the standard library only (`-S`: no site-packages, which
also saves the milliseconds site's .pth files cost on every start), and imports as little as it can for the same
reason: json, runpy and site would double the start time.
"""

import builtins
import os
import resource
import sys

MEMORY_EXIT = 86  # a MemoryError nobody caught (kept equal to filters.sandbox.MEMORY_EXIT)
SECRET_FD = 3  # where a program finds what the host passed it privately (filters.code's harness reads it)


def set_limits(cfg: dict) -> None:
    mb = 1 << 20
    cpu = cfg["cpu_s"]
    # CPU: SIGXCPU at the soft limit kills; the hard limit a second later catches a program that handles it
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for res, value in (
        (resource.RLIMIT_AS, cfg["memory_mb"] * mb),
        (resource.RLIMIT_FSIZE, cfg["file_mb"] * mb),
        (resource.RLIMIT_NOFILE, cfg["open_files"]),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(res, (value, value))
    if cfg["processes"]:  # only where it counts this sandbox's processes alone (see filters.sandbox)
        resource.setrlimit(resource.RLIMIT_NPROC, (cfg["processes"], cfg["processes"]))


def drop_root(uid: int | None, work: str) -> None:
    """As root, become a fresh unprivileged uid: the kernel exempts uid 0 from RLIMIT_NPROC, and this also drops
    every capability bwrap left us."""
    if not uid or os.getuid() != 0:
        return
    os.chown(work, uid, uid)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid):  # never run the program as root by accident
        os._exit(70)


def _exit(code=None):
    raise SystemExit(code)


def main() -> None:
    cfg = eval(sys.argv[1], {"__builtins__": {}})  # our own repr of ints, strings and lists, from the host
    if cfg["secret_fd"] is not None and cfg["secret_fd"] != SECRET_FD:
        os.dup2(cfg["secret_fd"], SECRET_FD)
        os.close(cfg["secret_fd"])
    set_limits(cfg)
    drop_root(cfg["uid"], cfg["work"])
    os.chdir(cfg["work"])
    if cfg["argv"]:
        os.execvp(cfg["argv"][0], cfg["argv"])
    builtins.exit = builtins.quit = _exit  # site usually adds them, and programs call exit()
    path = os.path.join(cfg["box"], "main.py")
    sys.argv = [path]
    main = type(sys)("__main__")  # a real __main__ module, so pickle and multiprocessing find what it defines
    main.__file__ = path
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    try:
        exec(code, main.__dict__)
    except MemoryError:
        os.write(2, b"MemoryError\n")
        os._exit(MEMORY_EXIT)


if __name__ == "__main__":
    main()
