"""Training recipes v2 and v3 for the shipped pneumonia classifiers (Keras 3, any backend).

    python -m converters.train --arch mobilenetv2 --size 224 --epochs 18 --out runs/mnv2-v2
    python -m converters.train --recipe v3 --arch mobilenetv2 --epochs 3 --lr 5e-4 --warmup 0.2 \
        --init-onnx mobilenetv2-v2.onnx --out runs/mnv2-v3     # fine-tunes the v2 file (models/README.md)

Runs with the TensorFlow backend on a CPU and with JAX or PyTorch on a GPU
(`KERAS_BACKEND=jax`, see `converters/gpu_train.py`). Chooses the epoch by the AUC on the
*shifted* validation (the val films through fixed perturbations), not by the internal one, then
fits a temperature on validation and folds it into the last layer. Writes `best.keras` (chosen
epoch), `final.keras` (calibrated: export this one), a resumable backup, `history.csv` and
`recipe.json` (everything the model card records). Ablation switches: `--border 0`,
`--augment v1`, `--label-smoothing 0`, `--no-ema`, `--weight-decay 0`. Recipe v3 (`--recipe v3`) is v2 with
the percentile stretch of the film's interior before the model (card `preprocessing.intensity`) and the
stronger acquisition-shift augmentation `--augment v3`.

Distillation (`--teacher FILE --distill ALPHA --distill-temperature T`, FILE from `converters.teacher`): each
training film's target becomes (1 - ALPHA) * label + ALPHA * sigmoid(teacher logit / T), the teacher having scored
the clean film, so the augmented film is taught the teacher's answer to the clean one (label smoothing then
applies to that target as to a label); the class weight still follows the film's label. recipe.json (and so the
card's `recipe.hyper`) records the teacher, ALPHA and T.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

from converters import dataset
from converters.augment import augment, augment_v3, shifted_round_robin
from xrayviewer.core.analysis.metrics import binary_figures, pick_threshold, roc_auc
from xrayviewer.core.analysis.preprocess import model_gray

PERCENTILE_STRETCH = {"method": "percentile-stretch", "percentiles": [1.0, 99.0]}
INTENSITY = {"none": None, "percentile-stretch": PERCENTILE_STRETCH}
# recipe -> the options it sets (explicit options on the command line still win)
RECIPES = {"v2": {"augment": "v2", "intensity": "none"}, "v3": {"augment": "v3", "intensity": "percentile-stretch"}}
BN_MOMENTUM = 0.9
SCALING = {"scale": 1 / 127.5, "offset": -1.0}  # x * scale + offset: uint8 -> [-1, 1]
DEFAULT_BORDER = 0.09  # 20 px of 224: outside the lung boxes (x 25-200, y 30-190), over markers and corners


def build_model(arch: str, size: int, imagenet_weights: str | None = None, dropout: float = 0.3):
    """Sequential[base, GAP, Dropout, Dense(1, sigmoid)], base nested as in the reference recipe."""
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
            keras.layers.Dropout(dropout, name="dropout"),
            keras.layers.Dense(1, activation="sigmoid", name="pneumonia"),
        ],
        name=f"{arch}_pneumonia",
    )


def to_input(gray: np.ndarray, border: float = 0.0, intensity: dict | None = None) -> np.ndarray:
    """uint8 gray `[N, H, W]` -> float32 `[N, H, W, 3]`: intensity normalised and border blanked as the app does
    (`preprocess.model_gray`), then scaled as the model card says."""
    x = model_gray(gray, border, intensity).astype(np.float32) * SCALING["scale"] + SCALING["offset"]
    return np.repeat(x[..., None], 3, axis=-1)


def augment_v1(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Recipe v1 (for ablation): rotation +-10 deg, shift +-8 %, zoom 0.9-1.1, brightness +-10 %, contrast 0.85-1.15."""
    size = gray.shape[0]
    m = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-10, 10), rng.uniform(0.9, 1.1))
    m[:, 2] += rng.uniform(-0.08, 0.08, 2) * size
    out = cv2.warpAffine(gray, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    out = out.astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.85, 1.15) + mean * rng.uniform(0.9, 1.1)
    return np.clip(out, 0, 255).astype(np.uint8)


AUGMENTATIONS = {"v1": augment_v1, "v2": augment, "v3": augment_v3}


def make_sequence(images: np.ndarray, labels: np.ndarray, batch: int, border: float, seed: int, aug: str,
                  workers: int = 1, intensity: dict | None = None, weights: np.ndarray | None = None):
    """Shuffled, augmented training batches (uint8 films in memory, augmented afresh every epoch).

    Each batch draws from its own generator seeded by (seed, epoch, batch), so the stream is the
    same with any number of worker threads and after a resume. `labels` are the targets (soft ones when
    distilling); with `weights`, each batch also carries the films' sample weights.
    """
    import keras

    fn = AUGMENTATIONS[aug]

    class Films(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=workers, use_multiprocessing=False)
            self.epoch = 0
            self.order = np.random.default_rng([seed, 0]).permutation(len(images))

        def __len__(self) -> int:
            return math.ceil(len(images) / batch)

        def __getitem__(self, i: int):
            rng = np.random.default_rng([seed, self.epoch, i])
            idx = self.order[i * batch:(i + 1) * batch]
            x = to_input(np.stack([fn(g, rng) for g in images[idx]]), border, intensity)
            return (x, labels[idx, None]) if weights is None else (x, labels[idx, None], weights[idx])

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = np.random.default_rng([seed, self.epoch]).permutation(len(images))

    return Films()


def logit_function(model):
    """x -> pneumonia logits (pooled head input @ Dense), free of the float32 sigmoid's saturation.

    The trunk is built once and shares the model's weights; the Dense weights are read at each call.
    """
    import keras

    dense = model.layers[-1]
    trunk = keras.Model(model.inputs, dense.input)

    def logits(x: np.ndarray, batch: int = 64) -> np.ndarray:
        kernel, bias = (np.asarray(w) for w in dense.get_weights())
        return (trunk.predict(x, batch_size=batch, verbose=0) @ kernel + bias)[:, 0]

    return logits


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """Temperature T minimising the validation log-loss of sigmoid(logit / T) (grid in log space)."""
    grid = np.exp(np.linspace(np.log(0.2), np.log(20), 500))
    nll = [np.mean(np.logaddexp(0, logits / t) - labels * logits / t) for t in grid]
    return float(grid[int(np.argmin(nll))])


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def distill_targets(labels: np.ndarray, teacher_logits: np.ndarray, alpha: float, temperature: float) -> np.ndarray:
    """(1 - alpha) * label + alpha * sigmoid(teacher logit / temperature), float32."""
    if not 0 <= alpha <= 1 or temperature <= 0:
        raise ValueError(f"distillation needs 0 <= ALPHA <= 1 and T > 0 (got {alpha}, {temperature})")
    soft = sigmoid(np.asarray(teacher_logits, np.float64) / temperature)
    return ((1 - alpha) * np.asarray(labels, np.float64) + alpha * soft).astype(np.float32)


def recalibrate_bn(model, films: np.ndarray, border: float, batch: int = 32, batches: int = 32,
                   intensity: dict | None = None) -> None:
    """Recompute the BatchNorm moving statistics for the weights now in `model` from training films.

    Keras averages only the trainable weights in its EMA; the moving statistics still describe the
    live weights, and with them the averaged model can answer the same for every film. Forward
    passes in training mode (BN momentum 0.9) over `batches` batches replace them.
    """
    rng = np.random.default_rng(0)
    for _ in range(batches):
        model(to_input(films[rng.choice(len(films), batch, replace=False)], border, intensity), training=True)


def make_validation(x_val: np.ndarray, y_val: np.ndarray, border: float, x_train: np.ndarray | None = None,
                    intensity: dict | None = None):
    """Callback: plain and shifted validation AUC each epoch, logged for the checkpoint.

    With `x_train`, the EMA weights (swapped in before this callback) first get their own BatchNorm
    statistics, so that what is scored and checkpointed is the averaged model as it will ship.
    """
    import keras

    plain = to_input(x_val, border, intensity)
    moved = to_input(shifted_round_robin(x_val), border, intensity)

    class Validation(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.logits = logit_function(self.model)

        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            if x_train is not None:
                recalibrate_bn(self.model, x_train, border, intensity=intensity)
            lv, ls = self.logits(plain), self.logits(moved)
            logs["val_auc"] = roc_auc(y_val, lv)
            logs["val_shift_auc"] = roc_auc(y_val, ls)
            logs["val_shift_acc"] = float(np.mean((ls > 0) == (y_val > 0.5)))
            print(f"epoch {epoch + 1}: val AUC {logs['val_auc']:.4f}, shifted val AUC {logs['val_shift_auc']:.4f}, "
                  f"shifted accuracy at 0.5 {logs['val_shift_acc']:.4f}", flush=True)

    return Validation()


def calibrate(model, x_val: np.ndarray, y_val: np.ndarray, border: float,
              intensity: dict | None = None) -> tuple[float, np.ndarray]:
    """Fit the temperature on validation and fold it into the Dense layer; returns (T, calibrated scores)."""
    logits = logit_function(model)(to_input(x_val, border, intensity))
    t = fit_temperature(y_val, logits)
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / t, bias / t])
    return t, sigmoid(logits / t)


def hardware() -> str:
    """Where this run trains: Keras backend and the accelerator or CPU it runs on."""
    import platform

    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return f"jax on {jax.devices()[0].device_kind}"
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"torch on {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001 - a description only
        pass
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (info.read_text().splitlines() if info.exists() else [])
             if line.startswith("model name")]
    return f"{backend} on CPU ({os.cpu_count()} cores, {names[0] if names else platform.processor()})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=["mobilenetv2", "xception"], default="mobilenetv2")
    p.add_argument("--size", type=int, default=224, help="input side in pixels")
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=18)
    p.add_argument("--warmup", type=float, default=1.0, help="epochs of linear warm-up before the cosine")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW)")
    p.add_argument("--weight-decay", type=float, default=0.02)
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--border", type=float, default=DEFAULT_BORDER, help="fraction of each side blanked")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="v2", help="sets --augment and --intensity")
    p.add_argument("--augment", choices=sorted(AUGMENTATIONS), help="default: the recipe's")
    p.add_argument("--intensity", choices=sorted(INTENSITY), help="normalisation before the model (default: the "
                   "recipe's; percentile-stretch: the interior's 1st-99th percentiles to 0-255)")
    p.add_argument("--no-ema", action="store_true", help="no exponential moving average of the weights")
    p.add_argument("--seed", type=int, default=1234, help="initialisation and augmentation stream")
    p.add_argument("--split-seed", type=int, default=1234, help="patient-level train/val/test split")
    p.add_argument("--workers", type=int, default=1, help="threads that augment batches ahead (GPU: 8 or more)")
    p.add_argument("--imagenet-weights", help="optional .h5/.weights.h5 of the base, include_top=False")
    p.add_argument("--init-onnx", type=Path, help="start from the weights of this exported MobileNetV2 file "
                   "(converters.onnx_init) and fine-tune")
    p.add_argument("--teacher", type=Path, help="teacher file of converters.teacher (its logits on the training films)")
    p.add_argument("--distill", type=float, default=0.5, metavar="ALPHA",
                   help="with --teacher: the teacher's share of the target (default 0.5)")
    p.add_argument("--distill-temperature", type=float, default=1.0, metavar="T",
                   help="with --teacher: the teacher's logit is divided by T before the sigmoid (default 1)")
    args = p.parse_args(argv)
    for key, value in RECIPES[args.recipe].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    intensity = INTENSITY[args.intensity]

    import keras

    keras.utils.set_random_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    split = dataset.split_samples(dataset.list_samples(args.data), args.split_seed)
    x_train, y_train = dataset.load_gray(split["train"], args.size)
    x_val, y_val = dataset.load_gray(split["val"], args.size)
    n_pos = float(y_train.sum())
    class_weight = {0: len(y_train) / (2 * (len(y_train) - n_pos)), 1: len(y_train) / (2 * n_pos)}
    print(f"train {len(y_train)} val {len(y_val)} class_weight {class_weight}", flush=True)
    distillation, y_fit, weights = None, y_train, None
    if args.teacher:
        from converters import teacher
        from xrayviewer.core.reading.digest import file_sha256

        try:
            record = teacher.load(args.teacher)
            y_fit = distill_targets(y_train, teacher.targets(record, split["train"], args.data), args.distill,
                                    args.distill_temperature)
        except ValueError as exc:
            p.error(str(exc))
        weights = np.where(y_train > 0.5, class_weight[1], class_weight[0]).astype(np.float32)
        distillation = {"teacher_file": args.teacher.name, "teacher_sha256": file_sha256(args.teacher),
                        "teacher": record["model"], "teacher_digest": record["digest"],
                        "teacher_members": record["members"], "alpha": args.distill,
                        "temperature": args.distill_temperature,
                        "target": "(1 - alpha) * label + alpha * sigmoid(teacher logit / temperature), teacher on "
                                  "the clean film; class weight by the label",
                        "mean_target": {"normal": round(float(y_fit[y_train < 0.5].mean()), 4),
                                        "pneumonia": round(float(y_fit[y_train > 0.5].mean()), 4)}}
        print(f"distillation {json.dumps(distillation)}", flush=True)

    model = build_model(args.arch, args.size, args.imagenet_weights, args.dropout)
    if args.init_onnx:
        from converters.onnx_init import load_onnx_weights

        pick = np.random.default_rng(args.seed).choice(len(x_train), 512, replace=False)
        load_onnx_weights(model, args.init_onnx, to_input(x_train[pick], args.border, intensity))
    per_epoch = math.ceil(len(y_train) / args.batch)
    warmup = int(per_epoch * args.warmup)
    schedule = keras.optimizers.schedules.CosineDecay(
        args.lr * 0.01, per_epoch * args.epochs - warmup, alpha=0.01, warmup_target=args.lr, warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay, use_ema=not args.no_ema,
                                       ema_momentum=0.995)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(optimizer=optimizer,
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=args.label_smoothing),
                  metrics=[] if distillation else [keras.metrics.AUC(name="auc")])  # AUC needs 0/1 targets
    callbacks = [keras.callbacks.BackupAndRestore(str(args.out / "backup"))]
    if not args.no_ema:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks += [
        make_validation(x_val, y_val, args.border, None if args.no_ema else x_train, intensity),
        keras.callbacks.ModelCheckpoint(str(args.out / "best.keras"), monitor="val_shift_auc", mode="max",
                                        save_best_only=True),
        keras.callbacks.CSVLogger(str(args.out / "history.csv"), append=True),
    ]
    start = time.time()
    model.fit(make_sequence(x_train, y_fit, args.batch, args.border, args.seed, args.augment,
                            args.workers, intensity, weights),
              epochs=args.epochs, class_weight=None if distillation else class_weight, callbacks=callbacks,
              verbose=2)
    seconds = round(time.time() - start)

    best = keras.saving.load_model(args.out / "best.keras", compile=False)
    temperature, scores = calibrate(best, x_val, y_val, args.border, intensity)
    best.save(args.out / "final.keras")
    threshold = pick_threshold(y_val, scores)
    history = (args.out / "history.csv").read_text().splitlines()
    recipe = {
        "recipe_version": args.recipe[1:],
        "architecture": args.arch,
        "input_size": args.size,
        "seed": args.seed,
        "split_seed": args.split_seed,
        "split": {k: len(v) for k, v in split.items()},
        "epochs_run": len(history) - 1,
        "train_seconds": seconds,
        "hardware": hardware(),
        "init": args.init_onnx.name if args.init_onnx else "random (weights=None)",
        "border": args.border,
        "intensity": intensity,
        "temperature": round(temperature, 4),
        "hyper": {"batch": args.batch, "optimizer": "AdamW", "lr": args.lr, "weight_decay": args.weight_decay,
                  "schedule": f"linear warm-up {args.warmup} epoch(s), cosine to 1 %",
                  "label_smoothing": args.label_smoothing, "dropout": args.dropout,
                  "ema": None if args.no_ema else 0.995, "class_weight": class_weight, "bn_momentum": BN_MOMENTUM,
                  "augmentation": args.augment + ": " + AUGMENTATIONS[args.augment].__doc__.splitlines()[0],
                  "border": args.border, "intensity": args.intensity, "selection": "epoch with the best shifted-validation AUC",
                  **({"distillation": distillation} if distillation else {})},
        "threshold_rule": "highest threshold with validation sensitivity >= 0.95 (calibrated probability)",
        "validation": binary_figures(y_val, scores, threshold),
    }
    (args.out / "recipe.json").write_text(json.dumps(recipe, indent=2))
    print(json.dumps(recipe["validation"]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
