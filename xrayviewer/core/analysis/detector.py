"""The chest-radiograph detector check: one more gate check, run only when its ONNX file is present.

Contract of the file (`models/chest-detector.onnx`, made by `converters/detector.py`): input `image`,
float32 `[N, H, W, C]` = the display array to gray, resized whole to `input_size` (cv2.INTER_AREA),
`x = pixel * scale + offset`, repeated to `channels` (default 1); output `chest` `[N, 1]` = P(a frontal
chest radiograph); metadata key `xrayviewer.detector_card` holds a JSON card with `name`, `input_size`,
`preprocessing` (`scale`, `offset`, `channels`) and `threshold` (a number). An image scoring below the
threshold is refused.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from xrayviewer.core.analysis.contract import CARD_TYPES as MODEL_CARD_TYPES
from xrayviewer.core.analysis.contract import (
    Fields,
    ModelContractError,
    finite_number,
    probability_value,
    typed_problem,
)
from xrayviewer.core.analysis.findings import Finding, Refusal, Subject, compared, places
from xrayviewer.core.analysis.session import session_options
from xrayviewer.core.reading.display import to_gray

META_CARD = "xrayviewer.detector_card"
CARD_KEYS = ("name", "input_size", "preprocessing", "threshold")
CARD_TYPES = {
    "input_size": MODEL_CARD_TYPES["input_size"],
    "preprocessing": (Fields({"scale": (lambda v: finite_number(v) and v != 0, True), "offset": (finite_number, True),
                              "channels": (lambda v: v in (1, 3) and not isinstance(v, bool), False)}),
                      'an object {"scale": a non-zero number, "offset": a number, "channels": (optional) 1 or 3}'),
    "threshold": (probability_value, "a probability from 0 to 1"),
}


def detector_input(display: np.ndarray, card: dict) -> np.ndarray:
    """uint8 display array -> float32 `[1, H, W, C]` as the detector's card says."""
    h, w = card["input_size"]
    pre = card["preprocessing"]
    gray = cv2.resize(to_gray(display), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    x = gray * np.float32(pre["scale"]) + np.float32(pre["offset"])
    return np.repeat(x[None, :, :, None], int(pre.get("channels", 1)), axis=3)


class ChestDetector:
    """A gate check backed by the detector at `path`; no finding at all while the file is absent."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._loaded: tuple[ort.InferenceSession, dict] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[ort.InferenceSession, dict]:
        with self._lock:
            if self._loaded is None:
                try:
                    session = ort.InferenceSession(self.path.read_bytes(), sess_options=session_options(),
                                                   providers=["CPUExecutionProvider"])
                    card = json.loads(session.get_modelmeta().custom_metadata_map[META_CARD])
                    problem = typed_problem(card, CARD_KEYS, CARD_TYPES)
                    if problem:
                        raise ValueError(": ".join(problem))
                except Exception as exc:  # noqa: BLE001 - ORT, JSON and key errors alike
                    raise ModelContractError(self.path, "chest detector cannot be used",
                                             " ".join(str(exc).split())[:300] or type(exc).__name__,
                                             "Replace the file with one from `python -m converters.detector`, "
                                             "or remove it.") from None
                self._loaded = (session, card)
            return self._loaded

    def __call__(self, subject: Subject) -> list[Finding]:
        if not self.path.is_file():
            return []
        session, card = self._load()
        p = float(session.run(["chest"], {"image": detector_input(subject.display, card)})[0][0, 0])
        limit = float(card["threshold"])
        if p >= limit:
            return []
        return [Refusal("detector", "not recognised as a frontal chest radiograph: detector score "
                        f"{compared(p, '<', limit)}", score=round(p, places(p, '<', limit, 4)), limit=limit)]
