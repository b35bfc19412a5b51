"""The occlusion fill a model card carries: the mean NORMAL film of the model's training split.

    python -m converters.normal_fill MODEL.onnx [--data DIR] [--seed 1234]

Occlusion (xrayviewer.core.analysis.perturbation) covers each patch with what a normal film of the training data
looks like there, so a patch's score drop is the evidence a normal chest would not show. The mean is taken over
the training split only (the patient-level split of converters.dataset), never the validation films that grade
the maps, at the card's input size, and stored as a base64 PNG under the card key `occlusion_fill`.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import cv2
import numpy as np

from converters import dataset
from xrayviewer.core.analysis.preprocess import percentile_stretch


def mean_normal(data: Path = dataset.DEFAULT_DATA, seed: int = 1234, size: int = 224, border: float = 0.0,
                intensity: dict | None = None) -> np.ndarray | None:
    """uint8 gray [size, size]: the pixel mean of the training split's NORMAL films (None when it has none), each
    film intensity-normalised first when the card says so (`intensity`, measured inside `border`)."""
    samples = [s for s in dataset.split_samples(dataset.list_samples(data), seed)["train"] if s.label == 0]
    if not samples:
        return None
    films, _ = dataset.load_gray(samples, size)
    if intensity:
        low, high = intensity.get("percentiles", (1.0, 99.0))
        films = np.stack([percentile_stretch(f, border, low, high) for f in films])
    return np.clip(np.rint(films.astype(np.float64).mean(axis=0)), 0, 255).astype(np.uint8)


def encoded(image: np.ndarray) -> str:
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("the fill could not be encoded as PNG")
    return base64.b64encode(png.tobytes()).decode("ascii")


def write_fill(path: Path, data: Path = dataset.DEFAULT_DATA, seed: int = 1234) -> int:
    """Store the fill in the card of the model file at `path`; returns the number of base64 characters (0: the
    training split holds no NORMAL film, nothing is written and occlusion falls back to the local mean)."""
    from converters.validate import update_card_keys
    from xrayviewer.core.analysis.session import open_model

    card = open_model(path, "cpu").card
    h, w = card.input_size
    fill = mean_normal(data, seed, h, card.border, card.intensity)
    if fill is None:
        return 0
    text = encoded(fill if (h, w) == fill.shape else cv2.resize(fill, (w, h), interpolation=cv2.INTER_AREA))
    update_card_keys(path, {"occlusion_fill": text})
    return len(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path)
    p.add_argument("--data", type=Path, default=dataset.DEFAULT_DATA)
    p.add_argument("--seed", type=int, default=1234)
    args = p.parse_args(argv)
    print(json.dumps({"model": str(args.model), "occlusion_fill_chars": write_fill(args.model, args.data, args.seed)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
