"""benchmarks/faithfulness.py on a handful of real films: a tiny ONNX model whose evidence is known by construction
(the top-left quadrant), so its true evidence map must beat a random map on deletion and insertion."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tiny_models import build

from xrayviewer.core.analysis.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import faithfulness  # noqa: E402


def test_the_true_evidence_beats_a_random_map(tmp_path, kermany):
    weights = np.zeros((4, 4, 3))
    weights[:2, :2] = 1.0  # the model reads the top-left quadrant only
    engine = Engine("cpu")
    model = engine.model(build(tmp_path / "tl.onnx", weights=weights, bias=-3.0))
    rng = np.random.default_rng(0)
    films = faithfulness.load_films(kermany / "PNEUMONIA", 4, rng)
    assert films.shape == (4, 224, 224) and films.dtype == np.uint8
    truth = np.zeros((224, 224), np.float32)
    truth[:112, :112] = 1
    maps = {"truth": lambda film: truth, "layercam": faithfulness.method_map(engine, model, "layercam")}
    black = np.zeros((1, 224, 224), np.uint8)  # a donor darker than every film: deleting evidence lowers the logit
    result = faithfulness.faithfulness(engine, model, films, black, maps, seed=0)

    assert set(result) == {"truth", "layercam", "random"}
    for name, figures in result.items():
        assert 0 <= figures["pointing_game"] <= 1 and 0 <= figures["lung_box_share"] <= 1
        assert figures["empty_maps"] == 0
        assert ("ms_per_film" in figures) == (name != "random")
    truth_figures = result["truth"]
    assert truth_figures["deletion_auc"] < result["random"]["deletion_auc"]
    assert truth_figures["deletion_vs_random"]["ci95"][1] < 0
    assert truth_figures["insertion_vs_random"]["ci95"][0] > 0
    lo, hi = truth_figures["deletion_vs_random"]["ci95"]
    assert lo <= truth_figures["deletion_vs_random"]["mean_difference"] <= hi
    assert result["layercam"]["deletion_vs_random"]["ci95"][1] < 0  # its map is the model's own evidence here
