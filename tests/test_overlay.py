"""Overlay compositing: style changes change pixels, from one CAM map, without the model."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import build, engine_for_made_films, quadrant_film

from xrayviewer.core.analysis.overlay import COLORMAPS, OverlayStyle, colorbar, colormap_lut, composite


@pytest.fixture
def film_and_heat(tmp_path):
    engine = engine_for_made_films()
    model = engine.model(build(tmp_path / "tiny.onnx"))
    film = quadrant_film(256, (0, 1))
    runs = []
    original = model.run
    model.run = lambda *a, **k: runs.append(1) or original(*a, **k)  # count forward passes
    heat = engine.analyze(model, film).cam.heat
    assert len(runs) == 1
    yield film, heat
    assert len(runs) == 1, "a style change ran the model again"


def test_opacity_threshold_colormap_and_visibility(film_and_heat):
    film, heat = film_and_heat
    base = composite(film, heat, OverlayStyle(visible=False))
    assert np.array_equal(base[..., 0], film)
    light = composite(film, heat, OverlayStyle(opacity=0.2))
    strong = composite(film, heat, OverlayStyle(opacity=0.8))
    hot = heat >= 0.5 * 255
    assert np.abs(strong[hot].astype(int) - base[hot]).mean() > np.abs(light[hot].astype(int) - base[hot]).mean()
    thresholded = composite(film, heat, OverlayStyle(opacity=0.8, threshold=0.6))
    cold = heat < 0.6 * 255
    assert np.array_equal(thresholded[cold], base[cold])  # transparent below the threshold
    assert not np.array_equal(thresholded[~cold], base[~cold])
    viridis = composite(film, heat, OverlayStyle(opacity=0.8, colormap="viridis"))
    assert not np.array_equal(viridis[hot], strong[hot])


def test_contours_and_colorbar(film_and_heat):
    film, heat = film_and_heat
    plain = composite(film, heat, OverlayStyle())
    lined = composite(film, heat, OverlayStyle(contours=True))
    assert (lined != plain).any(axis=-1).sum() > 100
    bar = colorbar("jet", 256, 12)
    assert bar.shape == (256, 12, 3)
    assert bar[0, 0].tolist() == colormap_lut("jet")[255, 0].tolist()  # high values at the top


def test_every_colormap_is_rgb_and_distinct():
    luts = {name: colormap_lut(name)[:, 0] for name in COLORMAPS}
    assert luts["jet"][255].tolist()[0] > luts["jet"][255].tolist()[2]  # jet ends in red, in RGB order
    assert len({lut.tobytes() for lut in luts.values()}) == len(luts)
    with pytest.raises(ValueError, match="unknown colormap"):
        colormap_lut("sepia")
