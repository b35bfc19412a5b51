"""Occlusion maps: how much the target's logit falls when a patch of the model input is covered (NumPy + OpenCV).

Model-agnostic: only a scoring function (batch of model inputs -> target probability) is used, so it works on
any contract model. A covered patch shows what a normal film looks like there: the mean NORMAL film of the
model's training split, which the card carries (`occlusion_fill`, made by converters.normal_fill), so a patch's
drop is the evidence for the target that a normal chest would not hold. On validation this ranks evidence far
better than covering with the film's own local mean (models/README.md); a card without a fill gets the local
mean (a Gaussian blur of the interior whose sigma is the stride), never a flat grey patch, which these models
read as evidence (they call a flat or fully blurred film pneumonia).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from xrayviewer.core.errors import Cancelled

CELLS = 14  # the map's grid on each side: 16-px stride and 32-px patches at 224 px
FIRST_EVERY = 2  # the first picture scores every other patch of the final grid: a quarter of its inferences
BATCH = 8  # occluded inputs per call of the scoring function: a cancel is seen within one run of 8
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


def patches(shape: tuple[int, int], cells: int, box: tuple[int, int, int, int],
            every: int = 1) -> tuple[tuple[int, int], list]:
    """The grid's stride (sy, sx) and, for each grid cell whose centre is inside `box`, the patch centred on the
    cell (the cell and half a stride around it: 32 px at a 16-px stride) clipped to `box`, as (y0, y1, x0, x1).
    `every` = 2: every other cell in both directions, from the first inside `box` (the patches then tile the box:
    a first picture made of a quarter of the final map's patches)."""
    h, w = shape
    sy, sx = max(1, round(h / cells)), max(1, round(w / cells))
    by0, by1, bx0, bx1 = box
    cells_in = [(y // sy, x // sx, (max(by0, y - sy // 2), min(by1, y + sy + sy // 2),
                                   max(bx0, x - sx // 2), min(bx1, x + sx + sx // 2)))
                for y in range(0, h, sy) for x in range(0, w, sx)
                if by0 <= y + sy / 2 < by1 and bx0 <= x + sx / 2 < bx1]
    if not cells_in:
        return (sy, sx), []
    r0, c0 = min(r for r, _, _ in cells_in), min(c for _, c, _ in cells_in)
    return (sy, sx), [b for r, c, b in cells_in if (r - r0) % every == 0 and (c - c0) % every == 0]


def occlusion_map(image: np.ndarray, score: Callable[[np.ndarray], np.ndarray], border: float = 0.0,
                  cells: int = CELLS, batch: int = BATCH, cancelled: Callable[[], bool] | None = None,
                  fill: np.ndarray | None = None, every: int = 1, known: dict | None = None) -> np.ndarray:
    """Signed map `[ceil(H/sy), ceil(W/sx)]` of the target-logit drop when a patch is covered, per pixel averaged
    over the patches covering it: positive where the film holds evidence for the target, negative where it holds
    evidence against it, 0 in the card's border ring (no patch is centred there, and none reaches into it).

    `image`: the model input `[1, H, W, C]`; `score`: batch `[N, H, W, C]` -> target probability `[N]`; `fill`: what
    covers a patch, a model input `[H, W, C]` (None: the film's local mean); `every`: see `patches`; `known`: the
    drops of patches already scored for this very input, target and fill (box -> drop, and "base"), read and
    added to, so that the final map scores only the patches its first picture left out.
    Costs 1 + (interior cells) inferences, in runs of `batch`; raises `Cancelled` between runs once `cancelled()`.
    """
    known = {} if known is None else known
    x = image[0].astype(np.float32)
    shape = x.shape[:2]
    box = interior(shape, border)
    (sy, sx), boxes = patches(shape, cells, box, every)
    fill = local_mean(x, box, float(max(sy, sx))) if fill is None else fill.astype(np.float32)
    if "base" not in known:
        known["base"] = float(logit(score(image.astype(np.float32)))[0])
    todo = [b for b in boxes if b not in known]
    for start in range(0, len(todo), batch):
        if cancelled is not None and cancelled():
            raise Cancelled
        chunk = todo[start:start + batch]
        covered = np.repeat(x[None], len(chunk), axis=0)
        for k, (y0, y1, x0, x1) in enumerate(chunk):
            covered[k, y0:y1, x0:x1] = fill[y0:y1, x0:x1]
        known.update(zip(chunk, (known["base"] - logit(score(covered))).tolist()))
    total = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.float64)
    for y0, y1, x0, x1 in boxes:
        total[y0:y1, x0:x1] += known[(y0, y1, x0, x1)]
        count[y0:y1, x0:x1] += 1
    per_pixel = np.where(count > 0, total / np.maximum(count, 1), 0).astype(np.float32)
    grid = (-(-shape[0] // sy), -(-shape[1] // sx))
    return cv2.resize(per_pixel, (grid[1], grid[0]), interpolation=cv2.INTER_AREA)
