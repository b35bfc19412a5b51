"""Run from a clone (`python -m xrayviewer` in the repository root), `xrayviewer.models` is the top-level `models/`
folder, as pyproject's package-dir maps it for an install. An installed or frozen package is left as it is."""

from __future__ import annotations

import importlib.util
import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path

MODELS = "xrayviewer.models"


class ModelsFinder(MetaPathFinder):
    """Finds `xrayviewer.models` in the clone's `models/` folder, and nothing else."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def find_spec(self, fullname: str, path=None, target=None) -> ModuleSpec | None:
        if fullname != MODELS:
            return None
        return importlib.util.spec_from_file_location(MODELS, self.folder / "__init__.py",
                                                      submodule_search_locations=[str(self.folder)])


def map_models(package: Path) -> None:
    """When `package` (the xrayviewer folder) lies in a source tree, with pyproject.toml and `models/` beside it and
    no `models` inside it, let `xrayviewer.models` resolve to that `models/` folder (looked up on first import)."""
    root = package.parent
    folder = root / "models"
    if (package / "models").exists() or not (root / "pyproject.toml").is_file():
        return
    if (folder / "__init__.py").is_file() and not any(isinstance(f, ModelsFinder) for f in sys.meta_path):
        sys.meta_path.append(ModelsFinder(folder))
