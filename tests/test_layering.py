"""The layers import only downwards: api/cli -> services -> db/providers (STYLE.md, principle 5)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ailab"

FORBIDDEN = {
    "services": ("fastapi", "starlette", "typer", "ailab.api", "ailab.cli"),
    "db": ("fastapi", "starlette", "typer", "ailab.api", "ailab.cli", "ailab.services", "ailab.providers"),
    "providers": ("fastapi", "starlette", "typer", "ailab.api", "ailab.cli", "ailab.services", "ailab.db"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downwards(layer: str) -> None:
    offences = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                offences.append(f"{path.relative_to(SRC)} imports {name}")
    assert offences == []
