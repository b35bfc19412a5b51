"""Start a Keras MobileNetV2 from the weights of an exported ONNX file (contract version 1), for fine-tuning.

    python -m converters.train --recipe v3 --init-onnx models/mobilenetv2-pneumonia.onnx ...

No Keras weights of the shipped models are kept, only their ONNX files, where tf2onnx folded each BatchNorm
into its convolution (ordinary ones) or into a Mul and an Add (depthwise ones). Each convolution's kernel is
taken as it is and its BatchNorm set so that, in inference, it applies the file's per-channel scale and bias:
the Keras model then computes the file's function. The BatchNorm statistics are set to those of the
convolution's output on training films, so that BatchNorm in training mode (batch statistics) starts near the
same function too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def onnx_layers(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]], np.ndarray, np.ndarray]:
    """([(kernel in Keras layout, scale, bias, depthwise)] per convolution in graph order, dense kernel, bias)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def follower(node, op: str):
        (nxt,) = [n for n in consumers[node.output[0]] if n.op_type == op]
        return nxt, next(init[x] for x in nxt.input if x in init).reshape(-1)

    convs = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight = init[node.input[1]]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group > 1:  # depthwise: raw kernel, then Mul (BN scale) and Add (BN bias)
            mul, scale = follower(node, "Mul")
            _, bias = follower(mul, "Add")
            convs.append((weight.transpose(2, 3, 0, 1), scale, bias, True))
        else:  # BatchNorm folded into kernel and bias
            convs.append((weight.transpose(2, 3, 1, 0), np.ones(weight.shape[0], np.float32), init[node.input[2]],
                          False))
    producer = {out: node for node in graph.node for out in node.output}
    add = producer[next(n for n in graph.node if n.op_type == "Sigmoid" and "probability" in n.output).input[0]]
    bias = next(init[x] for x in add.input if x in init)
    matmul = next(producer[x] for x in add.input if x not in init)
    kernel = next(init[x] for x in matmul.input if x in init)
    return convs, kernel, bias


def load_onnx_weights(model, path: Path, films: np.ndarray) -> None:
    """Set the weights of `model` (converters.train.build_model, MobileNetV2) from the ONNX file at `path`;
    `films` (model inputs `[N, H, W, 3]`, as training will feed them) set the BatchNorm statistics."""
    import keras

    convs, kernel, bias = onnx_layers(path)
    base = model.layers[0]
    pairs = []  # (conv layer, its BatchNorm layer)
    for i, layer in enumerate(base.layers):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            bn = base.layers[i + 1]
            if not isinstance(bn, keras.layers.BatchNormalization):
                raise ValueError(f"{layer.name} is not followed by a BatchNorm layer")
            pairs.append((layer, bn))
    if len(pairs) != len(convs):
        raise ValueError(f"{path}: {len(convs)} convolutions, the Keras model has {len(pairs)}")
    for (layer, bn), (w, scale, b, depthwise) in zip(pairs, convs):
        if tuple(layer.kernel.shape) != w.shape or depthwise != isinstance(layer, keras.layers.DepthwiseConv2D):
            raise ValueError(f"{path}: kernel {w.shape} does not fit {layer.name} {tuple(layer.kernel.shape)}")
        layer.kernel.assign(w)
        bn.set_weights([scale, b, np.zeros_like(scale), np.full_like(scale, 1 - bn.epsilon)])
    model.layers[-1].set_weights([kernel, bias])
    # BatchNorm statistics: each convolution's output on the films (the model computes the file's function now)
    probe = keras.Model(base.inputs, [bn.input for _, bn in pairs])
    sums = None
    for i in range(0, len(films), 32):
        outs = probe.predict(films[i:i + 32], verbose=0)
        moments = [(o.mean(axis=(0, 1, 2)), (o.astype(np.float64) ** 2).mean(axis=(0, 1, 2))) for o in outs]
        sums = moments if sums is None else [(a + m, b + q) for (a, b), (m, q) in zip(sums, moments)]
    batches = int(np.ceil(len(films) / 32))
    for (_, bn), (m, q) in zip(pairs, sums):
        gamma, beta = (np.asarray(v) for v in bn.get_weights()[:2])
        mean, var = m / batches, np.maximum(q / batches - (m / batches) ** 2, 1e-6)
        std = np.sqrt(var + bn.epsilon)
        # gamma' (z - mean) / std + beta' = gamma z + beta, and batch statistics near (mean, std) in training
        bn.set_weights([(gamma * std).astype(np.float32), (beta + gamma * mean).astype(np.float32),
                        mean.astype(np.float32), var.astype(np.float32)])
