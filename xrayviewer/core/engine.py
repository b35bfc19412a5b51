"""The analysis engine: display array -> model input -> (probability, CAM, OOD flag), batched where it can be.

file -> ImageRecord -> display array (core.display) -> model input (core.preprocess)
-> one forward pass (probability, features, gradients, OOD score) -> CAM for a method and target.
A new CAM method or target reuses the forward pass; only Score-CAM runs the model again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xrayviewer.core.cam import METHODS, CamInput, CamResult
from xrayviewer.core.preprocess import model_input
from xrayviewer.core.session import Model, ModelCache

TARGETS = ("pneumonia", "normal")


@dataclass(frozen=True)
class Inference:
    """One image's forward pass."""

    probability: float  # P(PNEUMONIA)
    features: np.ndarray  # [h, w, C]
    gradients: np.ndarray  # [h, w, C], of the PNEUMONIA logit
    image: np.ndarray  # [1, H, W, 3] model input
    ood_score: float | None = None


@dataclass(frozen=True)
class Analysis:
    """What the app shows for one image, one model, one CAM method and target."""

    model: str
    provider: str
    probability: float
    label: str
    threshold: float
    ood: dict = field(default_factory=dict)
    method: str = "gradcam"
    target: str = "pneumonia"
    cam: CamResult | None = None


COLOR_LIMIT = 3.0  # mean |R-G| + |G-B| in gray levels; every training film is exactly gray (0)
ASPECT_LIMIT = 2.0  # no chest film is twice as long as it is wide


def ood_of(model: Model, score: float | None, display: np.ndarray) -> dict:
    """`{"score": x, "flagged": bool, "reasons": [...]}` for one film.

    `score` is the model file's own gate (null for a model without one; above 1 is unlike the
    training films). Two checks that need no model flag what no chest film can be: a colour
    image, and a picture more than twice as long as it is wide.
    """
    reasons = []
    gate = model.card.data.get("ood")
    if score is not None and gate and score > float(gate["threshold"]):
        reasons.append("unlike the training films")
    if display.ndim == 3:
        f = display[::4, ::4].astype(np.float32)  # a sample is enough to tell colour from gray
        chroma = float((np.abs(f[..., 0] - f[..., 1]) + np.abs(f[..., 1] - f[..., 2])).mean())
        if chroma > COLOR_LIMIT:
            reasons.append("a colour image")
    h, w = display.shape[:2]
    if max(h, w) / max(min(h, w), 1) > ASPECT_LIMIT:
        reasons.append(f"aspect ratio {max(h, w) / max(min(h, w), 1):.1f}")
    return {"score": None if score is None or not gate else round(float(score), 4), "flagged": bool(reasons),
            "reasons": reasons}


class Engine:
    """Loads models once and analyses display arrays with them."""

    def __init__(self, provider: str = "auto") -> None:
        self.provider = provider
        self.models = ModelCache()

    def model(self, name_or_path: str | Path) -> Model:
        from xrayviewer.models import resolve

        return self.models.get(resolve(name_or_path), self.provider)

    def infer(self, model: Model, displays: list[np.ndarray]) -> list[Inference]:
        """Forward passes for several display arrays in one batch."""
        images = np.concatenate([model_input(d, model.card) for d in displays])
        wanted = ["probability", "features", "gradients"] + (["ood_score"] if "ood_score" in model.outputs else [])
        out = model.run(images, wanted)
        scores = out.get("ood_score", [None] * len(displays))
        return [
            Inference(float(out["probability"][i, 0]), out["features"][i], out["gradients"][i], images[i:i + 1],
                      None if scores[i] is None else float(np.ravel(scores[i])[0]))
            for i in range(len(displays))
        ]

    def cam(self, model: Model, inference: Inference, method: str, target: str,
            size: tuple[int, int]) -> CamResult:
        """The CAM of `method` for `target` at `size` (rows, cols) of the source image."""
        if method not in METHODS:
            raise ValueError(f"unknown CAM method '{method}'; choose one of {', '.join(METHODS)}")
        if target not in TARGETS:
            raise ValueError(f"unknown target '{target}'; choose pneumonia or normal")
        sign = 1.0 if target == "pneumonia" else -1.0  # binary logit: d(normal logit) = -d(pneumonia logit)

        def score(batch: np.ndarray) -> np.ndarray:
            p = model.run(batch, ["probability"])["probability"][:, 0]
            return p if target == "pneumonia" else 1 - p

        x = CamInput(inference.features, sign * inference.gradients, inference.image, score)
        return METHODS[method]().compute(x, size)

    def analysis(self, model: Model, inference: Inference, display: np.ndarray, method: str = "gradcam",
                 target: str = "pneumonia") -> Analysis:
        """Result and CAM (at the display's size) of one forward pass."""
        threshold = model.card.threshold
        return Analysis(
            model=model.card.name,
            provider=model.provider,
            probability=inference.probability,
            label="PNEUMONIA" if inference.probability >= threshold else "NORMAL",
            threshold=threshold,
            ood=ood_of(model, inference.ood_score, display),
            method=method,
            target=target,
            cam=self.cam(model, inference, method, target, display.shape[:2]),
        )

    def analyze(self, model: Model, display: np.ndarray, method: str = "gradcam",
                target: str = "pneumonia") -> Analysis:
        """One display array, start to end."""
        (inference,) = self.infer(model, [display])
        return self.analysis(model, inference, display, method, target)
