"""Training augmentation (recipe v2) and the fixed perturbations of the shifted validation.

Both work on uint8 gray films `[H, W]` at the model's input size, before the border is blanked.
The training ranges are random; the shifted validation uses fixed, seeded and mostly stronger
versions of acquisition changes a model meets outside its training folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

Perturb = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _affine(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random resized crop (zoom 0.95-1.3, aspect 0.87-1.15), rotation +-10 deg, shear +-0.08, shift +-6 %."""
    size = gray.shape[0]
    zoom = rng.uniform(0.95, 1.3)
    aspect = np.exp(rng.uniform(-0.14, 0.14))
    angle = np.deg2rad(rng.uniform(-10, 10))
    shear = rng.uniform(-0.08, 0.08)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lin = rot @ np.array([[1, shear], [0, 1]]) @ np.diag([zoom * aspect, zoom / aspect])
    centre = np.array([size / 2, size / 2])
    shift = rng.uniform(-0.06, 0.06, 2) * size
    m = np.hstack([lin, (centre - lin @ centre + shift)[:, None]])
    return cv2.warpAffine(gray, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def _levels(gray: np.ndarray, gain: float, bias: float, gamma: float) -> np.ndarray:
    """Contrast `gain` about the mean, exposure `bias` in gray levels, then `gamma`, clipped to uint8."""
    x = gray.astype(np.float32)
    mean = x.mean()
    x = np.clip((x - mean) * gain + mean + bias, 0, 255) / 255.0
    return np.clip(255.0 * x ** gamma + 0.5, 0, 255).astype(np.uint8)


def _blur(gray: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(gray, (0, 0), sigma)


def _sharpen(gray: np.ndarray, amount: float) -> np.ndarray:
    return cv2.addWeighted(gray, 1 + amount, cv2.GaussianBlur(gray, (0, 0), 1.5), -amount, 0)


def _noise(gray: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(gray + rng.normal(0, sigma, gray.shape), 0, 255).astype(np.uint8)


def _jpeg(gray: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else gray


def _resample(gray: np.ndarray, factor: float) -> np.ndarray:
    size = gray.shape[0]
    small = cv2.resize(gray, (max(8, int(size * factor)),) * 2, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def _marker(gray: np.ndarray, rng: np.random.Generator, corner: bool) -> np.ndarray:
    """A side-marker letter, white or black, in a corner or anywhere."""
    size = gray.shape[0]
    out = gray.copy()
    scale = size / 224 * rng.uniform(0.6, 1.2)
    if corner:
        x = int(rng.choice([0.03, 0.85]) * size)
        y = int(rng.choice([0.1, 0.95]) * size)
    else:
        x, y = (int(v) for v in rng.uniform(0.05, 0.9, 2) * size)
    colour = 255 if rng.random() < 0.8 else 0
    cv2.putText(out, str(rng.choice(["L", "R", "AP", "PA"])), (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour,
                max(1, int(2 * scale)), cv2.LINE_AA)
    return out


def _erase(gray: np.ndarray, rng: np.random.Generator, at_corner: bool) -> np.ndarray:
    """One rectangle of a random flat gray or noise; `at_corner` anchors it to a corner or an edge."""
    size = gray.shape[0]
    out = gray.copy()
    h, w = (int(v) for v in rng.uniform(0.08, 0.3, 2) * size)
    if at_corner:
        y = 0 if rng.random() < 0.5 else size - h
        x = 0 if rng.random() < 0.5 else size - w
        if rng.random() < 0.4:  # an edge strip instead of a corner
            x = int(rng.uniform(0, size - w))
    else:
        y, x = int(rng.uniform(0, size - h)), int(rng.uniform(0, size - w))
    if rng.random() < 0.5:
        out[y:y + h, x:x + w] = int(rng.integers(0, 256))
    else:
        out[y:y + h, x:x + w] = rng.integers(0, 256, (h, w), dtype=np.uint8)
    return out


@dataclass(frozen=True)
class Strength:
    """How hard a recipe shifts acquisition: its contrast and gamma draws, and the odds and ranges of blur,
    sharpening and noise (geometry, JPEG, markers and erasing are the same in every recipe)."""

    contrast: Callable[[np.random.Generator], float]
    gamma: Callable[[np.random.Generator], float]
    gamma_odds: float
    blur_odds: float
    blur_sd: tuple[float, float]
    sharpen_odds: float  # counted on top of blur_odds
    noise_odds: float
    noise_sd: tuple[float, float]


V2 = Strength(contrast=lambda rng: rng.uniform(0.7, 1.35), gamma=lambda rng: float(np.exp(rng.uniform(-0.35, 0.35))),
              gamma_odds=0.6, blur_odds=0.25, blur_sd=(0.4, 1.6), sharpen_odds=0.15, noise_odds=0.3,
              noise_sd=(2, 10))
V3 = Strength(contrast=lambda rng: float(np.exp(rng.uniform(np.log(0.3), np.log(1.35)))),
              gamma=lambda rng: float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))),
              gamma_odds=0.7, blur_odds=0.3, blur_sd=(0.3, 1.5), sharpen_odds=0.15, noise_odds=0.4,
              noise_sd=(2, 14))


def augmented(gray: np.ndarray, rng: np.random.Generator, strength: Strength) -> np.ndarray:
    """Geometry, exposure/contrast/gamma, blur or sharpen, noise, JPEG, markers, random erasing, at `strength`."""
    out = _affine(gray, rng)
    out = _levels(out, strength.contrast(rng), rng.uniform(-30, 30),
                  strength.gamma(rng) if rng.random() < strength.gamma_odds else 1.0)
    r = rng.random()
    if r < strength.blur_odds:
        out = _blur(out, rng.uniform(*strength.blur_sd))
    elif r < strength.blur_odds + strength.sharpen_odds:
        out = _sharpen(out, rng.uniform(0.3, 1.5))
    if rng.random() < strength.noise_odds:
        out = _noise(out, rng.uniform(*strength.noise_sd), rng)
    if rng.random() < 0.3:
        out = _jpeg(out, int(rng.integers(25, 95)))
    if rng.random() < 0.25:
        out = _marker(out, rng, corner=rng.random() < 0.5)
    if rng.random() < 0.5:
        out = _erase(out, rng, at_corner=rng.random() < 0.5)
    return out


def augment(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Recipe v2: geometry, exposure/contrast/gamma, blur or sharpen, noise, JPEG, markers, random erasing.

    No horizontal flips: a chest film is not left-right symmetric (heart, aortic knob, gastric
    bubble, side markers), and mirrored films would teach anatomy that never occurs.
    """
    return augmented(gray, rng, V2)


def augment_v3(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Recipe v3: v2 with stronger acquisition shift: contrast 0.3-1.35, gamma 0.6-1.6, noise sd 2-14, blur sd <= 1.5.

    Meant for models whose card normalises the intensity (percentile stretch): the stretch undoes most of a
    contrast change, so what the model must learn is the coarser quantisation and the amplified noise of faint
    films, and the gamma, blur and noise that no linear stretch removes.
    """
    return augmented(gray, rng, V3)


def _corner_block(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = gray.copy()
    size = gray.shape[0]
    k = int(0.18 * size)
    y = 0 if rng.random() < 0.5 else size - k
    x = 0 if rng.random() < 0.5 else size - k
    out[y:y + k, x:x + k] = 255 if rng.random() < 0.5 else 0
    return out


def _crop(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = gray.shape[0]
    k = int(size * 0.82)
    y, x = (int(v) for v in rng.integers(0, size - k + 1, 2))
    return cv2.resize(gray[y:y + k, x:x + k], (size, size), interpolation=cv2.INTER_LINEAR)


# name -> fixed perturbation (seeded by the caller); the shifted validation applies each to every val film
PERTURBATIONS: dict[str, Perturb] = {
    "brighter": lambda g, r: _levels(g, 1.0, 40, 1.0),
    "darker": lambda g, r: _levels(g, 1.0, -40, 1.0),
    "low_contrast": lambda g, r: _levels(g, 0.6, 0, 1.0),
    "high_contrast": lambda g, r: _levels(g, 1.5, 0, 1.0),
    "gamma_0.6": lambda g, r: _levels(g, 1.0, 0, 0.6),
    "gamma_1.7": lambda g, r: _levels(g, 1.0, 0, 1.7),
    "blur": lambda g, r: _blur(g, 2.0),
    "noise": lambda g, r: _noise(g, 12, r),
    "resample_0.4": lambda g, r: _resample(g, 0.4),
    "jpeg_15": lambda g, r: _jpeg(g, 15),
    "crop_0.82": _crop,
    "corner_block": _corner_block,
    "marker": lambda g, r: _marker(g, r, corner=True),
}


# issue 25's acquisition shifts (the exposure goals: false positives, sensitivity and refusals against clean films)
EXPOSURE_SHIFTS: dict[str, Perturb] = {
    "contrast_0.5": lambda g, r: _levels(g, 0.5, 0, 1.0),
    "contrast_0.3": lambda g, r: _levels(g, 0.3, 0, 1.0),
    "gamma_0.7": lambda g, r: _levels(g, 1.0, 0, 0.7),
    "gamma_1.5": lambda g, r: _levels(g, 1.0, 0, 1.5),
    "noise_12": lambda g, r: _noise(g, 12, r),
    "blur_1.5": lambda g, r: _blur(g, 1.5),
}


def shifted(images: np.ndarray, seed: int = 7, kinds: list[str] | None = None,
            table: dict[str, Perturb] = PERTURBATIONS) -> dict[str, np.ndarray]:
    """Every film through every perturbation of `table` in `kinds` (default: all), seeded per film:
    kind -> `[N, H, W]`."""
    out = {}
    for kind in kinds or list(table):
        fn = table[kind]
        out[kind] = np.stack([fn(g, np.random.default_rng([seed, i])) for i, g in enumerate(images)])
    return out


def shifted_round_robin(images: np.ndarray, seed: int = 7) -> np.ndarray:
    """One perturbation per film, kinds taken in turn: a shifted set as cheap to score as the plain one."""
    kinds = list(PERTURBATIONS)
    return np.stack([PERTURBATIONS[kinds[i % len(kinds)]](g, np.random.default_rng([seed, i]))
                     for i, g in enumerate(images)])
