"""Class activation maps from a model's exported features and gradients (NumPy only).

Each method is a small class that only says how to weight the feature maps, as in
pytorch-grad-cam; `CamMethod.compute` does the rest (weighted sum, ReLU, resize).
"""

from __future__ import annotations

import cv2
import numpy as np


class CamMethod:
    """Base: map = ReLU(sum_c weight_c * feature_c), resized to the source image."""

    name = "base"

    def weights(self, features: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """Per-channel weights `[C]` (or per-position `[h, w, C]`) for one image's `[h, w, C]` maps."""
        raise NotImplementedError

    def raw_map(self, features: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """The ReLU'd weighted sum at feature resolution `[h, w]`, unnormalised."""
        weighted = features * self.weights(features, gradients)
        return np.maximum(weighted.sum(axis=-1), 0).astype(np.float32)

    def compute(self, features: np.ndarray, gradients: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
        """(map in [0, 1] at `size` = (rows, cols), raw peak before normalisation)."""
        raw = self.raw_map(features, gradients)
        peak = float(raw.max())
        resized = cv2.resize(raw, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        return (np.clip(resized / peak, 0, 1) if peak > 0 else np.zeros_like(resized)), peak


class GradCAM(CamMethod):
    """Grad-CAM (Selvaraju et al. 2017): channel weight = spatial mean of the gradient."""

    name = "gradcam"

    def weights(self, features: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        return gradients.mean(axis=(0, 1))
