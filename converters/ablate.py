"""Ablation of recipe v2: the full recipe against runs with one choice taken out, at a reduced scale.

    python -m converters.ablate --size 128 --epochs 6 --out runs/ablate [--arms full no_border ...]

Each arm trains `converters.train` with the same seed and split, then its chosen, calibrated model is
scored with Keras on the validation films: AUC, the shifted validation (every perturbation, pooled)
and the shortcut figures of `converters.validate` (|logit change| when the ring or a 40-px corner
is blanked), and the Grad-CAM lung-box share on the validation pneumonia films (`converters.cam_layers`).
A run folder that already holds a trained arm is scored again, not retrained. Prints one JSON line
per arm and a Markdown table at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from converters import dataset, train
from converters.augment import shifted
from converters.cam_layers import lung_shares
from converters.validate import CORNERS, RING, blanked
from xrayviewer.core.analysis.metrics import roc_auc

ARMS = {
    "full": [],
    "full_seed2": ["--seed", "2"],  # the same recipe and split, another initialisation: the noise floor
    "no_border": ["--border", "0"],
    "augment_v1": ["--augment", "v1"],
    "no_ema": ["--no-ema"],
    "no_label_smoothing": ["--label-smoothing", "0"],
    "no_weight_decay": ["--weight-decay", "0"],
}


def score_arm(model_path: Path, films: np.ndarray, labels: np.ndarray, border: float,
              cam_layer: str = "out_relu") -> dict:
    import keras

    scale = films.shape[1] / 224  # ring and corner sizes are given in the 224-px frame
    ring, corner_px = round(RING * scale), round(CORNERS[-1] * scale)
    model = keras.saving.load_model(model_path, compile=False)
    logits = train.logit_function(model)
    base = logits(train.to_input(films, border))
    moved = np.concatenate([logits(train.to_input(m, border)) for m in shifted(films).values()])
    corner = max(float(np.mean(np.abs(logits(train.to_input(blanked(films, c, corner_px), border)) - base)))
                 for c in ("tl", "tr", "bl", "br"))
    return {"val_auc": round(roc_auc(labels, base), 4),
            "shifted_auc": round(roc_auc(np.tile(labels, len(moved) // len(labels)), moved), 4),
            "ring_logit_change": round(float(np.mean(np.abs(
                logits(train.to_input(blanked(films, "ring", ring), border)) - base))), 4),
            "corner_logit_change_max": round(corner, 4),
            "cam_lung_share": lung_shares(model, [cam_layer], films[labels == 1], border)[cam_layer]["lung_share"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="mobilenetv2")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    p.add_argument("--arms", nargs="*", choices=sorted(ARMS), default=list(ARMS))
    p.add_argument("--cam-layer", default="out_relu", help="the backbone layer of the Grad-CAM lung share")
    args = p.parse_args(argv)
    films, labels = dataset.load_gray(dataset.split_samples(dataset.list_samples(args.data))["val"], args.size)
    rows = []
    for arm in args.arms:
        run = args.out / arm
        if not (run / "recipe.json").exists():
            train.main(["--arch", args.arch, "--size", str(args.size), "--epochs", str(args.epochs),
                        "--data", str(args.data), "--out", str(run), *ARMS[arm]])
        recipe = json.loads((run / "recipe.json").read_text())
        row = {"arm": arm, "flags": " ".join(ARMS[arm]) or "(recipe v2)",
               **score_arm(run / "final.keras", films, labels, recipe["border"], args.cam_layer)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + " --- |" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
