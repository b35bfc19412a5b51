"""How often the gate's image checks (colour, aspect ratio, flat) and the model's own OOD gate refuse
real chest films and non-chest images. The DICOM header rules are left out: they would refuse most
non-chest DICOMs by their header alone, and this measures what is left when a header is missing.

    python benchmarks/ood_gate.py [--model mobilenetv2]

Chest films: the validation and internal-test splits of the shared data (patients the model
was not trained on). Non-chest: every non-chest image among pydicom-data's DICOMs (CT, MR,
ultrasound, extremity CR, nuclear medicine, secondary captures...) and pydicom's own test
images, plus scikit-image's sample photos when scikit-image is installed. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pydicom

from converters import dataset
from xrayviewer.core import XRayViewerError, read_image, to_display
from xrayviewer.core import checks
from xrayviewer.core.engine import Engine
from xrayviewer.core.gate import Gate, Subject
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
    try:
        import skimage.data as sd
    except ImportError:
        return sets
    for name in ("astronaut", "camera", "coffee", "chelsea", "rocket", "moon", "page", "text", "coins",
                 "horse", "hubble_deep_field", "immunohistochemistry", "motorcycle_left", "retina", "skin"):
        try:
            image = getattr(sd, name)()
        except Exception:  # noqa: BLE001 - images that scikit-image would have to download
            continue
        sets["photos"].append((name, image if image.dtype.kind == "u" else (image * 255).astype("uint8")))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="mobilenetv2")
    args = parser.parse_args()
    engine = Engine("cpu")
    model = engine.model(args.model)
    gate = Gate([*checks.IMAGE, checks.model_ood])

    def flags(displays: list) -> list[bool]:
        out = []
        for i in range(0, len(displays), 32):
            batch = displays[i:i + 32]
            for display, inference in zip(batch, engine.infer(model, batch)):
                out.append(bool(gate(Subject(display, None, model.card, inference.ood_score)).refused))
        return out

    result = {"model": model.card.name, "threshold": model.card.data["ood"]["threshold"]}
    split = dataset.split_samples(dataset.list_samples())
    for side in ("val", "test"):
        displays = [to_display(read_image(s.path)) for s in split[side]]
        f = flags(displays)
        result[f"chest_{side}"] = {"n": len(f), "flagged": sum(f), "rate": round(sum(f) / len(f), 4)}
    for name, items in non_chest_images().items():
        if items:
            f = flags([d for _, d in items])
            result[f"non_chest_{name}"] = {"n": len(f), "flagged": sum(f), "rate": round(sum(f) / len(f), 4),
                                           "missed": [n for (n, _), hit in zip(items, f) if not hit]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
