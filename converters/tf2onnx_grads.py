"""tf2onnx handlers for the activation gradients that a Grad-CAM graph needs and tf2onnx lacks.

Importing this module registers them. ReluGrad(dy, x) = dy * (x > 0);
Relu6Grad(dy, x) = dy * (0 < x < 6).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto
from tf2onnx.handler import tf_op


def _mask(ctx, node, upper: float | None) -> None:
    dy, x = node.input
    zero = ctx.make_const(node.name + "/zero", np.zeros([], np.float32)).output[0]
    inside = ctx.make_node("Greater", [x, zero]).output[0]
    if upper is not None:
        top = ctx.make_const(node.name + "/upper", np.array(upper, np.float32)).output[0]
        below = ctx.make_node("Less", [x, top]).output[0]
        inside = ctx.make_node("And", [inside, below]).output[0]
    mask = ctx.make_node("Cast", [inside], attr={"to": TensorProto.FLOAT}).output[0]
    node.type = "Mul"
    ctx.replace_inputs(node, [dy, mask])


@tf_op("ReluGrad")
class ReluGrad:
    @classmethod
    def version_1(cls, ctx, node, **kwargs):
        _mask(ctx, node, None)


@tf_op("Relu6Grad")
class Relu6Grad:
    @classmethod
    def version_1(cls, ctx, node, **kwargs):
        _mask(ctx, node, 6.0)
