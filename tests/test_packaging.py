"""A plain (non-editable) install carries every subpackage and the shipped models, usable from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_plain_install_carries_models_and_subpackages(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, timeout=300)
    code = ("import xrayviewer, xrayviewer.gui.app, xrayviewer.commands.analyze, xrayviewer.models as m\n"
            "assert str(xrayviewer.__file__).startswith(%r), xrayviewer.__file__\n"
            "print(m.available(), m.resolve('mobilenetv2').stat().st_size)" % str(target))
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "mobilenetv2" in out and int(out.split()[-1]) > 1_000_000
