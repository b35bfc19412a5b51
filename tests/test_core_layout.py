"""The core's three wings import one way (review -> analysis -> reading, errors shared) and no module of the core
imports itself back through others. Walks every import statement, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "xrayviewer" / "core"
WINGS = ("reading", "analysis", "review")
ALLOWED = {  # what each wing may import from the core
    "reading": {"reading", "errors"},
    "analysis": {"reading", "analysis", "errors"},
    "review": {"reading", "analysis", "review", "errors"},
    "errors": set(),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parents[1]).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_modules() -> dict[str, Path]:
    return {module_name(p): p for p in CORE.rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The core modules `path` imports (a name imported from a package counts as its submodule when it is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in modules and name != "xrayviewer.core"}


def wing_of(module: str) -> str:
    part = module.split(".")[2] if module.count(".") >= 2 else ""
    return part if part in WINGS or part == "errors" else "core"


def test_the_core_is_in_three_wings_each_with_a_docstring_of_what_it_may_import():
    for wing in WINGS:
        init = CORE / wing / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "import" in doc.lower(), wing
    loose = sorted(p.name for p in CORE.glob("*.py") if p.stem not in ("__init__", "errors"))
    assert loose == []


def test_each_wing_imports_only_the_wings_below_it():
    modules = core_modules()
    wrong = []
    for name, path in modules.items():
        wing = wing_of(name)
        if wing == "core":
            continue
        for imported in imports_of(path, modules):
            if wing_of(imported) not in ALLOWED[wing] | {"core"}:
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_no_import_circle_inside_the_core():
    modules = core_modules()
    inits = {name for name, path in modules.items() if path.name == "__init__.py"}  # lazy re-exports: no step
    graph = {name: sorted(imports_of(path, modules) - inits - {name}) for name, path in modules.items()
             if name not in inits}
    state: dict[str, str] = {}  # "open" while on the path being walked, "done" after
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in graph:
        if start not in state:
            visit(start, [start])
    assert circles == []
