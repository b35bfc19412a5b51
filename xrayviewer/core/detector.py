"""The chest-radiograph detector check: one more gate check, run only when its ONNX file is present.

Contract of the file (`models/chest-detector.onnx`, not shipped yet): input `image`, float32
`[N, H, W, 3]`, prepared like a pneumonia model's input (`core.preprocess.model_input`); output
`probability` `[N, 1]` = P(a frontal chest radiograph); metadata key `xrayviewer.model_card` holds a
JSON card with `name`, `input_size`, `preprocessing` (`scale`, `offset`, optional `border`) and
`threshold` (`value`, `rule`). An image scoring below the threshold is refused.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import onnxruntime as ort

from xrayviewer.core.contract import FIX, META_CARD, ModelCard, ModelContractError
from xrayviewer.core.gate import Finding, Refusal, Subject
from xrayviewer.core.preprocess import model_input
from xrayviewer.core.session import session_options

CARD_KEYS = ("name", "input_size", "preprocessing", "threshold")


class ChestDetector:
    """A gate check backed by the detector at `path`; no finding at all while the file is absent."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._loaded: tuple[ort.InferenceSession, ModelCard] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[ort.InferenceSession, ModelCard]:
        with self._lock:
            if self._loaded is None:
                try:
                    session = ort.InferenceSession(self.path.read_bytes(), sess_options=session_options(),
                                                   providers=["CPUExecutionProvider"])
                    data = json.loads(session.get_modelmeta().custom_metadata_map[META_CARD])
                    missing = [k for k in CARD_KEYS if k not in data]
                    if missing:
                        raise ValueError(f"its card lacks {', '.join(missing)}")
                except Exception as exc:  # noqa: BLE001 - ORT, JSON and key errors alike
                    raise ModelContractError(self.path, "chest detector cannot be used",
                                             " ".join(str(exc).split())[:300] or type(exc).__name__,
                                             f"Replace or remove the file. {FIX}") from None
                self._loaded = (session, ModelCard(data))
            return self._loaded

    def __call__(self, subject: Subject) -> list[Finding]:
        if not self.path.is_file():
            return []
        session, card = self._load()
        p = float(session.run(["probability"], {"image": model_input(subject.display, card)})[0][0, 0])
        if p >= card.threshold:
            return []
        return [Refusal("detector", f"not recognised as a frontal chest radiograph: detector score {p:.2f} < "
                        f"limit {card.threshold:.2f}", score=round(p, 4), limit=card.threshold)]
