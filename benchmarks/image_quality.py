"""What the models say of films with nothing left to read, and how many of them the gate refuses.

    PYTHONPATH=. python benchmarks/image_quality.py [--models mobilenetv2,xception]

The patient-level validation films (224 px, as the gate gets them) are degraded: Gaussian blur
(sigma 2, 4 and 8 px), contrast flattened about the film's mean (to 30 % and 15 %), a uniform gray
at the film's mean, and black. For each model and degradation it prints, for normal and pneumonia
films: the share the model calls pneumonia at its card's threshold, the share the gate refuses (the
image checks, the model's own OOD gate and the chest detector, no header rules, as
`benchmarks/ood_gate.py`), and the share called pneumonia among the films the gate lets through; the
last two also for the gate without the `detail` check (as it was before the check).
It also prints the image-quality measures of `checks` (sharpness and contrast) on the plain validation
and internal-test films (their lowest values) against the limits, and the share of each perturbation
of the shifted validation (`converters.augment.PERTURBATIONS`) that the detail check refuses: the
price of the check on films the models were validated on. One JSON object.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
from xrayviewer.models import FOLDER

from converters import dataset
from converters.augment import shifted
from xrayviewer.core.analysis import checks
from xrayviewer.core.analysis.detector import ChestDetector
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.findings import Subject
from xrayviewer.core.analysis.gate import DETECTOR_FILE, Gate
from xrayviewer.core.analysis.preprocess import model_input


def _contrast(gray: np.ndarray, gain: float) -> np.ndarray:
    mean = gray.astype(np.float32).mean()
    return np.clip((gray - mean) * gain + mean + 0.5, 0, 255).astype(np.uint8)


DEGRADATIONS = {
    "plain": lambda g: g,
    "blur_2": lambda g: cv2.GaussianBlur(g, (0, 0), 2),
    "blur_4": lambda g: cv2.GaussianBlur(g, (0, 0), 4),
    "blur_8": lambda g: cv2.GaussianBlur(g, (0, 0), 8),
    "contrast_0.3": lambda g: _contrast(g, 0.3),
    "contrast_0.15": lambda g: _contrast(g, 0.15),
    "uniform_gray": lambda g: np.full_like(g, int(g.mean())),
    "black": lambda g: np.zeros_like(g),
}


def quality(displays: list[np.ndarray]) -> dict:
    """Lowest sharpness and contrast (the check's measures) over the films, with the limits."""
    measures = np.array([checks.quality_measures(d) for d in displays])
    return {"n": len(displays), "sharpness_min": round(float(measures[:, 0].min()), 3),
            "sharpness_p01": round(float(np.percentile(measures[:, 0], 1)), 3),
            "contrast_min": round(float(measures[:, 1].min()), 2),
            "limits": {"sharpness": checks.SHARPNESS_LIMIT, "flat": checks.FLAT_LIMIT}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="mobilenetv2,xception")
    args = parser.parse_args()
    engine = Engine("cpu")
    detector = ChestDetector(FOLDER / DETECTOR_FILE)
    gate = Gate([*checks.IMAGE, checks.model_ood, detector])
    before = Gate([*(c for c in checks.IMAGE if c is not checks.detail), checks.model_ood, detector])
    split = dataset.split_samples(dataset.list_samples())
    films, labels = dataset.load_gray(split["val"], 224)
    result: dict = {"films": {"val": quality(list(films)),
                              "test": quality(list(dataset.load_gray(split["test"], 224)[0]))},
                    "shifted_validation_refused_by_detail": {
                        kind: round(float(np.mean([bool(checks.detail(Subject(d))) for d in moved])), 3)
                        for kind, moved in shifted(films).items()}}
    for name in args.models.split(","):
        model = engine.model(name)
        rows = {}
        for kind, degrade in DEGRADATIONS.items():
            displays = [degrade(f) for f in films]
            called, refused, refused_before = [], [], []
            for i in range(0, len(displays), 32):
                batch = displays[i:i + 32]
                images = np.concatenate([model_input(d, model.card) for d in batch])
                out = model.run(images, ["probability", "ood_score"])
                for display, p, ood in zip(batch, out["probability"][:, 0], out["ood_score"][:, 0]):
                    called.append(p >= model.card.threshold)
                    subject = Subject(display, None, model.card, float(ood))
                    refused.append(bool(gate(subject).refused))
                    refused_before.append(bool(before(subject).refused))
            called, refused, refused_before = np.array(called), np.array(refused), np.array(refused_before)
            rows[kind] = {}
            for label, side in ((0, "normal"), (1, "pneumonia")):
                c, r, b = (a[labels == label] for a in (called, refused, refused_before))
                rows[kind][side] = {"n": int(len(c)), "called_pneumonia": round(float(c.mean()), 3),
                                    "refused": round(float(r.mean()), 3),
                                    "called_pneumonia_after_gate": round(float((c & ~r).mean()), 3),
                                    "without_detail_check": {
                                        "refused": round(float(b.mean()), 3),
                                        "called_pneumonia_after_gate": round(float((c & ~b).mean()), 3)}}
        result[name] = {"threshold": model.card.threshold, "degradations": rows}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
