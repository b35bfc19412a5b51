"""Class activation maps from a model's exported features and gradients (NumPy only).

Each method is a small class that only says how to weight the feature maps, as in
pytorch-grad-cam; `CamMethod.compute` does the rest (weighted sum, ReLU, resize,
normalise). The gradients given to a method are already those of the target class.
Occlusion (core.analysis.perturbation) uses only the scoring function, not the features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

import cv2
import numpy as np

from xrayviewer.core.analysis.perturbation import CELLS, interior, occlusion_map

EMPTY_RATIO = 1e-3  # positive evidence below this fraction of the strongest evidence counts as none
CELL_PX = 16  # px per map cell at the size where a map is smoothed before it is brought to the source size
SMOOTH_SIGMA = 0.4  # the Gaussian that rounds a map's cells, in cells: no diamonds, no straight cut edges


def smooth(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A feature-size map at `size` (rows, cols): bicubic to CELL_PX per cell, a Gaussian of SMOOTH_SIGMA cells,
    scaled back to the map's own peak, then bilinear. Iso-lines come out round where a bilinear 7 x 7 map draws
    diamonds."""
    h, w = small.shape
    mid = cv2.resize(small.astype(np.float32), (w * CELL_PX, h * CELL_PX), interpolation=cv2.INTER_CUBIC)
    mid = cv2.GaussianBlur(mid, (0, 0), SMOOTH_SIGMA * CELL_PX)
    top, peak = float(mid.max()), float(small.max())
    if top > 0 and peak > 0:
        mid *= peak / top  # the rounding keeps the peak's value: the colour at the hottest point is the measured one
    return cv2.resize(mid, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class CamInput:
    """What a CAM method may use for one image."""

    features: np.ndarray  # [h, w, C] activations of the CAM layer
    gradients: np.ndarray  # [h, w, C] d(target logit) / d(features)
    image: np.ndarray | None = None  # [1, H, W, 3] model input (Score-CAM)
    score: Callable[[np.ndarray], np.ndarray] | None = None  # batch [N, H, W, 3] -> target probability [N]
    border: float = 0.0  # the card's blanked ring, as a fraction of each side (occlusion)
    cancelled: Callable[[], bool] | None = None  # long methods stop (core.errors.Cancelled) once it says so
    fill: np.ndarray | None = None  # [H, W, 3] model input that covers an occluded patch (None: local mean)
    known: dict | None = None  # occlusion: patch drops already scored for this input and target, read and added to


@dataclass(frozen=True)
class CamResult:
    """A CAM in [0, 1] at feature resolution, brought to the source size when asked for.

    Without a `reference` the map is stretched to its own peak (even weak evidence reaches 1);
    with one it is the raw map / `reference`, clipped, so colours compare between films.
    """

    small: np.ndarray  # float32 [h, w] in [0, 1]
    peak: float  # the raw (unnormalised) maximum; 0 when there is no positive evidence
    method: str
    size: tuple[int, int]  # (rows, cols) of the source image
    reference: float | None = None  # the raw value drawn as 1; None: stretched to this map's own peak
    signed: np.ndarray | None = None  # float32 [h, w], the raw map before its positive part was taken
    border: float = 0.0  # a ring (fraction of each side) the model never saw, drawn empty at the source size
    draws_against: bool = False  # the signed map's negative part is evidence against the target, drawn apart
    cells: int | None = None  # a perturbation map's grid (occlusion: 14 x 14, the card's); None: the CAM layer's
    first: bool = False  # a first picture (occlusion: every other patch of the grid), the final map follows

    def against(self, reference: float) -> "CamResult":
        """The same map on a fixed scale: raw map / `reference`, clipped to [0, 1]."""
        scaled = np.clip(self.small * np.float32(self.peak / reference), 0, 1).astype(np.float32)
        return replace(self, small=scaled, reference=reference)

    @property
    def empty(self) -> bool:
        """No positive evidence for the target: nothing is drawn."""
        return not self.small.any()

    @property
    def relative_peak(self) -> float | None:
        """The peak as a fraction of the reference (None without one)."""
        return None if self.reference is None else self.peak / self.reference

    @cached_property
    def map(self) -> np.ndarray:
        """float32 in [0, 1] at the source size (smoothed, see `smooth`)."""
        return self._blank(np.clip(smooth(self.small, self.size), 0, 1))

    @cached_property
    def heat(self) -> np.ndarray:
        """uint8 0..255 at the source size, what the overlay draws."""
        return self._heat(self.small)

    @cached_property
    def against_heat(self) -> np.ndarray | None:
        """The evidence against the target, uint8 at the source size on the heat's scale (the reference, else the
        positive peak, else its own peak); None when the method's sign means nothing or there is none."""
        if not self.draws_against or self.signed is None:
            return None
        against = np.maximum(-self.signed, 0)
        scale = self.reference or self.peak or float(against.max())
        return self._heat(np.clip(against / scale, 0, 1).astype(np.float32)) if scale > 0 else None

    def _heat(self, small: np.ndarray) -> np.ndarray:
        mid = smooth(small, (small.shape[0] * CELL_PX, small.shape[1] * CELL_PX))
        return self._blank(cv2.resize(cv2.convertScaleAbs(mid, alpha=255.0), (self.size[1], self.size[0]),
                                      interpolation=cv2.INTER_LINEAR))

    def _blank(self, full: np.ndarray) -> np.ndarray:
        """`full` with the border ring set to 0 (in place)."""
        if self.border > 0:
            y0, y1, x0, x1 = interior(full.shape[:2], self.border)
            keep = full[y0:y1, x0:x1].copy()
            full[:] = 0
            full[y0:y1, x0:x1] = keep
        return full


class CamMethod:
    """Base: map = ReLU(sum_c weight_c * feature_c)."""

    name = "base"
    label = "base"
    class_specific = True  # the map depends on the target class
    costly = False  # runs the model again (tens of inferences or more): its maps are worth caching

    def weights(self, x: CamInput) -> np.ndarray:
        """Channel weights `[C]`, or per-position weights `[h, w, C]`."""
        raise NotImplementedError

    def signed_map(self, x: CamInput) -> np.ndarray:
        """The weighted sum before the ReLU, `[h, w]`."""
        return (x.features * self.weights(x)).sum(axis=-1, dtype=np.float32)

    def compute(self, x: CamInput, size: tuple[int, int]) -> CamResult:
        """Map in [0, 1] at `size` = (rows, cols) and its raw peak.

        A map whose positive part is negligible next to its negative part is returned
        empty rather than stretched into a false hot spot.
        """
        signed = self.signed_map(x).astype(np.float32)
        peak = float(signed.max())
        strongest = float(np.abs(signed).max())
        if peak <= 0 or peak < EMPTY_RATIO * strongest:
            return CamResult(np.zeros_like(signed), max(peak, 0.0), self.name, size, signed=signed)
        return CamResult(np.maximum(signed, 0) / peak, peak, self.name, size, signed=signed)


class GradCAM(CamMethod):
    """Grad-CAM (Selvaraju et al. 2017): weight = spatial mean of the gradient."""

    name, label = "gradcam", "Grad-CAM"

    def weights(self, x: CamInput) -> np.ndarray:
        return x.gradients.mean(axis=(0, 1))


class GradCAMPlusPlus(CamMethod):
    """Grad-CAM++ (Chattopadhay et al. 2018): positive gradients weighted by alpha_ij."""

    name, label = "gradcampp", "Grad-CAM++"

    def weights(self, x: CamInput) -> np.ndarray:
        g2, g3 = x.gradients ** 2, x.gradients ** 3
        total = x.features.sum(axis=(0, 1))
        denom = 2 * g2 + total * g3
        alpha = np.where(x.gradients != 0, g2 / np.where(denom != 0, denom, 1e-7), 0)
        return (np.maximum(x.gradients, 0) * alpha).sum(axis=(0, 1))


class XGradCAM(CamMethod):
    """XGrad-CAM (Fu et al. 2020): gradients weighted by the normalised activations."""

    name, label = "xgradcam", "XGrad-CAM"

    def weights(self, x: CamInput) -> np.ndarray:
        total = x.features.sum(axis=(0, 1))
        return (x.gradients * x.features).sum(axis=(0, 1)) / (total + 1e-7)


class LayerCAM(CamMethod):
    """Layer-CAM (Jiang et al. 2021): per-position weight = ReLU(gradient)."""

    name, label = "layercam", "Layer-CAM"

    def weights(self, x: CamInput) -> np.ndarray:
        return np.maximum(x.gradients, 0)


class EigenCAM(CamMethod):
    """Eigen-CAM (Muhammad & Yeasin 2020): first principal component of the activations; no gradients.

    It does not depend on the target class; the component's sign is chosen so that it agrees
    with the activations on the whole.
    """

    name, label = "eigencam", "Eigen-CAM"
    class_specific = False

    def signed_map(self, x: CamInput) -> np.ndarray:
        h, w, c = x.features.shape
        flat = x.features.reshape(h * w, c).astype(np.float64)
        centered = flat - flat.mean(axis=0)
        # First right-singular vector v of `centered` from the small (h*w x h*w) Gram matrix: v = centered^T u / s.
        values, vectors = np.linalg.eigh(centered @ centered.T)
        if values[-1] <= 0:
            return np.zeros((h, w), np.float32)
        projection = (flat @ (centered.T @ vectors[:, -1]) / np.sqrt(values[-1])).reshape(h, w)
        return (projection if projection.sum() >= 0 else -projection).astype(np.float32)


class ScoreCAM(CamMethod):
    """Score-CAM (Wang et al. 2020): weight = target probability of the input masked by each map.

    Cost: one forward pass per channel used; only the `channels` most active ones are
    (default 32, in batches), so it costs about 32 inferences.
    """

    name, label = "scorecam", "Score-CAM"
    costly = True

    def __init__(self, channels: int = 32) -> None:
        self.channels = channels

    def weights(self, x: CamInput) -> np.ndarray:
        if x.image is None or x.score is None:
            raise ValueError("Score-CAM needs the model input and a scoring function")
        h_in, w_in = x.image.shape[1:3]
        c = x.features.shape[-1]
        top = np.argsort(x.features.mean(axis=(0, 1)))[::-1][: min(self.channels, c)]
        masks = []
        for ch in top:
            up = cv2.resize(x.features[:, :, ch].astype(np.float32), (w_in, h_in), interpolation=cv2.INTER_LINEAR)
            span = up.max() - up.min()
            masks.append((up - up.min()) / span if span > 0 else np.zeros_like(up))
        masked = x.image * np.stack(masks)[..., None]
        weights = np.zeros(c, np.float32)
        weights[top] = x.score(masked.astype(np.float32))
        return weights


class Occlusion(CamMethod):
    """Occlusion (Zeiler & Fergus 2014): the drop of the target logit when a patch is covered by the card's mean
    normal film, on a 14 x 14 grid (32-px patches, 16-px stride at 224 px; `every` = 2: every other patch, the
    first picture). Uses only the scoring function, so it works on any contract model; about 1 + 144 inferences at
    224 px with a 9 % border (36 of them for the first picture, which the final map reuses). The border ring is
    empty in the map and in the drawing. See core.analysis.perturbation.
    """

    name, label = "occlusion", "Occlusion"
    costly = True

    def __init__(self, cells: int = CELLS, every: int = 1) -> None:
        self.cells, self.every = cells, every

    def signed_map(self, x: CamInput) -> np.ndarray:
        if x.image is None or x.score is None:
            raise ValueError("Occlusion needs the model input and a scoring function")
        return occlusion_map(x.image, x.score, x.border, self.cells, cancelled=x.cancelled, fill=x.fill,
                             every=self.every, known=x.known)

    def compute(self, x: CamInput, size: tuple[int, int]) -> CamResult:
        return replace(super().compute(x, size), border=x.border, draws_against=True, cells=self.cells,
                       first=self.every > 1)


METHODS: dict[str, type[CamMethod]] = {
    cls.name: cls for cls in (GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, EigenCAM, ScoreCAM, Occlusion)
}
DEFAULT_METHOD = "occlusion"
"""The method shown unless the user picks another: the most faithful one within the time budget on validation
(benchmarks/faithfulness.py; figures in models/README.md and each shipped card's `faithfulness`)."""
