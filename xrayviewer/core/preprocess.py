"""Model input from the 8-bit display array, exactly as the model card says (the same for DICOM and JPEG)."""

from __future__ import annotations

import cv2
import numpy as np

from xrayviewer.core.contract import ModelCard
from xrayviewer.core.display import to_gray


def model_input(display: np.ndarray, card: ModelCard) -> np.ndarray:
    """uint8 display array (gray or RGB, any size) -> float32 `[1, H, W, 3]`.

    The whole image is resized (no crop), so a CAM maps back over the whole source image.
    """
    h, w = card.input_size
    gray = cv2.resize(to_gray(display), (w, h), interpolation=cv2.INTER_AREA)
    x = gray.astype(np.float32) * np.float32(card.scale) + np.float32(card.offset)
    return np.repeat(x[None, :, :, None], 3, axis=3)
