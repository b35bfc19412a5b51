"""Which layer of a trained Keras model gives a Grad-CAM that lies on the lungs: the lung-box share per layer.

    python -m converters.cam_layers RUN/final.keras --layers out_relu block_13_expand_relu block_6_expand_relu

Grad-CAM (pneumonia logit, TensorFlow's GradientTape) at each named layer of the model's backbone on the
validation pneumonia films, bilinearly upsampled to the film, and the share of its mass inside the two lung
boxes of `converters.validate` (51 % of the frame: a uniform map scores 0.51). The input size and border come
from the run's `recipe.json` beside the model. Prints one JSON object: per layer, the grid and the mean share.

It tells which earlier, finer layer is worth moving a shipped model's CAM to (`converters.finer_cam`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from converters import dataset, train
from converters.validate import lung_mask

BATCH = 32


def lung_shares(model, layers: list[str], films: np.ndarray, border: float) -> dict[str, dict]:
    """Per layer of the Keras `model`: its grid and the mean lung-box share of the Grad-CAM mass over `films`
    (uint8, N x S x S)."""
    import keras
    import tensorflow as tf

    backbone, dense = model.layers[0], model.layers[-1]  # backbone -> pooling -> dropout -> dense
    probe = keras.Model(backbone.inputs, [backbone.get_layer(n).output for n in layers] + [backbone.output])
    size = films.shape[1]
    mask = lung_mask(size)
    shares: dict[str, list[float]] = {n: [] for n in layers}
    for i in range(0, len(films), BATCH):
        x = tf.constant(train.to_input(films[i:i + BATCH], border))
        with tf.GradientTape() as tape:
            *maps, last = probe(x, training=False)
            logit = tf.matmul(tf.reduce_mean(last, axis=(1, 2)), dense.kernel)[:, 0]
        for name, a, g in zip(layers, maps, tape.gradient(logit, maps)):
            cams = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(g, axis=(1, 2), keepdims=True) * a, axis=-1)).numpy()
            for cam in cams:
                up = cv2.resize(cam.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
                if up.sum() > 0:
                    shares[name].append(float(up[mask].sum() / up.sum()))
    return {n: {"grid": int(backbone.get_layer(n).output.shape[1]), "films": len(v),
                "lung_share": round(float(np.mean(v)), 3)} for n, v in shares.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a run's .keras file (recipe.json beside it)")
    p.add_argument("--layers", nargs="+", default=["out_relu", "block_13_expand_relu", "block_6_expand_relu"])
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    args = p.parse_args(argv)
    recipe = json.loads((args.model.parent / "recipe.json").read_text())
    val = dataset.split_samples(dataset.list_samples(args.data))["val"]
    films, labels = dataset.load_gray(val, recipe["input_size"])
    import keras

    model = keras.saving.load_model(args.model, compile=False)
    print(json.dumps(lung_shares(model, args.layers, films[labels == 1], recipe["border"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
