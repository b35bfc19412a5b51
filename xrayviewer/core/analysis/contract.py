"""The ONNX model contract (version 1): what a `.onnx` file must carry for the app to use it.

One validator, used by the converter before it writes a file and by the app before it
trusts one. See `models/README.md` for the contract in prose.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np
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
MAX_INPUT_SIDE = 4096


def finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _size(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INPUT_SIDE for v in value))


Check = Callable[[Any], bool]


@dataclass(frozen=True)
class Fields:
    """A JSON object whose listed fields (name -> (check, required)) must pass; other fields are allowed."""

    fields: dict[str, tuple[Check, bool]]

    def bad(self, value: Any) -> str | None:
        """None when `value` passes; "" when it is no object; else the name of the first field that fails."""
        if not isinstance(value, dict):
            return ""
        for name, (ok, required) in self.fields.items():
            if (name in value and not ok(value[name])) or (required and name not in value):
                return name
        return None


def _percentiles(value: dict) -> bool:
    low, high = value.get("percentiles", (1, 99))
    return 0 <= low < high <= 100


# The intensity normalisations the app knows (preprocess.model_gray); a card naming another is refused, not misread.
INTENSITY_METHODS = ("percentile-stretch",)
INTENSITY = Fields({
    "method": (lambda v: v in INTENSITY_METHODS, True),
    "percentiles": (lambda v: isinstance(v, list) and len(v) == 2 and all(finite_number(p) for p in v), False),
})


def probability_value(value: Any) -> bool:
    return finite_number(value) and 0 <= value <= 1


# What each known card key must hold, in words for the message. Keys not listed here (figures, limitations,
# calibration...) are the card's free text: the viewer shows them and the engine never reads them.
CARD_TYPES: dict[str, tuple[Check | Fields, str]] = {
    "name": (_text, "a non-empty text"),
    "architecture": (_text, "a non-empty text"),
    "classes": (lambda v: isinstance(v, list) and len(v) == 2 and all(_text(c) for c in v),
                'a list of the two class names, e.g. ["NORMAL", "PNEUMONIA"]'),
    "positive_class": (_text, "the name of the class the probability is of"),
    "input_size": (_size, f"[rows, columns]: two whole numbers from 1 to {MAX_INPUT_SIDE}"),
    "preprocessing": (Fields({"scale": (lambda v: finite_number(v) and v != 0, True), "offset": (finite_number, True),
                              "border": (lambda v: finite_number(v) and 0 <= v < 0.5, False),
                              "intensity": (lambda v: INTENSITY.bad(v) is None and _percentiles(v), False)}),
                      ('an object {"scale": a non-zero number, "offset": a number, "border": (optional) a number '
                       'from 0 to 0.5, "intensity": (optional) {"method": "percentile-stretch", "percentiles": '
                       "[low, high] from 0 to 100}}")),
    "cam_layer": (_text, "the name of the CAM layer"),
    "threshold": (Fields({"value": (probability_value, True), "rule": (lambda v: isinstance(v, str), False)}),
                  'an object {"value": a probability from 0 to 1, "rule": (optional) text}'),
    "validation": (lambda v: isinstance(v, dict), "an object (the validation figures)"),
    "training_data": (lambda v: isinstance(v, dict), "an object (what the model was trained on)"),
    "recipe_version": (lambda v: _text(v) or finite_number(v), "a text or a number"),
    "converter_version": (lambda v: _text(v) or finite_number(v), "a text or a number"),
    "cam_reference": (lambda v: isinstance(v, dict), "an object (CAM method -> raw CAM scale)"),
    "ood": (Fields({"output": (_text, True), "threshold": (finite_number, True)}),
            'an object {"output": the name of the score output, "threshold": a number}'),
}


def card_problem(card: Any) -> tuple[str, str] | None:
    """(what, why) of the first way `card` breaks the contract's types, or None when it is usable.

    Unknown keys are allowed: cards carry free-form figures and notes, and a newer converter may add keys.
    """
    problem = typed_problem(card, CARD_KEYS, CARD_TYPES)
    if problem is None and card["positive_class"] not in card["classes"]:
        return ("invalid model card key 'positive_class'",
                f"{_shown(card['positive_class'])} is not one of the classes {_shown(card['classes'])}")
    return problem


CONSENSUS_RULES = ("mean-logit",)  # how core.analysis.consensus combines its members
CONSENSUS_KEYS = ("name", "members", "rule", "threshold")
CONSENSUS_TYPES: dict[str, tuple[Check | Fields, str]] = {
    "name": (_text, "a non-empty text"),
    "members": (lambda v: isinstance(v, list) and len(v) >= 2 and all(_text(m) for m in v) and len(set(v)) == len(v),
                "a list of two or more different shipped model names"),
    "rule": (lambda v: v in CONSENSUS_RULES, f"one of {', '.join(CONSENSUS_RULES)}"),
    "threshold": CARD_TYPES["threshold"],
}


def consensus_problem(card: Any) -> tuple[str, str] | None:
    """(what, why) of the first way a consensus card (core.analysis.consensus) breaks its types, or None."""
    return typed_problem(card, CONSENSUS_KEYS, CONSENSUS_TYPES)


def typed_problem(card: Any, required: tuple[str, ...],
                  types: dict[str, tuple[Check | Fields, str]]) -> tuple[str, str] | None:
    """(what, why) when `card` is no JSON object, lacks a `required` key or holds a value `types` refuses."""
    if not isinstance(card, dict):
        return "model card is not a JSON object", f"found {_shown(card)}"
    missing = [k for k in required if k not in card]
    if missing:
        return "incomplete model card", f"missing {', '.join(missing)}"
    for key, (check, expected) in types.items():
        if key not in card:
            continue
        value = card[key]
        bad = check.bad(value) if isinstance(check, Fields) else (None if check(value) else "")
        if bad is not None:
            if bad:  # a field of an object
                where, found = f"{key}.{bad}", f"found {_shown(value[bad])}" if bad in value else f"it has no '{bad}'"
            else:
                where, found = key, f"found {_shown(value)}"
            return f"invalid model card key '{where}'", f"'{key}' must be {expected}; {found}"
    return None


def _shown(value: Any) -> str:
    """A JSON value as the card's author wrote it, cut short."""
    text = json.dumps(value, allow_nan=True)
    return text if len(text) <= 80 else text[:77] + "..."


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
    def intensity(self) -> dict | None:
        """The card's intensity normalisation (`preprocessing.intensity`), None for models trained without one."""
        value = self.data["preprocessing"].get("intensity")
        return dict(value) if value else None

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

    def cam_reference(self, method: str, cells: int | None = None) -> float | None:
        """The fixed raw-CAM scale of `method` (its typical peak on pneumonia films), or None when the card has none.
        A perturbation map's scale depends on its grid: `method@cells` is looked up first."""
        table = self.data.get("cam_reference") or {}
        value = table.get(f"{method}@{cells}") if cells else None
        value = table.get(method) if value is None else value
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    def faithfulness(self, method: str) -> dict | None:
        """What benchmarks/faithfulness.py measured of `method` on validation (None when the card does not say)."""
        figures = (self.data.get("faithfulness") or {}).get("methods", {}).get(method)
        return figures if isinstance(figures, dict) else None

    @property
    def faithfulness_films(self) -> int | None:
        """How many validation pneumonia films the card's faithfulness figures were measured on."""
        value = (self.data.get("faithfulness") or {}).get("pneumonia_films")
        return value if isinstance(value, int) else None

    @cached_property
    def occlusion_fill(self) -> np.ndarray | None:
        """What covers an occluded patch: the mean NORMAL film of the model's training set, uint8 gray at the input
        size (card key `occlusion_fill`, a base64 PNG); None when the card has none or it does not decode to that
        size (the film's local mean is used then)."""
        text = self.data.get("occlusion_fill")
        if not isinstance(text, str):
            return None
        try:
            image = cv2.imdecode(np.frombuffer(base64.b64decode(text, validate=True), np.uint8), cv2.IMREAD_GRAYSCALE)
        except (binascii.Error, ValueError, cv2.error):
            return None
        return image if image is not None and image.shape == self.input_size else None

    @property
    def occlusion_cells(self) -> int | None:
        """The occlusion grid the card's figures were measured at and the viewer refines to (None: the default)."""
        value = (self.data.get("faithfulness") or {}).get("occlusion_cells")
        return int(value) if isinstance(value, int) and 2 <= value <= 64 else None


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
    problem = card_problem(card)
    if problem:
        raise fail(*problem)

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
