"""The layers import only downwards: api/cli -> services -> db/providers (STYLE.md, principle 5); inside
services/, each sub-package uses only the ones its seam allows; and no source file outgrows a sitting."""

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


# What each part of services/ may import of the others. A change here is a change of the architecture
# (docs/architecture.md): the container, which wires everything, is the only module that sees them all.
SERVICE_DEPENDENCIES = {
    "auth": {"masterkey"},
    "vault": {"masterkey"},
    "sessions": set(),
    "chat": {"sessions", "files"},
    "files": set(),
    "gateway": {"chat", "routing"},  # embeddings run an alias's attempts through its router
    "monitoring": set(),
    "legacy": {"sessions"},
    "runs": {"chat"},
    "usage": set(),
    "masterkey": set(),
    "shared": set(),
    "model_install": set(),
    "models": {"chat", "gateway"},
    "routing": set(),
}
MAX_LINES = 600


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


def _service_part(name: str) -> str | None:
    """``chat`` for ``ailab.services.chat.agents.engine``; None outside services/."""
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["ailab", "services"] else None


def test_services_sub_packages_import_only_what_their_seam_allows() -> None:
    services = SRC / "services"
    found = {p.stem if p.is_file() else p.name for p in services.iterdir() if not p.name.startswith("_")}
    found.discard("__pycache__")
    assert found == set(SERVICE_DEPENDENCIES) | {"container"}  # a new part declares its dependencies here
    offences = []
    for path in sorted(services.rglob("*.py")):
        own = path.relative_to(services).parts[0].removesuffix(".py")
        if own in ("container", "__init__"):
            continue
        for name in _imports(path):
            used = _service_part(name)
            if used is not None and used != own and used not in SERVICE_DEPENDENCIES[own]:
                offences.append(f"{path.relative_to(SRC)} imports {name}")
    assert offences == []


def test_nothing_below_the_container_imports_it() -> None:
    offences = [
        str(path.relative_to(SRC))
        for path in sorted((SRC / "services").rglob("*.py"))
        if path.name != "container.py" and "ailab.services.container" in _imports(path)
    ]
    assert offences == []


def test_no_source_file_outgrows_a_sitting() -> None:
    long = {
        str(path.relative_to(SRC)): lines
        for path in sorted(SRC.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
