"""The engine on tiny contract models run by ONNX Runtime: CAM methods, targets, OOD, contract refusals."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import build, engine_for_made_films, quadrant_film

from xrayviewer.core.analysis.cam import METHODS, CamInput, GradCAM
from xrayviewer.core.analysis.contract import ModelContractError
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.session import open_model, resolve_provider
from xrayviewer.core.errors import XRayViewerError


@pytest.fixture
def engine() -> Engine:
    return engine_for_made_films()


def peak_quadrant(cam_map: np.ndarray) -> tuple[int, int]:
    h, w = cam_map.shape
    sums = {(r, c): cam_map[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2].sum()
            for r in (0, 1) for c in (0, 1)}
    return max(sums, key=sums.get)


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("quadrant", [(0, 0), (1, 1), (0, 1)])
def test_every_method_peaks_where_the_evidence_is(tmp_path, engine, method, quadrant):
    model = engine.model(build(tmp_path / "tiny.onnx", weights=np.array([1.0, 0.5, 0.25]) * np.ones((4, 4, 3))))
    film = quadrant_film(64, quadrant)
    result = engine.analyze(model, film, method=method)
    assert result.cam.map.shape == film.shape
    assert 0 <= result.cam.map.min() and result.cam.small.max() == pytest.approx(1.0)
    assert result.cam.map.max() > 0.9  # bilinear drawing may miss an isolated peak cell's centre
    assert peak_quadrant(result.cam.map) == quadrant
    assert result.cam.peak > 0


def test_layercam_follows_spatial_gradients(tmp_path, engine):
    """The model only looks at the top-left quadrant: of two bright quadrants, Layer-CAM lights that one."""
    weights = np.zeros((4, 4, 3))
    weights[:2, :2] = 1.0
    model = engine.model(build(tmp_path / "tl.onnx", weights=weights))
    film = np.maximum(quadrant_film(64, (0, 0)), quadrant_film(64, (1, 1)))
    assert peak_quadrant(engine.analyze(model, film, method="layercam").cam.map) == (0, 0)


def test_gradcam_equals_numpy_reference(tmp_path, engine):
    rng = np.random.default_rng(3)
    weights = rng.normal(0.3, 1.0, size=(4, 4, 3))  # mixed signs, positive on the whole
    model = engine.model(build(tmp_path / "r.onnx", weights=weights))
    film = (rng.random((40, 40)) * 255).astype(np.uint8)
    (inference,) = engine.infer(model, [film])
    feats = inference.features
    np.testing.assert_allclose(inference.gradients, weights, atol=1e-6)  # the exported gradient is M
    reference = np.maximum((feats * weights.mean(axis=(0, 1))).sum(-1), 0)
    ours = GradCAM().compute(CamInput(feats, inference.gradients), (4, 4))
    np.testing.assert_allclose(ours.small, reference / reference.max(), atol=1e-5)
    assert ours.peak == pytest.approx(reference.max(), rel=1e-5)


def test_normal_target_and_empty_map(tmp_path, engine):
    model = engine.model(build(tmp_path / "p.onnx", bias=-3.0))
    film = quadrant_film(64, (0, 0))
    pneumonia = engine.analyze(model, film, "gradcam", target="pneumonia")
    normal = engine.analyze(model, film, "gradcam", target="normal")
    assert pneumonia.cam.peak > 0
    assert normal.cam.peak == 0 and normal.cam.map.max() == 0  # no evidence for NORMAL: empty, not stretched
    assert pneumonia.probability == normal.probability


def test_probability_label_threshold_and_batch(tmp_path, engine):
    model = engine.model(build(tmp_path / "t.onnx", bias=-1.5, threshold={"value": 0.3, "rule": "test"}))
    films = [quadrant_film(64, (0, 0)), np.full((64, 64), 10, np.uint8)]
    batch = engine.infer(model, films)
    single = [engine.infer(model, [f])[0] for f in films]
    for b, s in zip(batch, single):
        assert b.probability == pytest.approx(s.probability, abs=1e-6)
    result = engine.analysis(model, batch[0], films[0])
    expected = 1 / (1 + np.exp(-(batch[0].features.sum() - 1.5)))
    assert result.probability == pytest.approx(expected, rel=1e-5)
    assert result.threshold == 0.3 and result.label == ("PNEUMONIA" if result.probability >= 0.3 else "NORMAL")
    assert result.provider == "CPUExecutionProvider"


def bright_and_dark() -> tuple[np.ndarray, np.ndarray]:
    """Two films with texture (not flat): a bright one (tiny OOD score ~0.8) and a dark one (~0.2)."""
    ramp = np.tile(np.linspace(0, 60, 32, dtype=np.float32), (32, 1))
    return (190 + ramp).astype(np.uint8), (20 + ramp).astype(np.uint8)


def test_the_models_own_gate_refuses_with_score_and_limit(tmp_path, engine):
    model = engine.model(build(tmp_path / "o.onnx", ood_threshold=0.5))
    bright, dark = bright_and_dark()
    refused, passed = engine.analyze(model, bright), engine.analyze(model, dark)
    assert [r.code for r in refused.refused] == ["ood_score"] and passed.refused == []
    reason = refused.refused[0]
    assert reason.score > reason.limit == 0.5 and f"> limit {reason.limit:.2f}" in str(reason)
    assert str(reason).startswith("unlike the training films: out-of-distribution score")
    assert refused.label is None and refused.probability is None and refused.cam is None
    assert passed.label in ("NORMAL", "PNEUMONIA") and passed.cam is not None and not passed.out_of_scope
    assert refused.ood_score > 0.5 > passed.ood_score
    forced = engine.analyze(model, bright, force=True)
    assert forced.out_of_scope and forced.label in ("NORMAL", "PNEUMONIA") and forced.cam is not None
    assert forced.probability == pytest.approx(engine.infer(model, [bright])[0].probability, abs=1e-6)
    assert forced.refused == refused.refused
    without_gate = engine.analyze(engine.model(build(tmp_path / "n.onnx")), bright)
    assert without_gate.refused == [] and without_gate.ood_score is None


def test_colour_elongated_and_flat_pictures_are_refused_without_a_model_gate(tmp_path, engine):
    model = engine.model(build(tmp_path / "n.onnx"))
    photo = np.zeros((64, 64, 3), np.uint8)
    photo[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)  # a red ramp: no chest film is coloured
    (colour,) = engine.analyze(model, photo).refused
    assert colour.code == "colour" and colour.score > colour.limit == 3.0
    strip = np.tile(np.linspace(0, 255, 120, dtype=np.uint8), (40, 1))
    (aspect,) = engine.analyze(model, strip).refused
    assert (aspect.code, aspect.score, aspect.limit) == ("aspect", 3.0, 2.0)
    assert str(aspect).startswith("aspect ratio 3.0 > limit 2.0")
    (flat,) = engine.analyze(model, np.full((64, 64), 128, np.uint8)).refused
    assert flat.code == "flat" and flat.score < flat.limit and "standard deviation" in str(flat)
    gray_rgb = np.repeat(quadrant_film(64)[..., None], 3, axis=2)
    assert engine.analyze(model, gray_rgb).refused == []


def test_batched_inference_then_gated_analyses(tmp_path, engine):
    """One batch of mixed films: each gets its own verdict, and the admitted ones their own result."""
    model = engine.model(build(tmp_path / "b.onnx", bias=-1.0))
    films = [quadrant_film(64, (0, 0)), np.full((64, 64), 90, np.uint8), quadrant_film(64, (1, 1))]
    results = [engine.analysis(model, inf, film) for film, inf in zip(films, engine.infer(model, films))]
    assert [bool(r.refused) for r in results] == [False, True, False]
    assert results[0].probability == pytest.approx(engine.analyze(model, films[0]).probability, abs=1e-6)


def test_reference_scale_keeps_a_confident_normal_faint(tmp_path, engine):
    """With the card's cam_reference the map is raw / reference: weak evidence stays weak, not stretched to red."""
    film = quadrant_film(64, (0, 0))
    plain = engine.model(build(tmp_path / "p.onnx", bias=-18.0))
    scaled = engine.model(build(tmp_path / "r.onnx", bias=-18.0, cam_reference={"gradcam": 10.0, "rule": "test"}))
    stretched, relative = engine.analyze(plain, film, "gradcam"), engine.analyze(scaled, film, "gradcam")
    assert stretched.probability < 0.01 and relative.label == "NORMAL"
    assert stretched.cam.reference is None and stretched.cam.heat.max() == 255  # today's per-image stretch
    assert relative.cam.reference == 10.0 and relative.cam.peak == pytest.approx(stretched.cam.peak)
    assert relative.cam.heat.max() < 0.5 * 255
    np.testing.assert_allclose(relative.cam.map, np.clip(stretched.cam.map * stretched.cam.peak / 10.0, 0, 1),
                               atol=2e-3)
    assert relative.cam.relative_peak == pytest.approx(stretched.cam.peak / 10.0)
    other = engine.analyze(scaled, film, method="layercam")  # no reference for this method: stretched
    assert other.cam.reference is None and other.cam.heat.max() == 255


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"drop": "gradients"}, "missing outputs.*gradients"),
    ({"input_size": [16, 16]}, "input size mismatch"),
    ({"threshold": None, "name": None}, ""),
])
def test_contract_breaking_models_are_refused_with_the_reason(tmp_path, kwargs, message):
    path = tmp_path / "bad.onnx"
    card_keys = {k: v for k, v in kwargs.items() if k != "drop"}
    if any(v is None for v in card_keys.values()):
        import json

        import onnx

        build(path)
        proto = onnx.load(path)
        for prop in proto.metadata_props:
            if prop.key == "xrayviewer.model_card":
                data = json.loads(prop.value)
                del data["threshold"], data["name"]
                prop.value = json.dumps(data)
        onnx.save(proto, path)
        message = "incomplete model card.*name, threshold"
    else:
        build(path, drop=kwargs.get("drop"), **card_keys)
    with pytest.raises(ModelContractError, match=f"bad.onnx.*{message}"):
        open_model(path, "cpu")


def test_not_an_onnx_file(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelContractError, match="junk.onnx.*not a loadable ONNX model"):
        open_model(junk, "cpu")


def test_providers_never_fall_back_silently():
    assert resolve_provider("cpu") == "CPUExecutionProvider"
    assert resolve_provider("auto") in ("CUDAExecutionProvider", "DmlExecutionProvider", "CPUExecutionProvider")
    import onnxruntime as ort

    if "DmlExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(XRayViewerError, match="provider 'dml' is not available"):
            resolve_provider("dml")
    with pytest.raises(XRayViewerError, match="unknown provider"):
        resolve_provider("tpu")


def test_models_are_cached(tmp_path, engine):
    path = build(tmp_path / "c.onnx")
    assert engine.model(path) is engine.model(path)


def test_eigencam_equals_the_svd_definition():
    from xrayviewer.core.analysis.cam import EigenCAM

    features = np.abs(np.random.default_rng(0).normal(size=(5, 5, 64))).astype(np.float32)
    flat = features.reshape(25, -1)
    _, _, vt = np.linalg.svd(flat - flat.mean(0), full_matrices=False)
    reference = (flat @ vt[0]).reshape(5, 5)
    reference = reference if reference.sum() >= 0 else -reference
    np.testing.assert_allclose(EigenCAM().signed_map(CamInput(features, features)), reference, atol=1e-4)


def test_the_faithfulness_words_say_whether_a_method_shows_the_evidence():
    from xrayviewer.core.analysis.wording import faithfulness

    good = {"pointing_game": 0.95, "lung_box_share": 0.75,
            "deletion_vs_random": {"mean_difference": -1.3, "ci95": [-1.5, -1.1]}}
    bad = {"pointing_game": 0.05, "lung_box_share": 0.55,
           "deletion_vs_random": {"mean_difference": -0.4, "ci95": [-0.5, -0.3]}}
    text = faithfulness("Occlusion", good, 373)
    assert "373 validation" in text and "95%" in text and "-1.30" in text and "shows where" in text
    assert "does not show" in faithfulness("Grad-CAM", bad, 373)
    assert "unknown" in faithfulness("Eigen-CAM", None)


def test_a_shipped_result_carries_its_methods_measured_faithfulness():
    engine = Engine("cpu")
    model = engine.model("mobilenetv2")
    film = np.full((224, 224), 120, np.uint8)
    film[40:180, 30:100] = 90
    analysis = engine.analyze(model, film, "gradcam", force=True)
    assert model.card.faithfulness("gradcam") is not None and model.card.faithfulness_films
    assert f"On {model.card.faithfulness_films} validation" in analysis.faithfulness
