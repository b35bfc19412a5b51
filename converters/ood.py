"""Out-of-distribution gate built into the graph: how far a film is from the training films.

Two gates, each fitted on training films only (mean, top-k principal directions and their
variances): one on the model input averaged to ~32 x 32 (layout and contrast of a chest film),
one on the pooled CAM-layer features. Each score = (Mahalanobis distance^2 in those k directions
/ k + residual^2 / mean training residual^2) / 2; its threshold is a high percentile of the
training films' scores. The graph's output `ood_score` [N, 1] is the larger score / threshold,
so the card's threshold is 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

COMPONENTS = 32
PERCENTILE = 99.5  # of training scores: each gate's calibrated threshold


@dataclass(frozen=True)
class Gate:
    mean: np.ndarray  # [C]
    directions: np.ndarray  # [C, k], orthonormal columns
    variances: np.ndarray  # [k]
    residual: float  # mean squared residual of training films
    threshold: float = 0.0

    def score(self, pooled: np.ndarray) -> np.ndarray:
        centered = pooled - self.mean
        z = centered @ self.directions
        mahalanobis = (z ** 2 / self.variances).sum(axis=1) / len(self.variances)
        residual = np.maximum((centered ** 2).sum(axis=1) - (z ** 2).sum(axis=1), 0) / self.residual
        return (mahalanobis + residual) / 2


def fit(pooled: np.ndarray, components: int = COMPONENTS, percentile: float = PERCENTILE) -> Gate:
    """The gate from training films' pooled features `[N, C]`, with its threshold at `percentile`."""
    pooled = pooled.astype(np.float64)
    mean = pooled.mean(axis=0)
    _, s, vt = np.linalg.svd(pooled - mean, full_matrices=False)
    k = min(components, len(s))
    directions = vt[:k].T
    variances = np.maximum(s[:k] ** 2 / (len(pooled) - 1), 1e-12)
    centered = pooled - mean
    z = centered @ directions
    residual = float(np.maximum((centered ** 2).sum(1) - (z ** 2).sum(1), 0).mean()) or 1e-12
    gate = Gate(mean, directions, variances, residual)
    threshold = float(np.percentile(gate.score(pooled), percentile))
    return Gate(mean.astype(np.float32), directions.astype(np.float32), variances.astype(np.float32),
                residual, threshold)


PIXEL_GRID = 32  # the pixel gate looks at the model input averaged down to about 32 x 32


def add_pixel_vector(proto, input_size: tuple[int, int], output: str = "ood_pixels") -> str:
    """Nodes that average channel 0 of `image` down to about 32 x 32 and flatten it to `[N, P]`."""
    k = max(1, input_size[0] // PIXEL_GRID)
    cells = (input_size[0] // k) * (input_size[1] // k)
    g = proto.graph
    p = {key: f"ood_pixels_{key}" for key in ("start", "end", "axis", "shape", "gray", "nchw", "small")}
    g.initializer.extend([
        numpy_helper.from_array(np.array([0], np.int64), p["start"]),
        numpy_helper.from_array(np.array([1], np.int64), p["end"]),
        numpy_helper.from_array(np.array([3], np.int64), p["axis"]),
        numpy_helper.from_array(np.array([-1, cells], np.int64), p["shape"]),
    ])
    g.node.extend([
        helper.make_node("Slice", ["image", p["start"], p["end"], p["axis"]], [p["gray"]]),
        helper.make_node("Transpose", [p["gray"]], [p["nchw"]], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", [p["nchw"]], [p["small"]], kernel_shape=[k, k], strides=[k, k]),
        helper.make_node("Reshape", [p["small"], p["shape"]], [output]),
    ])
    return output


def add_gate(proto, gate: Gate, source: str, prefix: str) -> str:
    """Nodes computing `gate.score(source) / gate.threshold` ([N, 1]); returns the output's name."""
    g = proto.graph
    n = {key: f"{prefix}_{key}" for key in ("mean", "dirs", "inv_var", "inv_res", "scale", "axis")}
    g.initializer.extend([
        numpy_helper.from_array(gate.mean.astype(np.float32), n["mean"]),
        numpy_helper.from_array(gate.directions.astype(np.float32), n["dirs"]),
        numpy_helper.from_array((1 / (gate.variances * len(gate.variances))).astype(np.float32), n["inv_var"]),
        numpy_helper.from_array(np.array([1 / gate.residual], np.float32), n["inv_res"]),
        numpy_helper.from_array(np.array([0.5 / gate.threshold], np.float32), n["scale"]),
        numpy_helper.from_array(np.array([1], np.int64), n["axis"]),
    ])
    steps = [
        ("Sub", [source, n["mean"]], "centered"),
        ("MatMul", ["centered", n["dirs"]], "z"),
        ("Mul", ["z", "z"], "z2"),
        ("Mul", ["z2", n["inv_var"]], "z2_scaled"),
        ("ReduceSum", ["z2_scaled", n["axis"]], "mahalanobis"),
        ("Mul", ["centered", "centered"], "c2"),
        ("ReduceSum", ["c2", n["axis"]], "norm2"),
        ("ReduceSum", ["z2", n["axis"]], "proj2"),
        ("Sub", ["norm2", "proj2"], "res2_raw"),
        ("Relu", ["res2_raw"], "res2"),
        ("Mul", ["res2", n["inv_res"]], "residual"),
        ("Add", ["mahalanobis", "residual"], "sum"),
        ("Mul", ["sum", n["scale"]], "ratio"),
    ]

    def name(t: str) -> str:
        return t if t in (source, *n.values()) else f"{prefix}_{t}"

    g.node.extend(helper.make_node(op, [name(i) for i in ins], [name(out)]) for op, ins, out in steps)
    return name("ratio")


def add_output(proto, name: str, shape: list) -> None:
    proto.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))


def remove_output(proto, name: str) -> None:
    kept = [o for o in proto.graph.output if o.name != name]
    del proto.graph.output[:]
    proto.graph.output.extend(kept)


def add_combined_score(proto, ratios: list[str], output: str = "ood_score") -> None:
    """`ood_score` = the largest of the gates' score/threshold ratios: above 1 is out of distribution."""
    proto.graph.node.append(helper.make_node("Max", ratios, [output]))
    add_output(proto, output, ["N", 1])


def card_entry(pixel: Gate, feature: Gate) -> dict:
    return {
        "output": "ood_score",
        "threshold": 1.0,
        "method": "largest of two gates' score / threshold. Each score = (Mahalanobis distance^2 in the top-k "
                  "principal directions / k + residual^2 / mean training residual^2) / 2 of (a) the model input "
                  f"averaged to ~{PIXEL_GRID} x {PIXEL_GRID} (k={len(pixel.variances)}) and (b) the pooled CAM-layer "
                  f"features (k={len(feature.variances)})",
        "calibration": f"each gate's threshold = {PERCENTILE:g}th percentile of its scores on the training films",
        "gate_thresholds": {"pixels": round(pixel.threshold, 6), "features": round(feature.threshold, 6)},
    }
