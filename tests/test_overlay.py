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
    heat = engine.analyze(model, film, "gradcam").cam.heat
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


def test_the_heat_floor_is_soft_and_evidence_against_is_dashed_cyan():
    film = np.full((200, 200), 100, np.uint8)
    ramp = np.tile(np.linspace(0, 255, 200).astype(np.uint8), (200, 1))  # heat rising left to right
    style = OverlayStyle(opacity=0.8, threshold=0.2, colormap="hot")
    shown = composite(film, ramp, style).astype(int)
    change = np.abs(shown - 100).sum(axis=-1)[100]
    floor = int(np.ceil(0.2 * 255))
    assert (change[ramp[100] <= floor] == 0).all()  # transparent at and below the floor
    just_above = change[(ramp[100] > floor) & (ramp[100] < floor + 10)]
    well_above = change[ramp[100] > floor + 0.15 * 255 + 5]
    assert just_above.max() < well_above.min()  # the colour fades in above the floor: no hard cut edge
    against = np.zeros((200, 200), np.uint8)
    against[60:140, 60:140] = 200  # a square of evidence against, above both dashed levels
    plain = composite(film, np.zeros_like(ramp), style)
    lined = composite(film, np.zeros_like(ramp), style, against)
    drawn = (lined != plain).any(axis=-1)
    assert drawn.sum() > 50
    rgb = lined[drawn].astype(int)
    assert (rgb[:, 2] >= rgb[:, 0]).all() and (rgb[:, 1] >= rgb[:, 0]).all()  # cyan, not the heat's colours
    assert (rgb[:, 1] > rgb[:, 0] + 50).mean() > 0.7  # (the anti-aliased rim lightens the film a little)
    edge = drawn[60, 50:150] | drawn[59, 50:150] | drawn[61, 50:150]
    assert 0 < edge.sum() < edge.size - 20  # dashed: the top edge has gaps
