"""Run from a clone's root or beside another `xrayviewer/` folder: the commands import the package they belong to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from xrayviewer.commands.bench import cold_start

ROOT = Path(__file__).resolve().parents[1]
# What an editable install adds (a finder that maps `xrayviewer.models` to models/) taken away: the clone as it is
# seen by a Python where xrayviewer is installed non-editable, or not at all
WITHOUT_EDITABLE_FINDER = ("import sys\n"
                           "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in "
                           "getattr(f, '__module__', '').lower()]\n")


def from_the_clone(code: str) -> subprocess.CompletedProcess:
    """`code` run in the repository root, where `import xrayviewer` finds the source tree first."""
    return subprocess.run([sys.executable, "-c", WITHOUT_EDITABLE_FINDER + code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_the_source_tree_finds_its_models(kermany):
    result = from_the_clone("import xrayviewer, xrayviewer.models as m\n"
                            "print(xrayviewer.__file__, m.__file__, m.available())")
    assert result.returncode == 0, result.stderr
    package, models, available = result.stdout.split(maxsplit=2)
    assert Path(package) == ROOT / "xrayviewer" / "__init__.py" and Path(models) == ROOT / "models" / "__init__.py"
    assert "mobilenetv2" in available
    film = next((kermany / "PNEUMONIA").glob("*.jpeg"))
    analyze = from_the_clone("import runpy\n"
                             f"sys.argv = ['xrayviewer', 'analyze', {str(film)!r}, '--provider', 'cpu']\n"
                             "runpy.run_module('xrayviewer', run_name='__main__', alter_sys=True)")
    assert analyze.returncode == 0 and "Traceback" not in analyze.stderr, analyze.stderr
    assert json.loads(analyze.stdout)["label"] in ("NORMAL", "PNEUMONIA")


def test_bench_cold_start_ignores_an_xrayviewer_folder_in_the_working_folder(tmp_path, monkeypatch):
    shadow = tmp_path / "xrayviewer"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    (shadow / "__main__.py").write_text("raise SystemExit('the wrong xrayviewer')\n")
    monkeypatch.chdir(tmp_path)
    figures = cold_start(1)
    assert figures["cold_start_ms"] > 0, figures


@pytest.mark.skipif(not Path("/bin/false").is_file(), reason="needs /bin/false")
def test_a_failed_start_up_probe_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a real program that exits 1 and prints nothing
    figures = cold_start(2)
    assert figures["cold_start_ms"] is None
    assert figures["cold_start_problem"] == "the viewer's start-up probe failed: exit status 1 and no output"
