"""'auto' falls back from a GPU provider that cannot run to the CPU, visibly; an explicit choice never does."""

from __future__ import annotations

import warnings

import pytest
from tiny_models import build

from xrayviewer.core import XRayViewerError
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.session import open_first, open_model


def test_a_gpu_provider_that_cannot_run_falls_back_to_the_cpu_with_its_reason(tmp_path):
    """DirectML is not in this onnxruntime build: ONNX Runtime runs the session on the CPU instead, as on a
    Windows machine (or Wine) without a DirectX 12 device. The model says so instead of hiding it."""
    path = build(tmp_path / "tiny.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ORT's own warning about the provider it does not have
        model = open_first(path, ["DmlExecutionProvider", "CPUExecutionProvider"])
    assert model.provider == "CPUExecutionProvider"
    assert model.fallback.startswith("DirectML unavailable (") and "CPUExecutionProvider" in model.fallback
    assert open_model(path, "auto").fallback == ""  # this build offers only the CPU: nothing fell back


def test_the_fall_back_reaches_the_analysis_and_the_panel(tmp_path, qtbot):
    import numpy as np

    from xrayviewer.gui.panels import running_text

    path = build(tmp_path / "tiny.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = open_first(path, ["DmlExecutionProvider", "CPUExecutionProvider"])
    analysis = Engine("cpu").analysis(model, Engine("cpu").infer(model, [np.full((64, 64), 90, np.uint8)])[0],
                                      np.full((64, 64), 90, np.uint8), force=True)
    assert analysis.provider_note == model.fallback
    text = running_text(analysis.provider, analysis.provider_note)
    assert text.startswith("CPU (fall-back): DirectML unavailable") and "only slower" in text
    assert running_text("CPUExecutionProvider", "") == "CPU"


def test_an_explicit_provider_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(XRayViewerError, match="provider 'dml' is not available"):
        open_model(build(tmp_path / "tiny.onnx"), "dml")
