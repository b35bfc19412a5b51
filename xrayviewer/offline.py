"""What keeps the app's process off the network, for what has to happen before the libraries load.

ONNX Runtime's telemetry is turned off in `xrayviewer/__init__.py` (every import of the package). This module
holds what only the app's own processes (the command line and the viewer) do, not the converters.
"""

from __future__ import annotations

import sys


def keep_http_clients_out() -> None:
    """No HTTP client in the process: pydicom imports `requests` when it is installed (the converters' TensorFlow
    brings it) for test-file downloads the app never makes, and importing it runs urllib3's IPv6 probe, a socket
    bound to ::1. Without it pydicom keeps to urllib, which opens nothing at import. One already loaded is kept."""
    sys.modules.setdefault("requests", None)
