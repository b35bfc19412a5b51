"""Model files that break the contract's types, give unusable numbers or never finish: each gets a clear refusal
that names the file (and the card key), from real ONNX Runtime sessions on models written with onnx.helper."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tiny_models import build, engine_for_made_films, quadrant_film

from xrayviewer.core.analysis.contract import META_CARD, ModelContractError
from xrayviewer.core.analysis.session import ModelOutputError, open_model


def with_card_text(path, text: str):
    """Replace the model card of the file at `path` by `text` (any JSON, or none)."""
    model = onnx.load(path)
    for prop in model.metadata_props:
        if prop.key == META_CARD:
            prop.value = text
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("card_json, key", [
    ("0.5", "not a JSON object"),
    ('"a string"', "not a JSON object"),
    ("[1, 2]", "not a JSON object"),
])
def test_a_card_that_is_not_an_object_is_refused(tmp_path, card_json, key):
    path = with_card_text(build(tmp_path / "odd card.onnx"), card_json)
    with pytest.raises(ModelContractError) as info:
        open_model(path, "cpu")
    assert str(path) in str(info.value) and key in str(info.value)


@pytest.mark.parametrize("overrides, key", [
    ({"input_size": 8}, "'input_size'"),
    ({"input_size": [8, "8"]}, "'input_size'"),
    ({"threshold": 0.5}, "'threshold'"),
    ({"threshold": {"value": float("nan"), "rule": "fixed"}}, "'threshold.value'"),
    ({"threshold": {"value": 1.5}}, "'threshold.value'"),
    ({"threshold": {"value": "0.5"}}, "'threshold.value'"),
    ({"preprocessing": {"scale": "1/255", "offset": 0}}, "'preprocessing.scale'"),
    ({"preprocessing": {}}, "'preprocessing.scale'"),
    ({"preprocessing": "none"}, "'preprocessing'"),
    ({"preprocessing": {"scale": 0.004, "offset": float("inf")}}, "'preprocessing.offset'"),
    ({"classes": "NORMAL,PNEUMONIA"}, "'classes'"),
    ({"positive_class": "COVID"}, "'positive_class'"),
    ({"name": ""}, "'name'"),
    ({"ood": {"output": "ood_score", "threshold": None}}, "'ood.threshold'"),
])
def test_card_values_are_type_checked(tmp_path, overrides, key):
    path = build(tmp_path / "bad-card.onnx", **overrides)
    with pytest.raises(ModelContractError) as info:
        open_model(path, "cpu")
    message = str(info.value)
    assert str(path) in message and f"invalid model card key {key}" in message
    assert "Traceback" not in message


def test_unknown_card_keys_are_tolerated(tmp_path):
    model = open_model(build(tmp_path / "extra.onnx", notes={"any": "thing"}, figures=[1, 2]), "cpu")
    assert model.card.data["notes"] == {"any": "thing"} and model.card.threshold == 0.5


def test_the_shipped_models_pass_the_typed_contract():
    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.models import available

    assert available()
    engine = Engine("cpu")  # opens a consensus card's members too
    for name in available():
        assert 0 < engine.model(name).card.threshold < 1


def test_a_nan_probability_is_refused_and_the_batch_can_go_on_one_by_one(tmp_path):
    weights = np.ones((4, 4, 3), np.float32)
    weights[0, 0, 0] = np.nan
    engine = engine_for_made_films()
    model = engine.model(build(tmp_path / "nan.onnx", weights=weights))
    with pytest.raises(ModelOutputError) as info:
        engine.infer(model, [quadrant_film()])
    assert "nan.onnx" in str(info.value) and "'probability' holds NaN" in str(info.value)


def replace_sigmoid(path, op: str):
    """The tiny model with its final Sigmoid swapped for `op` (Identity: the logit itself as 'probability')."""
    model = onnx.load(path)
    for node in model.graph.node:
        if node.op_type == "Sigmoid":
            node.op_type = op
    onnx.save(model, path)
    return path


def test_a_probability_outside_0_1_is_refused(tmp_path):
    engine = engine_for_made_films()
    model = engine.model(replace_sigmoid(build(tmp_path / "logit.onnx", bias=5.0), "Identity"))
    with pytest.raises(ModelOutputError, match=r"logit\.onnx.*'probability' is outside \[0, 1\]"):
        engine.infer(model, [quadrant_film()])


def test_a_heatmap_that_overflows_is_refused(tmp_path):
    engine = engine_for_made_films()
    model = engine.model(build(tmp_path / "huge.onnx", weights=np.full((4, 4, 3), 3e38, np.float32)))
    (inference,) = engine.infer(model, [quadrant_film(64, (0, 0))])  # P = 1: finite
    with pytest.raises(ModelOutputError, match=r"huge\.onnx: unusable gradcam heatmap"):
        engine.analysis(model, inference, quadrant_film(64, (0, 0)), "gradcam", force=True)


def endless(path):
    """The tiny model whose logit also adds 0 x the result of a Loop that never ends."""
    model = onnx.load(build(path))
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["acc_in", "one"],
                                                                                   ["acc_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array([1.0], np.float32), "one")])
    graph = model.graph
    graph.initializer.extend([numpy_helper.from_array(np.array(True), "forever"),
                              numpy_helper.from_array(np.array([0.0], np.float32), "zero")])
    for node in graph.node:
        if node.op_type == "Add" and list(node.output) == ["logit"]:
            node.input[0] = "logit_plus"
    graph.node.extend([helper.make_node("Loop", ["", "forever", "zero"], ["count"], body=body),
                       helper.make_node("Mul", ["count", "zero"], ["nothing"]),
                       helper.make_node("Add", ["logit0", "nothing"], ["logit_plus"])])
    onnx.save(model, path)
    return path


def test_an_endless_model_is_stopped_at_its_time_limit_and_not_run_again(tmp_path):
    engine = engine_for_made_films()
    model = engine.model(endless(tmp_path / "endless.onnx"))
    model.limit_base_s, model.limit_per_image_s = 1.0, 0.5
    start = time.perf_counter()
    with pytest.raises(ModelOutputError, match=r"endless\.onnx: model too slow: a run of 2 image\(s\) took longer"):
        engine.infer(model, [quadrant_film(), quadrant_film()])
    assert time.perf_counter() - start < 10
    start = time.perf_counter()
    with pytest.raises(ModelOutputError, match="model stopped"):
        engine.infer(model, [quadrant_film()])
    assert time.perf_counter() - start < 1


def test_analyze_with_an_endless_model_ends_with_error_lines(tmp_path):
    """The command as a user runs it, with the real time limit: one error line per film, exit code 1."""
    import cv2

    films = []
    for i in range(2):
        films.append(tmp_path / f"film{i}.png")
        cv2.imwrite(str(films[-1]), quadrant_film(64, (i, 0)))
    model = endless(tmp_path / "endless.onnx")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "xrayviewer", "analyze", *map(str, films), "--model", str(model),
                             "--provider", "cpu", "--force"], capture_output=True, text=True, timeout=120)
    assert time.perf_counter() - start < 100
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == list(map(str, films))
    assert "took longer than" in rows[0]["error"] and "model stopped" in rows[1]["error"]
    assert all(r["probability"] is None for r in rows)


@pytest.mark.parametrize("threshold", ["high", float("nan"), 2.0])
def test_a_detector_card_with_a_bad_threshold_is_refused(tmp_path, threshold):
    from tiny_models import build_detector

    from xrayviewer.core.analysis.detector import ChestDetector
    from xrayviewer.core.analysis.findings import Subject

    detector = ChestDetector(build_detector(tmp_path / "detector.onnx", threshold=threshold))
    with pytest.raises(ModelContractError, match=r"detector\.onnx: chest detector cannot be used: .*'threshold'"):
        detector(Subject(quadrant_film()))
