"""The ONNX model contract (version 1): what a `.onnx` file must carry for the app to use it.

One validator, used by the converter before it writes a file and by the app before it
trusts one. See `models/README.md` for the contract in prose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from xrayviewer.core.errors import XRayViewerError

CONTRACT_VERSION = "1"
META_VERSION = "xrayviewer.contract_version"
META_CARD = "xrayviewer.model_card"
INPUT = "image"
OUTPUTS = ("probability", "features", "gradients")
CARD_KEYS = (
    "name", "architecture", "classes", "positive_class", "input_size", "preprocessing", "cam_layer",
    "threshold", "validation", "training_data", "recipe_version", "converter_version",
)
FIX = "Export the model with `python -m converters.export` (see models/README.md)."


class ModelContractError(XRayViewerError):
    """An `.onnx` file that is not a model this app can use."""


@dataclass(frozen=True)
class ModelCard:
    """The model card stored in the file's metadata, with typed access to what the engine needs."""

    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def input_size(self) -> tuple[int, int]:
        h, w = self.data["input_size"]
        return int(h), int(w)

    @property
    def scale(self) -> float:
        return float(self.data["preprocessing"]["scale"])

    @property
    def offset(self) -> float:
        return float(self.data["preprocessing"]["offset"])

    @property
    def border(self) -> float:
        """Fraction of each side blanked around the resized film (0 for models without one)."""
        return float(self.data["preprocessing"].get("border", 0.0))

    @property
    def threshold(self) -> float:
        return float(self.data["threshold"]["value"])

    @property
    def threshold_rule(self) -> str:
        """How the operating threshold was chosen, in words ("" when the card does not say)."""
        return str(self.data["threshold"].get("rule", ""))

    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    def cam_reference(self, method: str) -> float | None:
        """The fixed raw-CAM scale of `method` (its typical peak on pneumonia films), or None when the card has none."""
        value = (self.data.get("cam_reference") or {}).get(method)
        return float(value) if isinstance(value, (int, float)) and value > 0 else None


def card_metadata(card: dict[str, Any]) -> dict[str, str]:
    """The `metadata_props` entries that carry `card` under this contract."""
    return {META_VERSION: CONTRACT_VERSION, META_CARD: json.dumps(card, sort_keys=True)}


def validate_session(session: ort.InferenceSession, source: str | Path) -> ModelCard:
    """Check a loaded model against contract version 1 and return its card; `source` names it in errors."""

    def fail(what: str, why: str) -> ModelContractError:
        return ModelContractError(source, f"breaks the model contract: {what}", why, FIX)

    meta = session.get_modelmeta().custom_metadata_map
    version = meta.get(META_VERSION)
    if version is None:
        raise fail("no contract version", f"metadata key '{META_VERSION}' is missing")
    if version != CONTRACT_VERSION:
        raise fail(f"contract version {version}", f"this app reads version {CONTRACT_VERSION}")
    try:
        card = json.loads(meta[META_CARD])
    except KeyError:
        raise fail("no model card", f"metadata key '{META_CARD}' is missing") from None
    except json.JSONDecodeError as exc:
        raise fail("unreadable model card", f"not valid JSON ({exc.msg})") from None
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise fail("incomplete model card", f"missing {', '.join(missing)}")

    inputs = session.get_inputs()
    if [i.name for i in inputs] != [INPUT]:
        raise fail("wrong inputs", f"expected one input '{INPUT}', found {[i.name for i in inputs]}")
    shape = inputs[0].shape
    if inputs[0].type != "tensor(float)" or len(shape) != 4 or shape[3] != 3:
        raise fail("wrong input", f"'{INPUT}' must be float32 [N, H, W, 3], found {inputs[0].type} {shape}")
    size = tuple(card["input_size"])
    if tuple(shape[1:3]) != size:
        raise fail("input size mismatch", f"graph takes {shape[1:3]}, card says {list(size)}")

    outputs = {o.name: o for o in session.get_outputs()}
    absent = [name for name in OUTPUTS if name not in outputs]
    if absent:
        raise fail("missing outputs", f"{', '.join(absent)} not among {sorted(outputs)}")
    prob, feats, grads = (outputs[n].shape for n in OUTPUTS)
    if len(prob) != 2 or prob[1] != 1:
        raise fail("wrong 'probability' shape", f"expected [N, 1], found {prob}")
    if len(feats) != 4 or feats[1:] != grads[1:]:
        raise fail("'features' and 'gradients' differ", f"expected equal [N, h, w, C], found {feats} and {grads}")
    return ModelCard(card)
