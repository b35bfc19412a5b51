"""Tiny contract-conforming ONNX models written with onnx.helper, for engine tests that need no trained model.

The model: features = ReLU(2x2 average pool of the input) ([N, 4, 4, 3] for an 8 x 8 input),
logit = sum(features * M) + b, so the exported gradient is exactly M; probability = sigmoid(logit).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from xrayviewer.core.analysis.contract import card_metadata

SIZE = 8


def card(**overrides) -> dict:
    data = {
        "name": "tiny", "architecture": "tiny-test", "classes": ["NORMAL", "PNEUMONIA"],
        "positive_class": "PNEUMONIA", "output": "sigmoid", "input_size": [SIZE, SIZE],
        "preprocessing": {"scale": 1 / 255, "offset": 0.0}, "cam_layer": "pool",
        "threshold": {"value": 0.5, "rule": "fixed"}, "validation": {}, "training_data": {},
        "recipe_version": "test", "converter_version": "test",
    }
    data.update(overrides)
    return data


def build(path: Path, weights: np.ndarray | None = None, bias: float = 0.0, drop: str | None = None,
          ood_threshold: float | None = None, **card_overrides) -> Path:
    """Write the tiny model to `path`; `weights` is M [4, 4, 3]; `drop` leaves one output out."""
    m = np.ones((4, 4, 3), np.float32) if weights is None else weights.astype(np.float32)
    inits = [
        numpy_helper.from_array(m[None], "M"),
        numpy_helper.from_array(np.array([bias], np.float32), "b"),
        numpy_helper.from_array(np.array([1, 2, 3], np.int64), "all_axes"),
    ]
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["nchw"], ["pooled_nchw"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Transpose", ["pooled_nchw"], ["pre"], perm=[0, 2, 3, 1]),
        helper.make_node("Relu", ["pre"], ["features"]),
        helper.make_node("Mul", ["features", "M"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "all_axes"], ["summed"], keepdims=1),
        helper.make_node("Reshape", ["summed", "shape_n1"], ["logit0"]),
        helper.make_node("Add", ["logit0", "b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
        helper.make_node("Shape", ["features"], ["fshape"]),
        helper.make_node("Expand", ["M", "fshape"], ["gradients"]),
        helper.make_node("ReduceMean", ["features"], ["pooled"], axes=[1, 2], keepdims=0),
        helper.make_node("ReduceMean", ["pooled"], ["ood_score"], axes=[1], keepdims=1),
    ]
    inits.append(numpy_helper.from_array(np.array([-1, 1], np.int64), "shape_n1"))
    outputs = {
        "probability": helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1]),
        "features": helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 4, 4, 3]),
        "gradients": helper.make_tensor_value_info("gradients", TensorProto.FLOAT, ["N", 4, 4, 3]),
        "pooled": helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", 3]),
        "ood_score": helper.make_tensor_value_info("ood_score", TensorProto.FLOAT, ["N", 1]),
    }
    if drop:
        outputs.pop(drop)
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        list(outputs.values()), inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    extra = {"ood": {"output": "ood_score", "threshold": ood_threshold}} if ood_threshold is not None else {}
    for key, value in card_metadata(card(**extra, **card_overrides)).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)
    return path


def quadrant_film(size: int = 64, quadrant: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A dark uint8 film with one bright quadrant (row, col) of (0|1, 0|1)."""
    film = np.full((size, size), 10, np.uint8)
    h = size // 2
    film[quadrant[0] * h:(quadrant[0] + 1) * h, quadrant[1] * h:(quadrant[1] + 1) * h] = 240
    return film


def build_detector(path: Path, threshold: float = 0.5) -> Path:
    """A tiny chest detector (the contract in xrayviewer.core.analysis.detector): P(chest) = sigmoid(20 (mean - 0.3)) on
    the gray film scaled to 0..1, so a bright film counts as a chest film and a dark one does not."""
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["mean", "c"], ["centred"]),
        helper.make_node("Mul", ["centred", "k"], ["logit0"]),
        helper.make_node("Reshape", ["logit0", "shape_n1"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["chest"]),
    ]
    inits = [numpy_helper.from_array(np.array([0.3], np.float32), "c"),
             numpy_helper.from_array(np.array([20.0], np.float32), "k"),
             numpy_helper.from_array(np.array([-1, 1], np.int64), "shape_n1")]
    graph = helper.make_graph(
        nodes, "detector", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", SIZE, SIZE, 1])],
        [helper.make_tensor_value_info("chest", TensorProto.FLOAT, ["N", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    detector_card = {"name": "tiny-detector", "input_size": [SIZE, SIZE],
                     "preprocessing": {"scale": 1 / 255, "offset": 0.0, "channels": 1}, "threshold": threshold}
    model.metadata_props.add(key="xrayviewer.detector_card", value=json.dumps(detector_card))
    onnx.save(model, path)
    return path


def engine_for_made_films():
    """A CPU engine whose gate leaves the chest detector and the detail check out: the tiny models' films are made
    squares, which the detector rightly refuses and which have no fine detail, and these tests are about what
    happens after the gate."""
    from xrayviewer.core.analysis.checks import detail
    from xrayviewer.core.analysis.detector import ChestDetector
    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.analysis.gate import Gate, default_checks

    return Engine("cpu", Gate([c for c in default_checks() if not isinstance(c, ChestDetector) and c is not detail]))
