"""The shipped pneumonia models (ONNX, contract version 1), looked up by name.

Installed as the package `xrayviewer.models`, so `pip install .` carries the files.
"""

from __future__ import annotations

import json
from pathlib import Path

from xrayviewer.core.errors import XRayViewerError

FOLDER = Path(__file__).resolve().parent
SHIPPED = {"mobilenetv2": "mobilenetv2-pneumonia.onnx", "xception": "xception-pneumonia.onnx",
           "consensus": "consensus.json"}  # consensus.json: a card over shipped models (core.analysis.consensus)


def available() -> list[str]:
    """Names of the shipped models whose files (and, for a consensus card, its members' files) are present."""
    return [name for name in SHIPPED if _present(name)]


def _present(name: str) -> bool:
    path = FOLDER / SHIPPED[name]
    if path.suffix != ".json" or not path.is_file():
        return path.is_file()
    try:
        members = json.loads(path.read_text(encoding="utf-8")).get("members", [])
    except (OSError, ValueError, AttributeError):
        return False
    return bool(members) and all(m in SHIPPED and m != name and _present(m) for m in members)


def resolve(name_or_path: str | Path) -> Path:
    """A shipped model's name (`mobilenetv2`, `xception`, `consensus`) or a path to any contract `.onnx` file or
    consensus card (`.json`)."""
    key = str(name_or_path).lower()
    if key in SHIPPED:
        path = FOLDER / SHIPPED[key]
        if key not in available():
            raise XRayViewerError(path, f"model '{key}' is not shipped in this build",
                                  "its file or a member's is missing", f"Use one of {available() or 'none'}, or give the path of an .onnx file.")
        return path
    path = Path(name_or_path)
    if not path.is_file():
        raise XRayViewerError(path, "no such model", f"not a file and not one of {sorted(SHIPPED)}",
                              "Give a shipped model's name, or the path of an .onnx file or a consensus card.")
    return path
