"""The first code to run inside the sandbox: set the limits, give up root, then run the program.

`filters.sandbox` passes this file's text as `python -S -I -B -c <text> CONFIG`, CONFIG being the repr of a dict of
plain values. It runs under the sandboxed interpreter with the standard library only (`-S`: no site-packages, which
also saves the milliseconds site's .pth files cost on every start), and imports as little as it can for the same
reason: json, runpy and site would double the start time.
"""

import builtins
import marshal
import os
import resource
import sys

MEMORY_EXIT = 86  # a MemoryError nobody caught (kept equal to filters.sandbox.MEMORY_EXIT)
SECRET_FD = 3  # where a program finds what the host passed it privately (filters.code's harness reads it)
SIGKILL, SIGXCPU = 9, 24  # Linux's numbers: importing signal would import enum, milliseconds on every run
PR_SET_DUMPABLE = 4  # <linux/prctl.h>


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


def init(deadline: float, cpu_s: int) -> None:
    """Fork the program and, as pid 1 of the sandbox's pid namespace (bwrap --as-pid-1), after the uid switch, reap
    until it ends, then end with its status, which ends every process left in the namespace. Returns in the child.

    Being pid 1 ourselves, with the program's own uid, makes signals to pid 1 behave alike as root and as an
    ordinary user: the kernel drops what the namespace sends its init. (bwrap's own init stays root when we are
    root, so a program's kill(1, ...) failed as root and went through silently as a user: two verdicts.) A process
    of the same uid may open another's /proc/PID/fd/N, read its memory or ptrace it unless that one is
    non-dumpable, so before the program starts we make ourselves so (no_dump), and we keep neither the secret nor
    the program's stdout, lest it read the harness's nonce or write into its reports. The program starts only once
    all three are done, whenever the scheduler gets round to us. (It was forked before, so it stays dumpable as
    it would be anywhere.)

    The uid switch cleared the parent-death signal bwrap set, so we watch for the host ourselves: its end of our
    stderr closes when it ends or gives up on us (POLLERR here). At the host's own deadline (the same clock) we
    end the program whatever the host is doing: a host too busy to act on time does not let it run on."""
    gate, opened = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(opened)
        os.read(gate, 1)  # end of file once the init has closed its end, after the descriptors below
        os.close(gate)
        return
    import select
    import time

    os.dup2(2, 1)
    no_dump()
    for fd in dict.fromkeys((SECRET_FD, gate, opened)):  # in this order (the pipe may be fd 3 where no secret is)
        try:  # noqa: SIM105
            os.close(fd)
        except OSError:
            pass
    poll = select.poll()
    poll.register(os.pidfd_open(child), select.POLLIN)
    poll.register(1, 0)  # POLLERR and POLLHUP come unasked
    while True:
        for fd, _ in poll.poll(50):
            if fd == 1:
                os._exit(128 + SIGKILL)
        reap(child, cpu_s)  # a program that has ended is its own end, even if we look late
        if time.monotonic() >= deadline:
            os._exit(128 + SIGKILL)  # a SIGKILL past the deadline: the host reads a timeout


def no_dump() -> None:
    """PR_SET_DUMPABLE 0, failing closed. As root the uid switch has done it already (the kernel shows it: the
    files in a non-dumpable process's /proc folder, though not the folder, belong to root); as an ordinary user
    nothing else would, and a program of our uid could then open our descriptors, read our memory, or ptrace us and
    stop us at our own exit (PTRACE_O_TRACEEXIT), where SIGKILL no longer ends us and the namespace lives on. The
    program has no capability in bwrap's user namespace (CAP_SYS_PTRACE would override this). Called through
    _ctypes, the C half of ctypes: 0.5 ms a run as a user, where ctypes itself (struct, types, its endian module)
    costs 1.7 (Python 3.11 on a 2-core VM)."""
    if os.stat("/proc/self/stat").st_uid != os.getuid():
        return
    import _ctypes

    class Int(_ctypes._SimpleCData):
        _type_ = "i"

    class Function(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = Int

    prctl = Function(_ctypes.dlsym(_ctypes.dlopen(None), "prctl"))
    if prctl(PR_SET_DUMPABLE, 0) != 0 or os.stat("/proc/self/stat").st_uid == os.getuid():
        os.write(2, b"sandbox: the init cannot make itself non-dumpable\n")
        os._exit(70)


def reap(child: int, cpu_s: int) -> None:
    """Reap the orphans the namespace hands us (a zombie still counts against the process limit); once the program
    itself has ended, end with its status (a signal N reads 128 + N, as bwrap reports it). Only here is the program
    reaped: a wait for any child could take it, and a later wait for it alone would fail. A SIGKILL after its CPU
    time reached the soft limit is the hard limit's, after a program that ignored SIGXCPU: reported as SIGXCPU."""
    while (w := os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)) is not None:
        if w.si_pid != child:
            os.waitpid(w.si_pid, 0)
            continue
        cpu = cpu_seconds(child)  # while it is a zombie: its own time, its children's aside
        code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
        if code == -SIGKILL and cpu >= cpu_s:
            code = -SIGXCPU
        os._exit(128 - code if code < 0 else code)


def cpu_seconds(pid: int) -> float:
    """The CPU time a process used itself (utime + stime from /proc, where a zombie's stay until it is reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _exit(code=None):
    raise SystemExit(code)


def main() -> None:
    cfg = eval(sys.argv[1], {"__builtins__": {}})  # our own repr of numbers, strings and lists, from the host
    if cfg["secret_fd"] is not None and cfg["secret_fd"] != SECRET_FD:
        os.dup2(cfg["secret_fd"], SECRET_FD)
        os.close(cfg["secret_fd"])
    set_limits(cfg)
    drop_root(cfg["uid"], cfg["work"])
    if cfg.get("init"):
        init(cfg["deadline"], cfg["cpu_s"])
    os.chdir(cfg["work"])
    if cfg["argv"]:
        os.execvp(cfg["argv"][0], cfg["argv"])
    builtins.exit = builtins.quit = _exit  # site usually adds them, and programs call exit()
    path = os.path.join(cfg["box"], "main.py")
    sys.argv = [path]
    main = type(sys)("__main__")  # a real __main__ module, so pickle and multiprocessing find what it defines
    main.__file__ = path
    sys.modules["__main__"] = main
    if os.path.exists(path + "c"):  # main.pyc: the host's marshal of the code, compiled once there, not each run
        with open(path + "c", "rb") as f:
            code = marshal.loads(f.read())
    else:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec")
    try:
        exec(code, main.__dict__)
    except MemoryError:
        os.write(2, b"MemoryError\n")
        os._exit(MEMORY_EXIT)


if __name__ == "__main__":
    main()
