"""Count the cross-file `self.x` links of the Qt layer: for each class in xrayviewer/gui/*.py, the distinct attributes
it reads through `self` that no class of its own file defines and a class of another gui file does (a method, or an
attribute assigned through `self`). Mixins sharing state through `self` show up here; parts handed their
collaborators do not. Links to a class's own base class in another file are counted apart.

    .venv/bin/python benchmarks/self_links.py [--by-class]
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

GUI = Path(__file__).resolve().parents[1] / "xrayviewer" / "gui"


def defined_and_read(tree: ast.Module) -> tuple[set[str], dict[str, set[str]], dict[str, set[str]]]:
    """The attributes the file's classes define, per class the attributes it reads through `self`, and per class
    the names of its bases."""
    defined: set[str] = set()
    reads: dict[str, set[str]] = defaultdict(set)
    bases: dict[str, set[str]] = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        bases[cls.name] = {b.id for b in cls.bases if isinstance(b, ast.Name)}
        for node in ast.walk(cls):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node in cls.body:
                defined.add(node.name)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node in cls.body:
                defined.add(node.target.id)  # dataclass fields
            elif isinstance(node, ast.Assign) and node in cls.body:
                defined.update(t.id for t in node.targets if isinstance(t, ast.Name))  # class attributes, signals
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                if isinstance(node.ctx, ast.Store):
                    defined.add(node.attr)
                else:
                    reads[cls.name].add(node.attr)
    return defined, reads, bases


def links(folder: Path = GUI) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per 'file:Class', the attributes read through `self` that only another gui file defines: those that no base
    class of its own defines (mixins sharing state), and those a base class in another file defines (a subclass
    reading its base, such as ReadingViewport(Viewport))."""
    files = {p.name: defined_and_read(ast.parse(p.read_text())) for p in sorted(folder.glob("*.py"))}
    shared: dict[str, set[str]] = {}
    inherited: dict[str, set[str]] = {}
    for name, (own, reads, bases) in files.items():
        others = set().union(*(d for n, (d, _, _) in files.items() if n != name))
        for cls, attrs in reads.items():
            foreign = {a for a in attrs if a not in own and a in others}
            from_bases = set().union(*(d for n, (d, _, b) in files.items() if n != name and bases[cls] & set(b)))
            if foreign - from_bases:
                shared[f"{name}:{cls}"] = foreign - from_bases
            if foreign & from_bases:
                inherited[f"{name}:{cls}"] = foreign & from_bases
    return shared, inherited


def main() -> None:
    shared, inherited = links()
    if "--by-class" in sys.argv:
        for kind, found in (("shared", shared), ("from a base class", inherited)):
            for where, attrs in sorted(found.items(), key=lambda kv: -len(kv[1])):
                print(f"{len(attrs):4d}  {kind}  {where}: {', '.join(sorted(attrs))}")
    total = sum(len(a) for a in shared.values()) + sum(len(a) for a in inherited.values())
    print(f"cross-file self links: {total} ({sum(len(a) for a in inherited.values())} of them a subclass reading "
          "its own base class)")


if __name__ == "__main__":
    main()
