"""XRay Viewer: an offline chest X-ray workstation with an AI second opinion."""

import os
from pathlib import Path

from xrayviewer.source_tree import map_models

# The app makes no network connection. ONNX Runtime's official builds start Microsoft telemetry (a device-id file
# under ~/.cache/Microsoft/DeveloperTools/.onnxruntime and, after ~10 s, DNS lookups of an events host) unless this
# variable is set before onnxruntime is imported: its environment is created at import time. Every module of the
# package, and so every onnxruntime import it makes, runs this first. Forced, not defaulted: "0" must not re-enable it.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"

map_models(Path(__file__).resolve().parent)  # `python -m xrayviewer` in a clone finds the clone's models/ too
