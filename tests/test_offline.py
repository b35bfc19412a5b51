"""The app makes no network connection: ONNX Runtime's telemetry is off wherever the app imports it, and no HTTP
client is loaded into its processes.

ONNX Runtime's official builds write a device id under ~/.cache/Microsoft/DeveloperTools/.onnxruntime as soon as
onnxruntime is imported, and later look up Microsoft's events host, unless ORT_DISABLE_TELEMETRY=1 is set before the
import. Each run here gets a fresh HOME and an environment without that variable, so only the app can set it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from tiny_models import build, quadrant_film

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from network import workstation_environment  # noqa: E402


def run_with_fresh_home(home: Path, *args: str) -> subprocess.CompletedProcess:
    home.mkdir()
    return subprocess.run([sys.executable, *args], env=workstation_environment(home), capture_output=True, text=True,
                          timeout=300, cwd=home)


def telemetry_files(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if "Microsoft" in p.parts or ".onnxruntime" in p.parts]


def test_bare_onnxruntime_leaves_its_telemetry_files(tmp_path):
    """The control: the check below would see telemetry if the app left it on."""
    home = tmp_path / "home"
    result = run_with_fresh_home(home, "-c", "import onnxruntime")
    assert result.returncode == 0, result.stderr
    assert any(p.name == "deviceid" for p in telemetry_files(home))


def test_analyze_and_the_frozen_entry_leave_no_telemetry(tmp_path):
    model = build(tmp_path / "tiny.onnx")
    films = []
    for i in range(3):
        films.append(tmp_path / f"film{i}.png")
        cv2.imwrite(str(films[-1]), quadrant_film(64, (i % 2, 0)))
    home = tmp_path / "home"
    result = run_with_fresh_home(home, "-m", "xrayviewer", "analyze", *map(str, films), "--model", str(model),
                                 "--provider", "cpu", "--force")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert telemetry_files(home) == []
    frozen_home = tmp_path / "frozen-home"  # the PyInstaller bundle's entry script, run as a script
    result = run_with_fresh_home(frozen_home, str(ROOT / "installer" / "entry.py"), "--self-test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert telemetry_files(frozen_home) == []


@pytest.mark.parametrize("start", [
    "from xrayviewer.cli import main\ncode = main(['analyze', str(demo_path()), '--provider', 'cpu'])\n",
    "from xrayviewer.gui.app import application\nfrom xrayviewer.gui.main_window import MainWindow\n"
    "app = application()\nwindow = MainWindow('cpu')\nwindow.open_paths([demo_path()])\n"
    "from xrayviewer.core import read_image\ncode = int(read_image(demo_path()).rows != 1955)\n",
], ids=["command line", "viewer"])
def test_the_app_loads_no_http_client(tmp_path, start):
    """pydicom imports `requests` when it is installed, and urllib3's import binds a socket to ::1 (its IPv6
    probe, counted by benchmarks/network.py); the app's processes keep both out (urllib opens nothing at import)."""
    code = ("import os, sys\nos.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
            "from xrayviewer.demo import demo_path\n" + start + "import pydicom.data\n"
            "print(code, sorted(m for m in ('requests', 'urllib3') if sys.modules.get(m) is not None))\n")
    result = run_with_fresh_home(tmp_path / "home", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 []"
