"""Occlusion on real ONNX models: the tiny contract models (evidence known by construction) and the shipped
MobileNetV2, through the engine and `xrayviewer analyze`."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from tiny_models import build, engine_for_made_films, quadrant_film

from xrayviewer.core.analysis.cam import CamInput, Occlusion
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.perturbation import CELLS, FIRST_EVERY, interior, occlusion_map, patches

COARSE_CELLS = 7  # 64-px patches at a 32-px stride
from xrayviewer.core.errors import Cancelled


def two_sided_model(path, **card):
    """Features of the top-left quadrant count for pneumonia, those of the bottom-right against it."""
    weights = np.zeros((4, 4, 3))
    weights[:2, :2], weights[2:, 2:] = 1.0, -1.0
    return build(path, weights=weights, **card)


def quadrant_sums(grid: np.ndarray) -> dict[tuple[int, int], float]:
    h, w = grid.shape
    return {(r, c): float(grid[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2].sum())
            for r in (0, 1) for c in (0, 1)}


def test_the_signed_map_finds_evidence_for_and_against(tmp_path):
    """Two bright quadrants; the model reads the top-left one for pneumonia and the bottom-right one against."""
    engine = engine_for_made_films()
    model = engine.model(two_sided_model(tmp_path / "two.onnx"))
    film = np.maximum(quadrant_film(64, (0, 0)), quadrant_film(64, (1, 1)))
    (inference,) = engine.infer(model, [film])
    cam = engine.analysis(model, inference, film, method="occlusion").cam
    assert cam.method == "occlusion" and cam.map.shape == film.shape and cam.small.shape == (8, 8)
    sums = quadrant_sums(cam.signed)
    assert sums[(0, 0)] > 0 > sums[(1, 1)]
    assert sums[(0, 1)] == pytest.approx(0, abs=1e-6) and sums[(1, 0)] == pytest.approx(0, abs=1e-6)
    positive = quadrant_sums(cam.small)  # drawn: the evidence for the target only
    assert positive[(0, 0)] > 0 and positive[(1, 1)] == 0
    assert np.unravel_index(cam.map.argmax(), cam.map.shape) < (32, 32)
    normal = quadrant_sums(engine.analysis(model, inference, film, method="occlusion", target="normal").cam.small)
    assert normal[(0, 0)] == 0 and normal[(1, 1)] > 0


def test_the_border_is_never_scored_nor_drawn(tmp_path):
    engine = engine_for_made_films()
    model = engine.model(two_sided_model(tmp_path / "b.onnx",
                                         preprocessing={"scale": 1 / 255, "offset": 0.0, "border": 0.125}))
    film = quadrant_film(64, (0, 0))
    (inference,) = engine.infer(model, [film])
    scored = []

    def score(batch: np.ndarray) -> np.ndarray:
        scored.append(len(batch))
        return model.run(batch, ["probability"])["probability"][:, 0]

    signed = occlusion_map(inference.image, score, border=0.125)
    assert sum(scored) == 1 + 6 * 6  # the unoccluded input and the 36 cells inside the 1-px ring of the 8-px input
    ring = np.ones((8, 8), bool)
    ring[1:-1, 1:-1] = False
    assert (signed[ring] == 0).all() and signed[~ring].max() > 0
    cam = engine.analysis(model, inference, film, method="occlusion").cam
    drawn_ring = np.ones((64, 64), bool)
    drawn_ring[8:-8, 8:-8] = False
    assert cam.map[drawn_ring].max() == 0 and cam.heat[drawn_ring].max() == 0 and cam.map[~drawn_ring].max() > 0.5


def test_occlusion_needs_a_scoring_function():
    x = CamInput(np.ones((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32), np.ones((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="scoring function"):
        Occlusion().compute(x, (8, 8))


def test_the_grid_at_224_px():
    box = interior((224, 224), 0.09)
    assert box == (20, 204, 20, 204)
    (stride, _), fine = patches((224, 224), CELLS, box)
    assert stride == 16 and len(fine) == 12 * 12
    assert max(y1 - y0 for y0, y1, _, _ in fine) == 32 and min(y0 for y0, _, _, _ in fine) == 20
    (stride, _), coarse = patches((224, 224), COARSE_CELLS, box)
    assert stride == 32 and len(coarse) == 5 * 5 and max(y1 - y0 for y0, y1, _, _ in coarse) == 64
    _, first = patches((224, 224), CELLS, box, FIRST_EVERY)
    assert len(first) == 6 * 6 and set(first) <= set(fine)
    cover = np.zeros((224, 224), int)
    for y0, y1, x0, x1 in first:
        cover[y0:y1, x0:x1] += 1
    assert cover.max() == 1 and (cover[20:200, 20:200] == 1).all()  # they tile the interior (but a 4-px edge)


def test_on_the_shipped_model(kermany):
    engine = Engine("cpu")
    model = engine.model("mobilenetv2")
    film = cv2.imread(str(sorted((kermany / "PNEUMONIA").iterdir())[0]), cv2.IMREAD_GRAYSCALE)
    (inference,) = engine.infer(model, [film])
    cam = engine.cam(model, inference, "occlusion", "pneumonia", film.shape)
    assert cam.small.shape == (14, 14) and cam.signed.shape == (14, 14) and cam.peak > 0
    assert not cam.signed[0].any() and not cam.signed[:, -1].any()  # cells wholly in the 9 % ring
    y0, y1, x0, x1 = interior(film.shape, model.card.border)
    assert cam.map[:y0].max() == 0 and cam.map[:, x1:].max() == 0 and cam.map[y0:y1, x0:x1].max() > 0
    assert cam.reference == model.card.cam_reference("occlusion", CELLS)  # the card's scale for this grid
    coarse = Occlusion(COARSE_CELLS).signed_map(
        CamInput(inference.features, inference.gradients, inference.image,
                 lambda b: model.run(b, ["probability"])["probability"][:, 0], model.card.border))
    assert coarse.shape == (7, 7) and np.abs(coarse).max() > 0


def test_analyze_prints_an_occlusion_row(tmp_path, kermany):
    film = sorted((kermany / "PNEUMONIA").iterdir())[0]
    out = tmp_path / "overlays"
    result = subprocess.run([sys.executable, "-m", "xrayviewer", "analyze", str(film), "--model", "mobilenetv2",
                             "--provider", "cpu", "--method", "occlusion", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["method"] == "occlusion" and row["error"] is None and 0 <= row["probability"] <= 1
    assert cv2.imread(row["overlay"]) is not None and ".occlusion" in row["overlay"]


def shipped_inference(kermany):
    engine = Engine("cpu")
    model = engine.model("mobilenetv2")
    film = cv2.imread(str(sorted((kermany / "PNEUMONIA").iterdir())[1]), cv2.IMREAD_GRAYSCALE)
    (inference,) = engine.infer(model, [film])
    return engine, model, film, inference


def counting(model) -> list[int]:
    """Count the model's runs (images per run) from here on."""
    runs: list[int] = []
    original = model.run
    model.run = lambda images, outputs=None: runs.append(len(images)) or original(images, outputs)
    return runs


def test_the_card_fill_is_the_training_normal_mean_and_occlusion_uses_it(kermany):
    engine, model, film, inference = shipped_inference(kermany)
    fill = model.card.occlusion_fill
    assert fill is not None and fill.shape == model.card.input_size and fill.dtype == np.uint8
    y0, y1, x0, x1 = interior(fill.shape, model.card.border)
    assert 60 < fill[y0:y1, x0:x1].mean() < 200 and fill[y0:y1, x0:x1].std() > 10  # a chest, not a flat grey
    with_fill = engine.cam(model, inference, "occlusion", "pneumonia", film.shape, cells=COARSE_CELLS)
    local = occlusion_map(inference.image, lambda b: model.run(b, ["probability"])["probability"][:, 0],
                          model.card.border, COARSE_CELLS)
    assert with_fill.signed.shape == local.shape == (7, 7)
    assert not np.allclose(with_fill.signed, local)  # the card's fill, not the local mean, covered the patches


def test_a_map_seen_again_comes_from_the_cache(kermany):
    engine, model, film, inference = shipped_inference(kermany)
    runs = counting(model)
    first = engine.cam(model, inference, "occlusion", "pneumonia", film.shape, cells=COARSE_CELLS)
    assert sum(runs) == 1 + 25
    again = engine.cam(model, inference, "occlusion", "pneumonia", film.shape, cells=COARSE_CELLS)
    assert sum(runs) == 1 + 25, "the cached map ran the model again"
    assert np.array_equal(first.signed, again.signed) and again is not first
    assert engine.has_map(model, inference, "occlusion", "pneumonia", COARSE_CELLS)
    assert not engine.has_map(model, inference, "occlusion", "normal", COARSE_CELLS)
    engine.cam(model, inference, "occlusion", "normal", film.shape, cells=COARSE_CELLS)
    assert sum(runs) == 2 * (1 + 25)  # another target is another map
    engine.close()
    assert len(engine.maps) == 0


def test_the_first_picture_is_a_quarter_of_the_final_maps_patches_and_they_are_not_scored_twice(kermany):
    engine, model, film, inference = shipped_inference(kermany)
    runs = counting(model)
    first = engine.cam(model, inference, "occlusion", "pneumonia", film.shape, every=FIRST_EVERY)
    assert first.first and first.cells == CELLS and sum(runs) == 1 + 36
    final = engine.cam(model, inference, "occlusion", "pneumonia", film.shape)
    assert not final.first and sum(runs) == 1 + 144  # the 36 were reused
    assert first.reference == final.reference == model.card.cam_reference("occlusion", CELLS)
    fresh = Engine("cpu")  # the same map, scored from scratch in one go
    alone = fresh.cam(fresh.model("mobilenetv2"), inference, "occlusion", "pneumonia", film.shape)
    np.testing.assert_allclose(final.signed, alone.signed, atol=1e-5)


def test_a_cancelled_occlusion_stops_between_runs(kermany):
    engine, model, film, inference = shipped_inference(kermany)
    runs = counting(model)
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(Cancelled):
        engine.cam(model, inference, "occlusion", "pneumonia", film.shape, cancelled=cancelled)
    assert sum(runs) <= 1 + 2 * 8  # the unoccluded film and two runs of 8, not 145 inferences
    assert not engine.has_map(model, inference, "occlusion", "pneumonia", engine.refined_cells(model, "occlusion"))


def test_the_drawn_map_is_smooth_and_signed(kermany):
    engine, model, film, inference = shipped_inference(kermany)
    cam = engine.cam(model, inference, "occlusion", "pneumonia", (448, 448))
    assert cam.draws_against and cam.cells == engine.refined_cells(model, "occlusion")
    heat = cam.heat.astype(np.int16)
    inside = heat[60:-60, 60:-60]
    steps = np.abs(np.diff(inside, axis=0)).max(), np.abs(np.diff(inside, axis=1)).max()
    assert max(steps) <= 12  # no cut edge: at most a few levels per pixel at twice the input size
    against = cam.against_heat
    assert against is not None and against.shape == cam.heat.shape
    assert (cam.signed < 0).any() == (against.max() > 0)
    assert engine.cam(model, inference, "gradcam", "pneumonia", (448, 448)).against_heat is None
