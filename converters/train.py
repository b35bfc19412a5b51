"""Training recipe for the shipped pneumonia classifiers (Keras 3, any backend).

    python -m converters.train --arch mobilenetv2 --size 160 --out runs/mnv2

Runs with the TensorFlow backend on a CPU and with JAX or PyTorch on a GPU
(`KERAS_BACKEND=jax`). It writes `best.keras` (best validation AUC), a resumable
backup, `history.csv` and `recipe.json` (everything the model card records).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np

from converters import dataset
from xrayviewer.core.metrics import binary_figures, pick_threshold

RECIPE_VERSION = "1"
BN_MOMENTUM = 0.9
SCALING = {"scale": 1 / 127.5, "offset": -1.0}  # x * scale + offset: uint8 -> [-1, 1]


def build_model(arch: str, size: int, imagenet_weights: str | None = None):
    """Sequential[base, GAP, Dropout(0.3), Dense(1, sigmoid)], base nested as in the reference recipe."""
    import keras

    apps = {"mobilenetv2": keras.applications.MobileNetV2, "xception": keras.applications.Xception}
    base = apps[arch](include_top=False, weights=None, input_shape=(size, size, 3))
    if imagenet_weights:
        base.load_weights(imagenet_weights)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            # keras.applications uses 0.999 (MobileNetV2): from scratch the moving statistics then lag the
            # weights for thousands of steps, and validation sees a model that answers the same for every film.
            layer.momentum = BN_MOMENTUM
    return keras.Sequential(
        [
            keras.Input((size, size, 3), name="image"),
            base,
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dropout(0.3, name="dropout"),
            keras.layers.Dense(1, activation="sigmoid", name="pneumonia"),
        ],
        name=f"{arch}_pneumonia",
    )


def to_input(gray: np.ndarray) -> np.ndarray:
    """uint8 gray `[N, H, W]` -> float32 `[N, H, W, 3]` scaled as the model card says."""
    x = gray.astype(np.float32) * SCALING["scale"] + SCALING["offset"]
    return np.repeat(x[..., None], 3, axis=-1)


def augment(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation +-10 deg, shift +-8 %, zoom 0.9-1.1, brightness +-10 %, contrast 0.85-1.15.

    No horizontal flips: a chest film is not left-right symmetric (heart, aortic
    knob, gastric bubble, side markers), and mirrored films would teach the model
    anatomy that never occurs and move its heatmaps to the wrong side.
    """
    size = gray.shape[0]
    angle = rng.uniform(-10, 10)
    zoom = rng.uniform(0.9, 1.1)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, zoom)
    m[:, 2] += rng.uniform(-0.08, 0.08, 2) * size
    out = cv2.warpAffine(gray, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    out = out.astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.85, 1.15) + mean * rng.uniform(0.9, 1.1)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_sequence(images: np.ndarray, labels: np.ndarray, batch: int, train: bool, seed: int):
    import keras

    class Films(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(images))
            if train:
                self.rng.shuffle(self.order)

        def __len__(self) -> int:
            return math.ceil(len(images) / batch)

        def __getitem__(self, i: int):
            idx = self.order[i * batch:(i + 1) * batch]
            gray = images[idx]
            if train:
                gray = np.stack([augment(g, self.rng) for g in gray])
            return to_input(gray), labels[idx, None]

        def on_epoch_end(self) -> None:
            if train:
                self.rng.shuffle(self.order)

    return Films()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["mobilenetv2", "xception"], default="mobilenetv2")
    p.add_argument("--size", type=int, default=128, help="input side in pixels")
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=22)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--imagenet-weights", help="optional .h5/.weights.h5 of the base, include_top=False")
    args = p.parse_args(argv)

    import keras

    keras.utils.set_random_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    split = dataset.split_samples(dataset.list_samples(args.data), args.seed)
    x_train, y_train = dataset.load_gray(split["train"], args.size)
    x_val, y_val = dataset.load_gray(split["val"], args.size)
    n_pos = float(y_train.sum())
    class_weight = {0: len(y_train) / (2 * (len(y_train) - n_pos)), 1: len(y_train) / (2 * n_pos)}
    print(f"train {len(y_train)} val {len(y_val)} class_weight {class_weight}", flush=True)

    model = build_model(args.arch, args.size, args.imagenet_weights)
    steps = math.ceil(len(y_train) / args.batch) * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, steps, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), "accuracy"],
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(args.out / "backup")),
        keras.callbacks.ModelCheckpoint(str(args.out / "best.keras"), monitor="val_auc", mode="max",
                                        save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=args.patience),
        keras.callbacks.CSVLogger(str(args.out / "history.csv"), append=True),
    ]
    start = time.time()
    model.fit(
        make_sequence(x_train, y_train, args.batch, True, args.seed),
        validation_data=make_sequence(x_val, y_val, 64, False, args.seed),
        epochs=args.epochs,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=2,
    )
    best = keras.saving.load_model(args.out / "best.keras")
    scores = best.predict(make_sequence(x_val, y_val, 64, False, args.seed), verbose=0)[:, 0]
    threshold = pick_threshold(y_val, scores)
    recipe = {
        "recipe_version": RECIPE_VERSION,
        "architecture": args.arch,
        "input_size": args.size,
        "seed": args.seed,
        "split": {k: len(v) for k, v in split.items()},
        "epochs_run": len((args.out / "history.csv").read_text().splitlines()) - 1,
        "train_seconds": round(time.time() - start),
        "hyper": {"batch": args.batch, "lr": args.lr, "schedule": "cosine", "patience": args.patience,
                  "class_weight": class_weight, "bn_momentum": BN_MOMENTUM,
                  "augmentation": augment.__doc__.splitlines()[0]},
        "threshold_rule": "highest threshold with validation sensitivity >= 0.95",
        "validation": binary_figures(y_val, scores, threshold),
    }
    (args.out / "recipe.json").write_text(json.dumps(recipe, indent=2))
    print(json.dumps(recipe["validation"]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
