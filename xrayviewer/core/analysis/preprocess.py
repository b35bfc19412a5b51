"""Model input from the 8-bit display array, exactly as the model card says (the same for DICOM and JPEG)."""

from __future__ import annotations

import cv2
import numpy as np

from xrayviewer.core.analysis.contract import ModelCard
from xrayviewer.core.reading.display import to_gray


def blank_border(gray: np.ndarray, fraction: float) -> np.ndarray:
    """Gray `[..., H, W]` with an outer ring `fraction` of each side wide set to 0 (black), as a copy.

    Side markers, text and collimator edges sit in the border; a model that never sees it
    cannot learn them as shortcuts. Applied the same way in training and in the app.
    """
    out = np.array(gray, copy=True)
    if fraction <= 0:
        return out
    h, w = out.shape[-2:]
    mh, mw = int(round(h * fraction)), int(round(w * fraction))
    out[..., :mh, :] = 0
    out[..., h - mh:, :] = 0
    out[..., :, :mw] = 0
    out[..., :, w - mw:] = 0
    return out


def interior_range(gray: np.ndarray, border: float, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """The `low` and `high` percentiles of the gray levels inside the border ring (the part the model sees)."""
    h, w = gray.shape[-2:]
    mh, mw = int(round(h * border)), int(round(w * border))
    inside = gray[..., mh:h - mh or None, mw:w - mw or None]
    lo, hi = np.percentile(inside, [low, high])
    return float(lo), float(hi)


def percentile_stretch(gray: np.ndarray, border: float, low: float, high: float) -> np.ndarray:
    """uint8 gray `[H, W]` with the interior's `low`-`high` percentiles stretched linearly to 0-255 (clipped).

    Exposure and contrast differ between machines and hospitals; after the stretch a faint or dark film
    reaches the model with the same range as a well exposed one. A flat interior (range under one gray
    level) is returned unchanged: there is nothing to stretch, and the gate refuses such films.
    """
    lo, hi = interior_range(gray, border, low, high)
    if hi - lo < 1:
        return np.array(gray, copy=True)
    x = (gray.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def model_gray(gray: np.ndarray, border: float, intensity: dict | None) -> np.ndarray:
    """Resized uint8 gray `[H, W]` or `[N, H, W]` -> what the model sees: intensity normalised, border blanked.

    `intensity` is the card's `preprocessing.intensity` (None: no normalisation, as for the v1/v2 models).
    The one place where training, export, validation and the app prepare a film's gray levels.
    """
    if intensity:
        low, high = intensity.get("percentiles", (1.0, 99.0))
        if gray.ndim == 3:
            gray = np.stack([percentile_stretch(g, border, low, high) for g in gray])
        else:
            gray = percentile_stretch(gray, border, low, high)
    return blank_border(gray, border)


def model_input(display: np.ndarray, card: ModelCard) -> np.ndarray:
    """uint8 display array (gray or RGB, any size) -> float32 `[1, H, W, 3]`.

    The whole image is resized (no crop), so a CAM maps back over the whole source image; the card's
    intensity normalisation is applied and its border ring blanked (`model_gray`).
    """
    h, w = card.input_size
    gray = model_gray(cv2.resize(to_gray(display), (w, h), interpolation=cv2.INTER_AREA), card.border, card.intensity)
    x = gray.astype(np.float32) * np.float32(card.scale) + np.float32(card.offset)
    return np.repeat(x[None, :, :, None], 3, axis=3)
