"""The library's walls: what each folder may import, and no import circle.

Read from the source with ``ast``, so a wall is held even for code no test runs.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "goldenpath"
# The noxfile process imports goldenpath.core, and nox's venv holds only these.
CORE_MAY_IMPORT = {"dotenv", "nox"}


def imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (function bodies included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(LIBRARY.rglob("*.py"))}


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("goldenpath.core")])
def test_core_imports_only_the_standard_library_dotenv_and_nox(name: str) -> None:
    outside = {
        module for module in imports(MODULES[name])
        if module.split(".")[0] not in sys.stdlib_module_names | CORE_MAY_IMPORT
        and not module.startswith("goldenpath.core")
    }
    assert not outside, f"{name} imports {sorted(outside)}: the noxfile process cannot"


@pytest.mark.parametrize("name", [n for n in MODULES if not n.startswith("goldenpath.testkit")])
def test_only_the_testkit_imports_pytest(name: str) -> None:
    # What the README tells a user to run (invoke, python -m goldenpath..., bench/) must
    # work after `pip install -e .`, which does not install pytest.
    assert not {m for m in imports(MODULES[name]) if m.split(".")[0] in ("pytest", "_pytest")}


def test_no_import_circle_inside_the_library() -> None:
    graph = {name: {m for m in imports(path) if m in MODULES and m != name}
             for name, path in MODULES.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circle = [*trail[trail.index(target):], target]
                pytest.fail("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_rich_tables_are_drawn_only_in_the_presentation_module() -> None:
    drawing = sorted(name for name, path in MODULES.items()
                     if "rich.table" in imports(path) and name != "goldenpath.output.tables")
    assert not drawing, f"rich tables outside goldenpath.output.tables: {drawing}"
