"""The gate's blur check (`checks.detail`, measure `checks.sharpness`) against how blurred a film the model can read.

    PYTHONPATH=. python benchmarks/sharpness.py [--model mobilenetv2]

The patient-level validation films (224 px, as the gate gets them) blurred by a Gaussian of sd 1, 1.5, 2, 2.5, 3, 4
and 8 px, and through issue 25's other acquisition shifts (`converters.augment.EXPOSURE_SHIFTS`). For each, per class
(normal, pneumonia): the sharpness (lowest, 2nd percentile, median, 98th, highest), the share the blur check refuses, the share the
whole gate refuses (as the app runs it: every shipped check, the detector and the model's own OOD gate), and the
share the model calls pneumonia at its card's threshold, over all films and over those the gate lets through
(for normal films the false-positive rate, for pneumonia films the sensitivity). Also the sharpness of the
internal-test films and of the adult demo CR (pydicom-data), which the limit must let through. One JSON object.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from converters import dataset
from converters.augment import EXPOSURE_SHIFTS, shifted
from converters.validate import called_and_refused
from xrayviewer.core import read_image, to_display
from xrayviewer.core.analysis import checks
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.findings import Subject
from xrayviewer.demo import data_store_folder

BLURS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 8.0)  # px at 224


def spread(values: np.ndarray) -> dict:
    """Lowest, 2nd percentile, median, 98th percentile and highest."""
    return dict(zip(("min", "p02", "median", "p98", "max"),
                    (round(float(v), 3) for v in np.percentile(values, [0, 2, 50, 98, 100]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="mobilenetv2")
    args = parser.parse_args()
    engine = Engine("cpu")
    model = engine.model(args.model)
    split = dataset.split_samples(dataset.list_samples())
    films, labels = dataset.load_gray(split["val"], 224)
    sets = {"clean": films, **{f"blur_{s}": np.stack([cv2.GaussianBlur(f, (0, 0), s) for f in films]) for s in BLURS},
            **{k: v for k, v in shifted(films, table=EXPOSURE_SHIFTS).items() if not k.startswith("blur")}}
    rows = {}
    for kind, moved in sets.items():
        _, called, refused = called_and_refused(engine, model, moved)
        ratio = np.array([checks.sharpness(f) for f in moved])
        blurred = np.array([bool(checks.detail(Subject(f))) for f in moved])
        rows[kind] = {}
        for label, side in ((0, "normal"), (1, "pneumonia")):
            c, r, b, s = (a[labels == label] for a in (called, refused, blurred, ratio))
            rows[kind][side] = {"n": len(c), "sharpness": spread(s),
                                "refused_by_blur_check": round(float(b.mean()), 3),
                                "refused_by_gate": round(float(r.mean()), 3),
                                "called_pneumonia": round(float(c.mean()), 3),
                                "called_pneumonia_of_passed": round(float(c[~r].mean()), 3) if (~r).any() else None}
        rows[kind]["refused_by_gate_all"] = round(float(refused.mean()), 3)
    test = np.array([checks.sharpness(f) for f in dataset.load_gray(split["test"], 224)[0]])
    demo = to_display(read_image(data_store_folder() / "RG1_UNCR.dcm"))
    print(json.dumps({"model": args.model, "threshold": model.card.threshold, "limit": checks.SHARPNESS_LIMIT,
                      "shifts": rows, "internal_test_clean": {"n": len(test), "sharpness": spread(test)},
                      "demo_cr_RG1_UNCR": round(checks.sharpness(demo), 3)}, indent=1))


if __name__ == "__main__":
    main()
