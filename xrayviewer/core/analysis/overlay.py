"""Heatmap overlays at full resolution: colormaps, opacity, a heat floor (`threshold`), contours, a colorbar.

Everything here works on the CAM map already computed, so changing the style never
re-runs the model. Arrays are RGB.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from xrayviewer.core.analysis.cam import CamResult
from xrayviewer.core.errors import OutputError

COLORMAPS = {
    "jet": cv2.COLORMAP_JET, "turbo": cv2.COLORMAP_TURBO, "viridis": cv2.COLORMAP_VIRIDIS,
    "inferno": cv2.COLORMAP_INFERNO, "magma": cv2.COLORMAP_MAGMA, "plasma": cv2.COLORMAP_PLASMA,
    "hot": cv2.COLORMAP_HOT, "cividis": cv2.COLORMAP_CIVIDIS, "parula": cv2.COLORMAP_PARULA,
    "bone": cv2.COLORMAP_BONE, "rainbow": cv2.COLORMAP_RAINBOW,
}
CONTOUR_LEVELS = (0.25, 0.5, 0.75)
AGAINST_LEVELS = (0.25, 0.5)  # iso-lines of the evidence against the target, on the heat's scale
AGAINST_COLOR = (0, 230, 255)  # cyan: apart from every colormap's hot end
FLOOR_RAMP = 0.15  # the heat fades in over this much of the scale above the floor


@dataclass(frozen=True)
class OverlayStyle:
    colormap: str = "jet"
    opacity: float = 0.4  # 0 (film only) .. 1 (heatmap only)
    threshold: float = 0.2  # the heat floor: map values below this are transparent (not the decision threshold)
    contours: bool = False
    visible: bool = True


@lru_cache(maxsize=None)
def colormap_lut(name: str) -> np.ndarray:
    """256 x 1 x 3 uint8 RGB lookup table of an OpenCV colormap."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap '{name}'; choose one of {', '.join(COLORMAPS)}")
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), COLORMAPS[name])
    return np.ascontiguousarray(bgr[:, :, ::-1])


def heat_index(cam_map: np.ndarray) -> np.ndarray:
    """CAM map in [0, 1] -> uint8 0..255, the form every style change starts from."""
    return cv2.convertScaleAbs(cam_map, alpha=255.0)


def as_rgb(display: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(display, cv2.COLOR_GRAY2RGB) if display.ndim == 2 else display


class HeatLayer:
    """A map's coloured layer in one style, made once; laying it over the film again (after a window/level
    change) is two 8-bit multiplies and an add on the coloured part: a few ms at 2k instead of recolouring.

    The heat floor is soft: a map value at the floor is transparent and the colour reaches the chosen opacity
    `FLOOR_RAMP` above it, so no hard cut edge is drawn. Only the bounding box of the map above the floor is
    coloured and blended: outside it the film shows. `against` (same scale, same size, or None) is the evidence
    against the target, drawn as dashed cyan iso-lines so it reads apart from the heat.
    """

    def __init__(self, heat: np.ndarray, style: OverlayStyle, against: np.ndarray | None = None) -> None:
        self.heat, self.style, self.against = heat, style, against
        self.opacity = float(np.clip(style.opacity, 0, 1))
        self.shown = style.visible and self.opacity > 0
        self.box = (0, 0, 0, 0)  # x, y, width, height of the coloured part
        self.keep = self.colored = self.lines = None
        if not self.shown:
            return
        cutoff = int(np.ceil(np.clip(style.threshold, 0, 1) * 255))
        above = cv2.threshold(heat, cutoff, 255, cv2.THRESH_BINARY)[1]
        self.box = cv2.boundingRect(above)
        x, y, w, h = self.box
        if w and h:  # (OpenCV fails hard on an empty array: nothing above the floor colours nothing)
            part = heat[y:y + h, x:x + w]
            ramp = max(1.0, FLOOR_RAMP * 255)
            alpha = np.clip((part.astype(np.float32) - cutoff) * (self.opacity * 255 / ramp), 0, self.opacity * 255)
            alpha3 = cv2.merge([alpha.astype(np.uint8)] * 3)
            colored = cv2.applyColorMap(part, colormap_lut(style.colormap))
            self.colored = cv2.multiply(colored, alpha3, scale=1 / 255)  # premultiplied by its alpha
            self.keep = cv2.bitwise_not(alpha3)  # how much of the film shows through, 0..255
        if style.contours or against is not None:
            self.lines = np.zeros(heat.shape + (3,), np.uint8)
            if style.contours:
                draw_contours(self.lines, heat)
            if against is not None:
                draw_contours(self.lines, against, AGAINST_LEVELS, AGAINST_COLOR, dashed=True)

    def matches(self, heat: np.ndarray, style: OverlayStyle, against: np.ndarray | None = None) -> bool:
        """Whether this layer was made from this very map and style."""
        return heat is self.heat and against is self.against and style == self.style

    def over(self, display: np.ndarray) -> np.ndarray:
        """The film (gray or RGB uint8, the map's size) with this layer laid over it, RGB."""
        base = as_rgb(display)
        out = base.copy() if base is display else base  # as_rgb made a new array from a gray film
        x, y, w, h = self.box
        if self.colored is not None:
            film = cv2.multiply(base[y:y + h, x:x + w], self.keep, scale=1 / 255)
            out[y:y + h, x:x + w] = cv2.add(film, self.colored)
        if self.lines is not None:
            cv2.max(out, self.lines, dst=out)  # iso-lines; anti-aliased edges lighten
        return out


def composite(display: np.ndarray, heat: np.ndarray, style: OverlayStyle,
              against: np.ndarray | None = None) -> np.ndarray:
    """The film (gray or RGB uint8) with the heatmap (`heat_index` output, same size) laid over it, and the
    evidence against the target as dashed lines when given."""
    return HeatLayer(heat, style, against).over(display)


def cam_overlay(display: np.ndarray, cam: CamResult | None, style: OverlayStyle) -> np.ndarray:
    """The film with a result's heatmap and its evidence against the target (the film alone when no map)."""
    return as_rgb(display) if cam is None else composite(display, cam.heat, style, cam.against_heat)


def draw_contours(image: np.ndarray, heat: np.ndarray, levels: tuple[float, ...] = CONTOUR_LEVELS,
                  color: tuple[int, int, int] = (255, 255, 255), dashed: bool = False) -> None:
    """Draw iso-lines of the map at `levels` onto `image`, in place (thicker for higher levels; `dashed`: every
    other stretch of each line left out).

    The lines are traced on a copy of the map at most 512 px wide (the map is smooth) and scaled up.
    """
    factor = max(1, int(np.ceil(max(heat.shape) / 512)))
    small = heat[::factor, ::factor]
    thickness = max(1, round(max(image.shape[:2]) / 600))
    dash = max(4, round(max(image.shape[:2]) / 80))  # px per stretch
    for i, level in enumerate(levels):
        mask = (small >= round(level * 255)).astype(np.uint8)
        # dashes are cut by point count, so a dashed line keeps every point; a solid one only its corners
        lines, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE if dashed else cv2.CHAIN_APPROX_SIMPLE)
        scaled = [line * factor + factor // 2 for line in lines]
        if dashed:
            step = max(2, dash // factor)
            scaled = [line[k:k + step] for line in scaled for k in range(0, len(line), 2 * step)]
            cv2.polylines(image, scaled, False, color, thickness + i, lineType=cv2.LINE_AA)
        else:
            cv2.drawContours(image, scaled, -1, color, thickness + i, lineType=cv2.LINE_AA)


def colorbar(colormap: str, length: int = 256, thickness: int = 16, vertical: bool = True) -> np.ndarray:
    """A colorbar image, high values at the top (vertical) or right (horizontal)."""
    ramp = np.linspace(255, 0, length).astype(np.uint8) if vertical else np.linspace(0, 255, length).astype(np.uint8)
    strip = ramp.reshape(-1, 1) if vertical else ramp.reshape(1, -1)
    strip = np.repeat(strip, thickness, axis=1 if vertical else 0)
    return cv2.applyColorMap(np.ascontiguousarray(strip), colormap_lut(colormap))


def save_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB (or gray) uint8 array as PNG, atomically: a temporary file in the same folder, then a rename,
    so that a failure (full disk, no permission) never leaves a truncated PNG nor spoils an earlier one."""
    path = Path(path)
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, data = cv2.imencode(".png", image)  # encoded in memory, so that any path (non-ASCII on Windows) works
    if not ok:
        raise OutputError(path, "cannot write PNG", "the image could not be encoded")
    temporary = None
    try:
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.part"
        with open(temporary, "xb") as f:  # new file, the usual permissions (umask)
            f.write(data.tobytes())
        os.replace(temporary, path)
    except OSError as exc:
        if temporary is not None:
            with contextlib.suppress(OSError):  # not made, or on a read-only file system (EROFS, not ENOENT)
                temporary.unlink()
        raise OutputError(path, "cannot write PNG", exc.strerror or str(exc),
                          "Choose another folder, or check its permissions and free space.") from None
