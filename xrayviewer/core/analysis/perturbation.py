"""Occlusion maps: how much the target's logit falls when a patch of the model input is covered (NumPy + OpenCV).

Model-agnostic: only a scoring function (batch of model inputs -> target probability) is used, so it works on
any contract model. The covered patch is filled with the *local mean* of the film (a Gaussian blur of the
interior whose sigma is half the patch): it removes the texture and opacities under the patch but keeps the
local brightness, so it adds no grey square, hard edge or black hole for the model to read as evidence. A flat
grey patch would (these models call a flat or fully blurred film pneumonia); a normal-film donor is not at hand
for one film in the viewer, and `benchmarks/faithfulness.py` uses donors for its deletion test, so the map is
not graded by the perturbation that made it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

CELLS = 14  # the map's grid on each side: 16-px stride and 32-px patches at 224 px
COARSE_CELLS = 7  # a fast first picture: 32-px stride, 64-px patches
BATCH = 32  # occluded inputs per ONNX Runtime run
EPS = 1e-7


def interior(shape: tuple[int, int], border: float) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of what the model sees: the input less the card's blanked ring."""
    h, w = shape
    mh, mw = int(round(h * border)), int(round(w * border))
    return mh, h - mh, mw, w - mw


def local_mean(image: np.ndarray, box: tuple[int, int, int, int], sigma: float) -> np.ndarray:
    """`image` [H, W, C] blurred inside `box` from the box's own pixels only (the blank ring does not bleed in)."""
    y0, y1, x0, x1 = box
    inside = np.zeros(image.shape[:2], np.float32)
    inside[y0:y1, x0:x1] = 1
    blurred = cv2.GaussianBlur(image * inside[..., None], (0, 0), sigma)
    weight = cv2.GaussianBlur(inside, (0, 0), sigma)
    return (blurred.reshape(image.shape) / np.maximum(weight, EPS)[..., None]).astype(np.float32)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def patches(shape: tuple[int, int], cells: int, box: tuple[int, int, int, int]) -> tuple[tuple[int, int], list]:
    """The grid's stride (sy, sx) and, for each grid cell whose centre is inside `box`, the patch centred on the
    cell (the cell and half a stride around it: 32 px at a 16-px stride) clipped to `box`, as (y0, y1, x0, x1)."""
    h, w = shape
    sy, sx = max(1, round(h / cells)), max(1, round(w / cells))
    by0, by1, bx0, bx1 = box
    out = []
    for y in range(0, h, sy):
        for x in range(0, w, sx):
            if by0 <= y + sy / 2 < by1 and bx0 <= x + sx / 2 < bx1:
                out.append((max(by0, y - sy // 2), min(by1, y + sy + sy // 2),
                            max(bx0, x - sx // 2), min(bx1, x + sx + sx // 2)))
    return (sy, sx), out


def occlusion_map(image: np.ndarray, score: Callable[[np.ndarray], np.ndarray], border: float = 0.0,
                  cells: int = CELLS, batch: int = BATCH) -> np.ndarray:
    """Signed map `[ceil(H/sy), ceil(W/sx)]` of the target-logit drop when a patch is covered, per pixel averaged
    over the patches covering it: positive where the film holds evidence for the target, negative where it holds
    evidence against it, 0 in the card's border ring (no patch is centred there, and none reaches into it).

    `image`: the model input `[1, H, W, C]`; `score`: batch `[N, H, W, C]` -> target probability `[N]`.
    Costs 1 + (interior cells) inferences, in runs of `batch`.
    """
    x = image[0].astype(np.float32)
    shape = x.shape[:2]
    box = interior(shape, border)
    (sy, sx), boxes = patches(shape, cells, box)
    fill = local_mean(x, box, float(max(sy, sx)))
    base = float(logit(score(image.astype(np.float32)))[0])
    total = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.float64)
    for start in range(0, len(boxes), batch):
        chunk = boxes[start:start + batch]
        covered = np.repeat(x[None], len(chunk), axis=0)
        for k, (y0, y1, x0, x1) in enumerate(chunk):
            covered[k, y0:y1, x0:x1] = fill[y0:y1, x0:x1]
        drops = base - logit(score(covered))
        for drop, (y0, y1, x0, x1) in zip(drops, chunk):
            total[y0:y1, x0:x1] += drop
            count[y0:y1, x0:x1] += 1
    per_pixel = np.where(count > 0, total / np.maximum(count, 1), 0).astype(np.float32)
    grid = (-(-shape[0] // sy), -(-shape[1] // sx))
    return cv2.resize(per_pixel, (grid[1], grid[0]), interpolation=cv2.INTER_AREA)
