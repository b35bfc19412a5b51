"""Regenerate the README's screenshot from the current app: `python resources/make_screenshot.py [PNG]`.

It runs the viewer as a user would start it, `xrayviewer --demo --compare --screenshot PNG` (1500 x 950: on a
1920 x 1080 Xvfb screen where xvfb-run is installed, else offscreen, whose small screen makes the window smaller),
with settings of its own in a temporary folder, so that nothing saved on this machine changes the picture. The
window is saved once both viewports show their final analysis. Needs the demo extra (pydicom-data).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent / "screenshot.png"


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else DEFAULT
    with tempfile.TemporaryDirectory(prefix="xrayviewer-screenshot-") as settings:
        xvfb = shutil.which("xvfb-run")
        env = {**os.environ, "QT_QPA_PLATFORM": "xcb" if xvfb else "offscreen", "XDG_CONFIG_HOME": settings}
        screen = [xvfb, "-a", "-s", "-screen 0 1920x1080x24"] if xvfb else []
        done = subprocess.run([*screen, sys.executable, "-m", "xrayviewer", "--demo", "--compare", "--screenshot",
                               str(target)], env=env, timeout=600)
    if done.returncode != 0:
        print(f"the viewer did not save {target} (exit {done.returncode})", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
