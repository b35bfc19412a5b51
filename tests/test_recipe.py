"""Recipe v2 pieces on real chest films: border, augmentation, shifted validation, calibration, validation."""

from __future__ import annotations

import numpy as np
import pytest

from converters import dataset
from converters.augment import PERTURBATIONS, augment, shifted, shifted_round_robin
from converters.train import fit_temperature, sigmoid, to_input
from converters.validate import blanked, lung_mask
from xrayviewer.core.analysis.contract import ModelCard
from xrayviewer.core.analysis.preprocess import blank_border, model_input


@pytest.fixture(scope="module")
def films(validation_films):
    return dataset.load_gray(validation_films[:6], 224)[0]


def test_blank_border_sets_only_the_ring():
    gray = np.full((224, 224), 200, np.uint8)
    out = blank_border(gray, 0.09)
    assert out[:20].max() == 0 and out[-20:].max() == 0 and out[:, :20].max() == 0 and out[:, -20:].max() == 0
    assert (out[20:-20, 20:-20] == 200).all()
    assert gray.min() == 200  # the input is left alone
    assert (blank_border(gray, 0.0) == gray).all()


def test_model_input_applies_the_cards_border():
    card = {"input_size": [64, 64], "preprocessing": {"scale": 1 / 127.5, "offset": -1.0, "border": 0.125}}
    x = model_input(np.full((300, 200), 255, np.uint8), ModelCard(card))
    assert x.shape == (1, 64, 64, 3)
    assert np.allclose(x[0, :8], -1.0) and np.allclose(x[0, 8:-8, 8:-8], 1.0)
    card["preprocessing"].pop("border")  # a version-1 card without a border: nothing blanked
    assert np.allclose(model_input(np.full((300, 200), 255, np.uint8), ModelCard(card)), 1.0)


def test_to_input_matches_the_engine(films):
    card = ModelCard({"input_size": [224, 224], "preprocessing": {"scale": 1 / 127.5, "offset": -1.0,
                                                                  "border": 0.09}})
    assert np.array_equal(to_input(films[:1], 0.09), model_input(films[0], card))


def test_augment_changes_films_but_keeps_shape_and_is_seeded(films):
    a = [augment(g, np.random.default_rng(1)) for g in films]
    b = [augment(g, np.random.default_rng(1)) for g in films]
    assert all(x.shape == (224, 224) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.mean([np.abs(x.astype(int) - g).mean() for x, g in zip(a, films)]) > 5


def test_shifted_validation_is_fixed_and_covers_every_perturbation(films):
    one, two = shifted(films[:2]), shifted(films[:2])
    assert sorted(one) == sorted(PERTURBATIONS)
    for kind in one:
        assert one[kind].shape == (2, 224, 224)
        assert np.array_equal(one[kind], two[kind]), kind
        assert not np.array_equal(one[kind], films[:2]), f"{kind} changed nothing"
    robin = shifted_round_robin(films)
    assert robin.shape == films.shape and np.array_equal(robin, shifted_round_robin(films))


def test_temperature_undoes_an_overconfident_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 4000)
    labels = (rng.random(4000) < sigmoid(true_logits)).astype(float)
    t = fit_temperature(labels, 3 * true_logits)  # a model three times too confident
    assert 2.6 < t < 3.4


def test_blanking_and_lung_boxes():
    films = np.full((2, 224, 224), 100, np.uint8)
    assert blanked(films, "br", 24)[:, -24:, -24:].max() == 0 and blanked(films, "br", 24)[:, :200].min() == 100
    assert blanked(films, "ring", 20)[:, 20:-20, 20:-20].min() == 100
    assert abs(lung_mask().mean() - 0.51) < 0.01


def test_gpu_weights_round_trip_as_float16_chunks(tmp_path, monkeypatch):
    import json

    pytest.importorskip("keras", reason="the Keras round trip needs the convert extra (tensorflow)")

    from converters import gpu_train
    from converters.train import build_model

    monkeypatch.setattr(gpu_train, "CHUNK", 2**20)  # several chunks from a small model
    run, back = tmp_path / "run", tmp_path / "back"
    run.mkdir()
    model = build_model("mobilenetv2", 32)
    model.save(run / "final.keras")
    (run / "recipe.json").write_text(json.dumps({"architecture": "mobilenetv2", "input_size": 32,
                                                 "hyper": {"dropout": 0.3}}))
    (run / "history.csv").write_text("epoch\n0\n")
    gpu_train.send(run, tmp_path / "out", None)
    assert len(list((tmp_path / "out").glob("weights.f16.*"))) > 1
    assert all(p.stat().st_size <= 2**20 for p in (tmp_path / "out").glob("weights.f16.*"))
    import keras

    restored = keras.saving.load_model(gpu_train.unpack(tmp_path / "out", back), compile=False)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    assert np.abs(restored.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-2
    assert (back / "recipe.json").exists()


def test_float16_storage_halves_the_file_and_keeps_the_model(films):
    import onnx
    import onnxruntime as ort
    from xrayviewer.models import resolve

    from converters.float16 import max_differences, store_weights_float16
    from xrayviewer.core.analysis.contract import validate_session

    full = onnx.load(str(resolve("mobilenetv2")))
    half = store_weights_float16(full)
    assert len(half.SerializeToString()) < 0.6 * len(full.SerializeToString())
    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (full, half)]
    card = validate_session(sessions[1], "half.onnx")
    import cv2

    x = to_input(np.stack([cv2.resize(g, card.input_size[::-1], interpolation=cv2.INTER_AREA) for g in films]))
    diffs = max_differences(*sessions, x)
    assert diffs["probability_max_abs_diff"] < 1e-3
    assert 0 < diffs["gradcam_max_abs_diff"] < 0.05  # rounded weights: close, not identical


def test_validate_reports_every_figure_for_the_shipped_model(validation_films):
    from converters.validate import validate

    r = validate("mobilenetv2", samples=validation_films, limit=24)
    assert r["plain"]["n"] >= min(24, len(validation_films)) and 0 <= r["plain"]["auc"] <= 1
    assert r["shifted"]["n"] == 13 * r["plain"]["n"] and len(r["shifted"]["per_kind"]) == 13
    assert all(v >= 0 for k, v in r["shortcut"].items() if k != "unit")
    assert 0 < r["cam_lung_share"]["mean"] < 1 and r["cam_lung_share"]["n"] > 0
    lungs = r["lung_reliance"]
    assert 0 <= lungs["auc_lung_boxes_blanked"] <= 1 and 0 <= lungs["auc_only_lung_boxes"] <= 1
    assert r["cam_reference"]["gradcam"] > 0 and r["cam_reference"]["scorecam"] > 0


def test_fine_tuning_starts_from_the_shipped_files_function(films):
    pytest.importorskip("keras", reason="the Keras model needs the convert extra (tensorflow)")
    import onnxruntime as ort
    from xrayviewer.models import resolve

    from converters.onnx_init import load_onnx_weights
    from converters.train import build_model

    x = to_input(films[:8], 0.09)
    model = build_model("mobilenetv2", 224)
    load_onnx_weights(model, resolve("mobilenetv2"), x)
    session = ort.InferenceSession(str(resolve("mobilenetv2")), providers=["CPUExecutionProvider"])
    expected = session.run(["probability"], {"image": x})[0][:, 0]
    assert np.abs(model.predict(x, verbose=0)[:, 0] - expected).max() < 1e-4
    assert np.abs(model(x, training=True).numpy()[:, 0] - expected).mean() < 0.05  # batch statistics start near
