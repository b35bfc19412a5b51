"""The viewer's saved settings, read defensively: a value that is missing, of the wrong type or unknown (a hand-edited
file, a model or provider from another installation) falls back to its default, so the viewer always starts and
always analyses. Values are written in a normal form, so what is read back is what was meant."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QByteArray, QSettings

from xrayviewer.core.analysis.cam import DEFAULT_METHOD, METHODS
from xrayviewer.core.analysis.overlay import COLORMAPS, OverlayStyle
from xrayviewer.core.analysis.session import resolve_provider
from xrayviewer.core.errors import XRayViewerError

PROVIDERS = ("auto", "cpu", "cuda", "dml")
RECENT_MAX = 10
T = TypeVar("T")


def _opacity(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise ValueError(f"opacity {number} outside [0, 1]")
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0"):
        raise ValueError(f"not a yes/no value: {value!r}")
    return text in ("true", "1")


def _one_of(choices) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"unknown value {value!r}")
        return value
    return parse


def _usable_provider(value: Any) -> str:
    """A provider this machine can run (a saved 'cuda' on a machine without CUDA falls back to auto)."""
    choice = _one_of(PROVIDERS)(value)
    try:
        resolve_provider(choice)
    except XRayViewerError as exc:
        raise ValueError(str(exc)) from None
    return choice


def _paths(value: Any) -> list[str]:
    """A list of paths that still exist (QSettings gives a single entry as a plain string)."""
    items = [value] if isinstance(value, str) else list(value)
    return [p for p in items if isinstance(p, str) and p and Path(p).exists()]


class Settings:
    """Typed access to the viewer's QSettings (organisation and application "XRayViewer")."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings("XRayViewer", "XRayViewer")

    def _read(self, key: str, parse: Callable[[Any], T], default: T) -> T:
        value = self.store.value(key)
        if value is None:
            return default
        try:
            return parse(value)
        except (TypeError, ValueError):
            return default

    # ----- analysis -----
    def provider(self, chosen: str | None = None) -> str:
        """The provider to start with: the command line's `chosen` when given, else the saved one when this machine
        can run it, else auto."""
        return chosen if chosen is not None else self._read("provider", _usable_provider, "auto")

    def set_provider(self, provider: str) -> None:
        self.store.setValue("provider", _one_of(PROVIDERS)(provider))

    def model(self, models: list[str]) -> str | None:
        """The saved model when it is still offered, else None."""
        return self._read("model", _one_of(models), None)

    def method(self) -> str:
        return self._read("method", _one_of(METHODS), DEFAULT_METHOD)

    def set_analysis(self, model: str, method: str) -> None:
        self.store.setValue("model", model)
        self.store.setValue("method", method)

    def style(self) -> OverlayStyle:
        default = OverlayStyle()
        return OverlayStyle(self._read("colormap", _one_of(COLORMAPS), default.colormap),
                            self._read("opacity", _opacity, default.opacity))

    def set_style(self, style: OverlayStyle) -> None:
        self.store.setValue("colormap", style.colormap)
        self.store.setValue("opacity", float(style.opacity))

    # ----- window -----
    def geometry(self) -> tuple[QByteArray, QByteArray] | None:
        """The saved window geometry and dock state, when both are the binary blobs Qt wrote."""
        blobs = self.store.value("geometry"), self.store.value("state")
        return blobs if all(isinstance(b, QByteArray) for b in blobs) else None

    def set_geometry(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("geometry", geometry)
        self.store.setValue("state", state)

    def compare(self) -> bool:
        return self._read("compare", _flag, False)

    def set_compare(self, on: bool) -> None:
        self.store.setValue("compare", bool(on))

    # ----- review -----
    def reader(self) -> str:
        """The reader's name saved with each decision ("" when never given)."""
        return self._read("reader", lambda v: v.strip() if isinstance(v, str) else "", "")

    def set_reader(self, name: str) -> None:
        self.store.setValue("reader", name.strip())

    # ----- files -----
    def recent(self) -> list[str]:
        """Recently opened files and folders that still exist, newest first."""
        return self._read("recent", _paths, [])[:RECENT_MAX]

    def remember(self, path: Path) -> None:
        """Put a file or folder that opened at the top of Recent, and its folder as the one dialogs start in (both
        absolute: a path relative to where the viewer was started means another file from elsewhere)."""
        path = Path(os.path.abspath(path))
        entry = str(path)
        self.store.setValue("recent", [entry] + [p for p in self.recent() if p != entry][:RECENT_MAX - 1])
        self.store.setValue("last_folder", str(path if path.is_dir() else path.parent))

    def export_folder(self) -> str | None:
        """The folder of the last export, when it still exists."""
        return self._read("export_folder", lambda v: v if isinstance(v, str) and Path(v).is_dir() else None, None)

    def set_export_folder(self, folder: str) -> None:
        self.store.setValue("export_folder", folder)

    def last_folder(self) -> str:
        """Where file dialogs start: the folder of the last file that opened, else the home folder."""
        return self._read("last_folder", lambda v: v if isinstance(v, str) and Path(v).is_dir() else None, None) \
            or str(Path.home())
