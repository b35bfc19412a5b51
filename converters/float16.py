"""Float16 storage of an ONNX model's weights: half the file, the same float32 arithmetic.

Every large float32 initializer is stored as float16 and cast back to float32 by a Cast node at
the start of the graph; ONNX Runtime folds those casts when it loads the session, so inference runs
in float32 exactly as before, only with weights rounded to float16. The converter keeps the result
only when probability and Grad-CAM stay within 1e-3 of the float32 model on real films.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_ELEMENTS = 1024  # small tensors (biases, BN vectors, shapes) are not worth it


def store_weights_float16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `proto` whose float32 initializers of MIN_ELEMENTS or more are stored as float16."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < MIN_ELEMENTS:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__f16")
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__to_f32"))
        init.CopyFrom(half)
    for node in reversed(casts):
        graph.node.insert(0, node)
    return model


def max_differences(full, half, films: np.ndarray, cam_size: tuple[int, int] = (224, 224)) -> dict:
    """Largest |probability| and normalised Grad-CAM differences of two sessions on `films` [N, H, W, 3]."""
    from xrayviewer.core.analysis.cam import CamInput, GradCAM

    names = ["probability", "features", "gradients"]
    a = dict(zip(names, full.run(names, {"image": films})))
    b = dict(zip(names, half.run(names, {"image": films})))
    cam = GradCAM()
    cams = [float(np.abs(cam.compute(CamInput(fa, ga), cam_size).map
                         - cam.compute(CamInput(fb, gb), cam_size).map).max())
            for fa, ga, fb, gb in zip(a["features"], a["gradients"], b["features"], b["gradients"])]
    return {"probability_max_abs_diff": float(np.abs(a["probability"] - b["probability"]).max()),
            "gradcam_max_abs_diff": max(cams), "films": int(len(films))}
