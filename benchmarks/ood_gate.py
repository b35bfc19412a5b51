"""How often the gate refuses real chest films and non-chest images when the file has no header to go by:
the image checks (colour, aspect ratio, flat, faint, blur), the chest-radiograph detector and the model's own OOD
gate (with the detector's population-note rule). The DICOM header rules are left out: they would refuse
most non-chest DICOMs by their header alone.

    PYTHONPATH=. python benchmarks/ood_gate.py [--model mobilenetv2]

Chest films: the validation and internal-test splits of the shared data (patients the model
was not trained on). Non-chest: every non-chest image among pydicom-data's DICOMs (CT, MR,
ultrasound, extremity CR, nuclear medicine, secondary captures...) and pydicom's own test
images, and the sample photos of the scikit-image, scikit-learn and matplotlib wheels (fetched
with pip download). Prints one JSON object; `detector_only` counts the detector's refusals alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pydicom
from xrayviewer.models import FOLDER

from converters import dataset
from converters.detector import photos
from xrayviewer.core import XRayViewerError, read_image, to_display
from xrayviewer.core.analysis import checks
from xrayviewer.core.analysis.detector import ChestDetector
from xrayviewer.core.analysis.engine import Engine
from xrayviewer.core.analysis.findings import Subject
from xrayviewer.core.analysis.gate import DETECTOR_FILE, Gate
from xrayviewer.demo import data_store_folder

CHEST = ("RG1_",)  # the adult chest CR of pydicom-data


def non_chest_images() -> dict[str, list]:
    sets: dict[str, list] = {"dicom": [], "photos": []}
    folders = [data_store_folder(), Path(pydicom.__file__).parent / "data" / "test_files"]
    for folder in folders:
        for path in sorted(folder.rglob("*.dcm")):
            if path.name.startswith(CHEST):
                continue
            try:
                sets["dicom"].append((path.name, to_display(read_image(path))))
            except XRayViewerError:
                pass
    for side in ("train", "check"):
        grays, names = photos(side)
        sets["photos"] += list(zip(names, grays))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="mobilenetv2")
    args = parser.parse_args()
    engine = Engine("cpu")
    model = engine.model(args.model)
    detector = ChestDetector(FOLDER / DETECTOR_FILE)
    gate = Gate([*checks.IMAGE, checks.model_ood, detector])

    def flags(displays: list) -> list[bool]:
        out = []
        for i in range(0, len(displays), 32):
            batch = displays[i:i + 32]
            for display, inference in zip(batch, engine.infer(model, batch)):
                out.append(bool(gate(Subject(display, None, model.card, inference.ood_score)).refused))
        return out

    def detector_only(displays: list) -> int:
        return sum(bool(detector(Subject(d))) for d in displays)

    result = {"model": model.card.name, "threshold": model.card.data["ood"]["threshold"]}
    split = dataset.split_samples(dataset.list_samples())
    for side in ("val", "test"):
        displays = [to_display(read_image(s.path)) for s in split[side]]
        f = flags(displays)
        result[f"chest_{side}"] = {"n": len(f), "flagged": sum(f), "rate": round(sum(f) / len(f), 4),
                                   "detector_only": detector_only(displays)}
    for name, items in non_chest_images().items():
        if items:
            f = flags([d for _, d in items])
            result[f"non_chest_{name}"] = {"n": len(f), "flagged": sum(f), "rate": round(sum(f) / len(f), 4),
                                           "detector_only": detector_only([d for _, d in items]),
                                           "missed": [n for (n, _), hit in zip(items, f) if not hit]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
