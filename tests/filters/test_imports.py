"""filters/ stands alone: no module under it imports factory/ (factory builds on filters, never the reverse)."""

from __future__ import annotations

import ast
from pathlib import Path

FILTERS = Path(__file__).resolve().parents[2] / "filters"


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_no_filter_module_imports_factory():
    modules = sorted(FILTERS.rglob("*.py"))
    assert len(modules) > 10  # the folder was found
    bad = [f"{p.relative_to(FILTERS.parent)}: {n}" for p in modules for n in _imports(p)
           if n == "factory" or n.startswith("factory.")]  # fmt: skip
    assert not bad, bad
