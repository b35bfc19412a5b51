"""The shipped pneumonia models (ONNX, contract version 1), looked up by name.

Installed as the package `xrayviewer.models`, so `pip install .` carries the files.
"""

from __future__ import annotations

from pathlib import Path

from xrayviewer.core.errors import XRayViewerError

FOLDER = Path(__file__).resolve().parent
SHIPPED = {"mobilenetv2": "mobilenetv2-pneumonia.onnx", "xception": "xception-pneumonia.onnx"}


def available() -> list[str]:
    """Names of the shipped models whose files are present in this installation."""
    return [name for name, file in SHIPPED.items() if (FOLDER / file).is_file()]


def resolve(name_or_path: str | Path) -> Path:
    """A shipped model's name (`mobilenetv2`, `xception`) or a path to any contract `.onnx` file."""
    key = str(name_or_path).lower()
    if key in SHIPPED:
        path = FOLDER / SHIPPED[key]
        if not path.is_file():
            raise XRayViewerError(path, f"model '{key}' is not shipped in this build", "its file is missing",
                                  f"Use one of {available() or 'none'}, or give the path of an .onnx file.")
        return path
    path = Path(name_or_path)
    if not path.is_file():
        raise XRayViewerError(path, "no such model", f"not a file and not one of {sorted(SHIPPED)}",
                              "Give a shipped model's name or the path of an .onnx file.")
    return path
