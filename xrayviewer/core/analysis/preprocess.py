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


def model_input(display: np.ndarray, card: ModelCard) -> np.ndarray:
    """uint8 display array (gray or RGB, any size) -> float32 `[1, H, W, 3]`.

    The whole image is resized (no crop), so a CAM maps back over the whole source image;
    the card's border ring is then blanked.
    """
    h, w = card.input_size
    gray = blank_border(cv2.resize(to_gray(display), (w, h), interpolation=cv2.INTER_AREA), card.border)
    x = gray.astype(np.float32) * np.float32(card.scale) + np.float32(card.offset)
    return np.repeat(x[None, :, :, None], 3, axis=3)
