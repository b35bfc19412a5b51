"""The engine on tiny contract models run by ONNX Runtime: CAM methods, targets, OOD, contract refusals."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import build, quadrant_film

from xrayviewer.core.cam import METHODS, CamInput, GradCAM
from xrayviewer.core.contract import ModelContractError
from xrayviewer.core.engine import Engine
from xrayviewer.core.errors import XRayViewerError
from xrayviewer.core.session import open_model, resolve_provider


@pytest.fixture
def engine() -> Engine:
    return Engine("cpu")


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
    assert 0 <= result.cam.map.min() and result.cam.map.max() == pytest.approx(1.0)
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
    np.testing.assert_allclose(ours.map, reference / reference.max(), atol=1e-5)
    assert ours.peak == pytest.approx(reference.max(), rel=1e-5)


def test_normal_target_and_empty_map(tmp_path, engine):
    model = engine.model(build(tmp_path / "p.onnx", bias=-3.0))
    film = quadrant_film(64, (0, 0))
    pneumonia = engine.analyze(model, film, target="pneumonia")
    normal = engine.analyze(model, film, target="normal")
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


def test_ood_flag_from_the_model_file(tmp_path, engine):
    model = engine.model(build(tmp_path / "o.onnx", ood_threshold=0.5))
    bright = engine.analyze(model, np.full((32, 32), 250, np.uint8))
    dark = engine.analyze(model, np.full((32, 32), 20, np.uint8))
    assert bright.ood["flagged"] and not dark.ood["flagged"]
    assert bright.ood["reasons"] == ["unlike the training films"]
    assert bright.ood["score"] > 0.5 > dark.ood["score"]
    without_gate = engine.model(build(tmp_path / "n.onnx"))
    assert engine.analyze(without_gate, np.full((32, 32), 250, np.uint8)).ood == \
        {"score": None, "flagged": False, "reasons": []}


def test_colour_and_elongated_pictures_are_flagged_without_a_gate(tmp_path, engine):
    model = engine.model(build(tmp_path / "n.onnx"))
    photo = np.zeros((64, 64, 3), np.uint8)
    photo[..., 0] = 200  # red: no chest film is coloured
    assert engine.analyze(model, photo).ood["reasons"] == ["a colour image"]
    strip = np.full((40, 120), 100, np.uint8)
    assert engine.analyze(model, strip).ood == {"score": None, "flagged": True, "reasons": ["aspect ratio 3.0"]}
    gray_rgb = np.repeat(np.full((64, 64, 1), 90, np.uint8), 3, axis=2)
    assert not engine.analyze(model, gray_rgb).ood["flagged"]


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
    from xrayviewer.core.cam import EigenCAM

    features = np.abs(np.random.default_rng(0).normal(size=(5, 5, 64))).astype(np.float32)
    flat = features.reshape(25, -1)
    _, _, vt = np.linalg.svd(flat - flat.mean(0), full_matrices=False)
    reference = (flat @ vt[0]).reshape(5, 5)
    reference = reference if reference.sum() >= 0 else -reference
    np.testing.assert_allclose(EigenCAM().signed_map(CamInput(features, features)), reference, atol=1e-4)
