"""Entry script of the frozen app (PyInstaller): the same command line as `python -m xrayviewer`."""

import os
import sys

os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # before anything can import onnxruntime (see xrayviewer/__init__.py)

from xrayviewer.cli import main

if __name__ == "__main__":
    sys.exit(main())
