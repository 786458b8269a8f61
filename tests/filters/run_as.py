"""Run the verifier as an unprivileged uid, as anyone without root runs the factory (bubblewrap then makes a user
namespace): on a world-readable copy of the stdlib-only modules it needs, with an interpreter that uid can run."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from filters.sandbox import _interpreter

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
MODES = ["root", "user"] if os.geteuid() == 0 else ["user"]
UID = 47_123  # an unprivileged uid with no account: nothing to create or clean up
# what verify_code needs
STDLIB_ONLY = ["__init__", "base", "answer", "code", "code_harness", "sandbox", "sandbox_boot"]


@contextlib.contextmanager
def copy(files: dict[str, str], harness: str | None = None):
    """A temporary folder anyone can read: the filters package (`harness` in place of code_harness.py) and `files`
    (name -> text) beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp, "filters")
        pkg.mkdir()
        for name in STDLIB_ONLY:
            shutil.copy(ROOT / "filters" / f"{name}.py", pkg)
        if harness is not None:
            Path(pkg, "code_harness.py").write_text(harness)
        for name, text in files.items():
            Path(tmp, name).write_text(text)
        os.chmod(tmp, 0o755)
        for p in [pkg, *pkg.iterdir(), *(Path(tmp, name) for name in files)]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        yield Path(tmp)


def command(mode: str, script: str) -> list[str]:
    """The command that runs `script` (in a folder from `copy`, with that folder as PYTHONPATH) as root or as UID."""
    if mode == "root":
        return [_interpreter(), "-S", script]
    python = next((p for p in (_interpreter(), "/usr/bin/python3") if _runs_as_user(p)), None)
    assert python, f"no Python interpreter that uid {UID} can run (tried {_interpreter()} and /usr/bin/python3)"
    return [*_setpriv(), python, "-S", script]


def env(folder: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(folder)}


def _setpriv() -> list[str]:
    return ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--inh-caps=-all"]


def _runs_as_user(python: str) -> bool:
    try:
        return subprocess.run([*_setpriv(), python, "-c", "pass"], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False
