"""The core must run without Qt: no import of it anywhere under xrayviewer/core."""

import re
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "xrayviewer" / "core"


def test_no_qt_import_in_core_sources():
    pattern = re.compile(r"^\s*(from|import)\s+(PySide6|PyQt5|PyQt6|qtpy|shiboken6)\b", re.M)
    offenders = [p.name for p in CORE.rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_importing_every_core_module_loads_no_qt():
    modules = sorted(".".join(p.relative_to(CORE.parents[1]).with_suffix("").parts).removesuffix(".__init__")
                     for p in CORE.rglob("*.py"))
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + \
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert len(modules) >= 6
    assert out.strip() == "[]"
