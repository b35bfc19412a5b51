"""Move a contract model's CAM layer to a finer, earlier layer, inside the ONNX file (no TensorFlow needed).

    python -m converters.finer_cam models/mobilenetv2-pneumonia.onnx --layer block_13_expand_relu --out FILE
    python -m converters.validate FILE --write-card      # the new layer's CAM reference and lung share

The contract's `gradients` output is d(logit)/d(features) at the CAM layer (7 x 7 for a 224-px
MobileNetV2). This carries that gradient back to an earlier layer (14 x 14) with ONNX ops: the
backward of each Conv (ConvTranspose, grouped for depthwise), Clip (ReLU6), Relu, Add, Mul by a
constant (BatchNorm) and Pad between the two layers; any other op is refused by name. `features` and
`gradients` then come from the new layer; the probability, pooled features and OOD score are
untouched (the pooling keeps reading the old layer, renamed inside the graph).

Before it writes, the new gradient is checked against a central difference of the model's own logit
(ONNX Runtime, the layer's activations moved along the gradient) on 16 validation films, and the
file is refused when they differ by more than --tolerance.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converters.validate import write_card
from xrayviewer.core.analysis.contract import META_CARD

PERM_TO_NCHW, PERM_TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


class FinerCamError(Exception):
    """The model cannot be given that CAM layer; the message says why."""


def _layer_tensor(graph: onnx.GraphProto, layer: str) -> str:
    """The output tensor of the node named after Keras layer `layer` (tf2onnx keeps the names)."""
    found = [n.output[0] for n in graph.node if f"/{layer}_1/" in n.name or n.name.endswith(f"/{layer}")]
    if len(found) != 1:
        raise FinerCamError(f"expected one node for layer '{layer}', found {len(found)}")
    return found[0]


def _on_path(graph: onnx.GraphProto, start: str, end: str) -> list[onnx.NodeProto]:
    """The nodes on a path from tensor `start` to tensor `end`, in graph (topological) order."""
    after, reached = {start}, []
    for node in graph.node:
        if any(i in after for i in node.input):
            after.update(node.output)
            reached.append(node)
    before = {end}
    for node in reversed(reached):
        if any(o in before for o in node.output):
            before.update(i for i in node.input if i in after)
    return [n for n in reached if any(o in before for o in n.output)]


def add_finer_cam(model: onnx.ModelProto, layer: str) -> onnx.ModelProto:
    """A copy of `model` whose `features` and `gradients` outputs are at Keras layer `layer`."""
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    produced = {o: n for n in graph.node for o in n.output}
    old_features = produced["features"]  # Transpose(NCHW CAM activations) -> NHWC
    if old_features.op_type != "Transpose":
        raise FinerCamError("the 'features' output is not a transposed activation (not a tf2onnx contract file)")
    end, start = old_features.input[0], _layer_tensor(graph, layer)
    nodes = _on_path(graph, start, end)
    if not nodes:
        raise FinerCamError(f"layer '{layer}' does not lie before the CAM layer")
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    new: list[onnx.NodeProto] = []
    count = itertools.count()

    def emit(op: str, inputs: list[str], **attrs) -> str:
        out = f"finer_cam/{op}_{next(count)}"
        new.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def constant(values: np.ndarray) -> str:
        name = f"finer_cam/const_{next(count)}"
        graph.initializer.append(numpy_helper.from_array(values, name))
        return name

    def is_const(name: str) -> bool:
        return name in constants

    grads: dict[str, list[str]] = defaultdict(list)
    grads[end].append(emit("Transpose", ["gradients_of_old_layer"], perm=PERM_TO_NCHW))
    on_path = {start} | {o for n in nodes for o in n.output}  # the tensors that carry a gradient back
    for node in reversed(nodes):
        parts = grads.pop(node.output[0], [])
        if not parts:
            continue
        dy = parts[0] if len(parts) == 1 else emit("Sum", parts)
        x = node.input[0]
        if node.op_type in ("Clip", "Relu"):
            inside = emit("Greater", [x, node.input[1] if node.op_type == "Clip" else constant(np.float32(0))])
            if node.op_type == "Clip" and len(node.input) > 2 and node.input[2]:
                inside = emit("And", [inside, emit("Less", [x, node.input[2]])])
            grads[x].append(emit("Mul", [dy, emit("Cast", [inside], to=TensorProto.FLOAT)]))
        elif node.op_type == "Add":
            for i in node.input:
                if i in on_path:
                    grads[i].append(dy)
        elif node.op_type == "Mul":
            a, b = node.input
            if not (is_const(a) or is_const(b)):
                raise FinerCamError(f"{node.name}: a product of two activations has no backward here")
            grads[b if is_const(a) else a].append(emit("Mul", [dy, a if is_const(a) else b]))
        elif node.op_type == "Pad":
            pads = constants[node.input[1]]
            rank = len(pads) // 2
            axes = [a for a in range(rank) if pads[a] or pads[rank + a]]  # the padded axes (static sizes)
            starts = np.array([pads[a] for a in axes], np.int64)
            ends = starts + np.array([shapes[x][a] for a in axes], np.int64)
            grads[x].append(emit("Slice", [dy, constant(starts), constant(ends), constant(np.array(axes, np.int64))]))
        elif node.op_type == "Conv":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            weight = constants[node.input[1]]
            kernel = list(weight.shape[2:])
            strides = attrs.get("strides", [1] * len(kernel))
            pads = attrs.get("pads", [0] * 2 * len(kernel))
            if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise FinerCamError(f"{node.name}: auto_pad convolutions have no backward here")
            out_size, in_size = shapes[node.output[0]][2:], shapes[x][2:]
            extra = [i - ((o - 1) * s + k - p0 - p1) for i, o, s, k, p0, p1 in
                     zip(in_size, out_size, strides, kernel, pads[:len(kernel)], pads[len(kernel):])]
            grads[x].append(emit("ConvTranspose", [dy, node.input[1]], strides=strides, pads=pads,
                                 group=attrs.get("group", 1), kernel_shape=kernel,
                                 dilations=attrs.get("dilations", [1] * len(kernel)), output_padding=extra))
        else:
            raise FinerCamError(f"{node.name}: no backward for {node.op_type}")
    parts = grads.pop(start, [])
    if not parts:
        raise FinerCamError(f"no gradient reached layer '{layer}'")
    at_layer = parts[0] if len(parts) == 1 else emit("Sum", parts)
    # the old layer keeps feeding the pooling and the head under new names; the outputs move to `layer`
    for node in graph.node:
        node.input[:] = ["features_of_old_layer" if i == "features" else i for i in node.input]
        node.output[:] = ["features_of_old_layer" if o == "features" else
                          "gradients_of_old_layer" if o == "gradients" else o for o in node.output]
    new.append(helper.make_node("Transpose", [start], ["features"], perm=PERM_TO_NHWC))
    new.append(helper.make_node("Transpose", [at_layer], ["gradients"], perm=PERM_TO_NHWC))
    graph.node.extend(new)
    channels = shapes[start][1]
    grid = shapes[start][2:]
    for output in graph.output:
        if output.name in ("features", "gradients"):
            output.CopyFrom(helper.make_tensor_value_info(output.name, TensorProto.FLOAT, ["N", *grid, channels]))
    del graph.value_info[:]
    cards = [p.value for p in model.metadata_props if p.key == META_CARD]
    if cards:
        card = json.loads(cards[0])
        card["cam_layer"] = layer
        for stale in ("cam_reference", "cam_lung_share"):  # the old layer's: validate --write-card remakes them
            card.pop(stale, None)
        write_card(model, card)
    onnx.checker.check_model(model)
    return model


def logit_tensor(graph: onnx.GraphProto) -> str:
    """The pneumonia logit: the input of the Sigmoid that gives `probability` (float32 P saturates near 1)."""
    (sigmoid,) = [n for n in graph.node if "probability" in n.output]
    if sigmoid.op_type != "Sigmoid":
        raise FinerCamError("'probability' is not a Sigmoid of a logit")
    return sigmoid.input[0]


def finite_difference_error(model: onnx.ModelProto, images: np.ndarray, layer: str, eps: float = 1e-2) -> float:
    """Largest relative gap, over `images`, between the gradient's norm and the logit's central difference
    along the gradient's direction at `layer`: the first-order change the gradient predicts, measured."""
    import onnxruntime as ort

    tensor = _layer_tensor(model.graph, layer)
    full = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    sub_model = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model(
        [tensor], [logit_tensor(model.graph)])
    sub = ort.InferenceSession(sub_model.SerializeToString(), providers=["CPUExecutionProvider"])
    feats, grads = full.run(["features", "gradients"], {"image": images})

    def logit(a_nhwc: np.ndarray) -> np.ndarray:
        return sub.run(None, {tensor: np.ascontiguousarray(a_nhwc.transpose(PERM_TO_NCHW))})[0][:, 0].astype(
            np.float64)

    norm = np.sqrt((grads.astype(np.float64) ** 2).sum(axis=(1, 2, 3)))
    v = (grads / norm[:, None, None, None]).astype(np.float32)
    numeric = (logit(feats + eps * v) - logit(feats - eps * v)) / (2 * eps)
    return float(np.max(np.abs(numeric - norm) / norm))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path)
    p.add_argument("--layer", default="block_13_expand_relu")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tolerance", type=float, default=0.02, help="largest relative finite-difference gap")
    args = p.parse_args(argv)
    from converters import dataset
    from xrayviewer.core.analysis.engine import Engine
    from xrayviewer.core.analysis.preprocess import model_input

    model = add_finer_cam(onnx.load(args.model), args.layer)
    samples = dataset.split_samples(dataset.list_samples(dataset.DEFAULT_DATA))["val"][:16]
    films, _ = dataset.load_gray(samples, 224)
    card = Engine("cpu").model(str(args.model)).card
    images = np.concatenate([model_input(film, card) for film in films])
    gap = finite_difference_error(model, images, args.layer)
    print(json.dumps({"layer": args.layer, "finite_difference_gap": round(gap, 5)}))
    if not gap <= args.tolerance:
        print(f"refused: the gradient at {args.layer} differs from finite differences by {gap:.3g}")
        return 1
    onnx.save(model, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
