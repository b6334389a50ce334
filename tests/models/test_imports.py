"""landscape.models imports no heavy library up front and has no import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import landscape.models

PACKAGE = Path(landscape.models.__file__).parent
HEAVY = ("torch", "torchvision", "timm")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return {name for name in out.split() if name.split(".")[0] in HEAVY}


def test_registry_and_metadata_import_no_heavy_library() -> None:
    code = "from landscape.models import list_backbones\nnames = [i.name for i in list_backbones()]"
    assert _loaded_after(code) == set()


def test_models_list_help_imports_no_heavy_library() -> None:
    code = (
        "from landscape.cli import main\n"
        "try:\n    main(['models', 'list', '--help'])\nexcept SystemExit:\n    pass"
    )
    assert _loaded_after(code) == set()


def _imports(path: Path, *, anywhere: bool = False) -> set[str]:
    """Sibling modules ``path`` imports: when it is imported (not in functions or TYPE_CHECKING)
    or, with ``anywhere``, also inside functions."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree) if anywhere else tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "landscape.models."
        ):
            found.add(node.module.split(".")[2])  # type: ignore[union-attr]
    return found


def test_no_import_cycle_inside_the_package() -> None:
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {name: _imports(path) & set(modules) for name, path in modules.items()}
    # Not even a deferred import: the package's __init__ registers the zoo.
    assert "_zoo" not in _imports(modules["registry"], anywhere=True)
    assert "registry" in graph["_zoo"]

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, f"import cycle: {' -> '.join((*trail, name))}"
        for dep in graph[name]:
            visit(dep, (*trail, name))

    for name in graph:
        visit(name, ())
