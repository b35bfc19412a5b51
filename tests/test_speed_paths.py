"""The fast paths give the pictures of the plain ones: the windowing in OpenCV, the cached heatmap layer, the
imagecodecs JPEG 2000 plug-in (decoded pixels identical to gdcm's)."""

from __future__ import annotations

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.pixels import pixel_array

from xrayviewer.core import read_image
from xrayviewer.core.analysis.overlay import FLOOR_RAMP, OverlayStyle, colormap_lut, composite
from xrayviewer.core.reading import decoders
from xrayviewer.core.reading.display import _ramp, window_to_uint8
from xrayviewer.core.reading.record import Window


def reference_composite(film: np.ndarray, heat: np.ndarray, style: OverlayStyle) -> np.ndarray:
    """Blend every pixel in float with an alpha that rises from 0 at the floor to the opacity FLOOR_RAMP above it
    (what the overlay means)."""
    base = np.repeat(film[..., None], 3, axis=2).astype(np.float64)
    colored = colormap_lut(style.colormap)[heat, 0].astype(np.float64)
    cutoff = np.ceil(style.threshold * 255)
    alpha = style.opacity * np.clip((heat - cutoff) / (FLOOR_RAMP * 255), 0, 1)[..., None]
    return np.clip(np.rint(base * (1 - alpha) + colored * alpha), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("style", [OverlayStyle(), OverlayStyle("inferno", 0.8, 0.7), OverlayStyle(threshold=0.0),
                                   OverlayStyle(threshold=1.0)])
def test_cached_layer_blends_like_the_definition(style):
    rng = np.random.default_rng(3)
    film = rng.integers(0, 256, (300, 260), dtype=np.uint8)
    heat = cv2.resize(rng.integers(0, 256, (7, 7)).astype(np.uint8), (260, 300))
    got = composite(film, heat, style)
    assert np.abs(got.astype(int) - reference_composite(film, heat, style)).max() <= 3  # 8-bit rounding only
    assert np.array_equal(got[heat < np.ceil(style.threshold * 255)], np.repeat(film[..., None], 3, axis=2)[
        heat < np.ceil(style.threshold * 255)])  # the film itself below the floor


def test_layer_is_reused_while_the_window_changes(qtbot, dicom_data):
    from xrayviewer.gui.viewport import Viewport

    record = read_image(dicom_data / "RG1_UNCR.dcm")
    view = Viewport()
    qtbot.addWidget(view)
    view.set_record(record)
    heat = cv2.resize(np.arange(49, dtype=np.uint8).reshape(7, 7) * 5, (record.columns, record.rows))
    view.set_heat(heat)
    layer, before = view._layer, view.shown.copy()
    view.drag_window(40, 30)
    assert view._layer is layer and not np.array_equal(view.shown, before)  # re-windowed, not recoloured
    assert np.array_equal(view.shown, composite(view.display, heat, view.style))
    view.set_style(OverlayStyle("viridis"))
    assert view._layer is not layer


def test_opencv_windowing_matches_the_ramp(dicom_data):
    record = read_image(dicom_data / "RG1_UNCR.dcm")
    pixels = record.pixels
    for window in (record.window, Window(14000.3, 28000), Window(20000.25, 3000), Window(5000, 255)):
        for invert in (False, True):
            fast = window_to_uint8(pixels, window, invert, record.value_range)
            ramp = _ramp(pixels.astype(np.float32), window.lower, 255.0 / window.width, invert)
            differ = fast != ramp
            assert differ.mean() < 1e-3  # exact halves may round the other way
            assert np.abs(fast.astype(int) - ramp)[differ].max(initial=0) <= 1


def test_imagecodecs_decodes_jpeg2000_like_gdcm(dicom_data):
    if not decoders.is_available(pydicom.uid.JPEG2000Lossless):
        pytest.skip("imagecodecs is not installed")
    ds = pydicom.dcmread(dicom_data / "RG1_J2KR.dcm")
    fast = pixel_array(ds, decoding_plugin=decoders.PLUGIN)
    assert fast.shape == (1955, 1841) and np.array_equal(fast, pixel_array(ds, decoding_plugin="gdcm"))


def test_the_window_shows_before_pydicom_and_any_model_load(tmp_path):
    """Cold start: the readers (pydicom, gdcm) and the models load after the window is up, not before."""
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from xrayviewer.gui.app import application\nfrom xrayviewer.gui.main_window import MainWindow\n"
        "app = application(); window = MainWindow(); window.show(); app.processEvents()\n"
        "print(json.dumps({'pydicom': 'pydicom' in sys.modules, 'gdcm': 'gdcm' in sys.modules,\n"
        "                  'models': len(window.engine.models._models)}))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path),
           "XRAYVIEWER_DB": str(tmp_path / "review.db")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == {"pydicom": False, "gdcm": False, "models": 0}
