"""Draw the application icon (installer/xrayviewer.ico): a dark film with two lungs and a warm heat spot.

Run once by hand when the icon should change; the build scripts use the committed .ico file.
Needs numpy, OpenCV and Pillow (Pillow writes the multi-size .ico), e.g. in a temporary venv:

    python3 -m venv /tmp/iconenv && /tmp/iconenv/bin/pip install numpy opencv-python-headless pillow
    /tmp/iconenv/bin/python installer/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SIZE = 256
SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (256, 256)]
OUT = Path(__file__).resolve().parent / "xrayviewer.ico"


def draw(size: int = SIZE) -> np.ndarray:
    """RGBA picture, drawn 4x larger and shrunk for smooth edges."""
    s = size * 4
    bgr = np.zeros((s, s, 3), np.uint8)
    alpha = np.zeros((s, s), np.uint8)
    radius = s // 7
    # rounded square: the film
    cv2.rectangle(alpha, (radius, 0), (s - radius, s), 255, -1)
    cv2.rectangle(alpha, (0, radius), (s, s - radius), 255, -1)
    for cx, cy in [(radius, radius), (s - radius, radius), (radius, s - radius), (s - radius, s - radius)]:
        cv2.circle(alpha, (cx, cy), radius, 255, -1)
    bgr[:] = (48, 40, 34)
    # lungs: two bright ellipses, a spine between them
    lungs = np.zeros((s, s), np.uint8)
    cv2.ellipse(lungs, (int(s * 0.33), int(s * 0.52)), (int(s * 0.15), int(s * 0.31)), 8, 0, 360, 255, -1)
    cv2.ellipse(lungs, (int(s * 0.67), int(s * 0.52)), (int(s * 0.15), int(s * 0.31)), -8, 0, 360, 255, -1)
    lungs = cv2.GaussianBlur(lungs, (0, 0), s * 0.02)
    shade = (lungs.astype(np.float32) / 255.0)[..., None]
    bgr = (bgr * (1 - shade) + np.array([225, 222, 215], np.float32) * shade).astype(np.uint8)
    cv2.rectangle(bgr, (int(s * 0.47), int(s * 0.16)), (int(s * 0.53), int(s * 0.9)), (235, 235, 235), -1)
    # heat spot: the AI's attention over the right lower lobe
    heat = np.zeros((s, s), np.float32)
    cv2.circle(heat, (int(s * 0.68), int(s * 0.62)), int(s * 0.11), 1.0, -1)
    heat = cv2.GaussianBlur(heat, (0, 0), s * 0.05)
    heat = heat / heat.max()
    colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    a = (heat * 0.8)[..., None]
    bgr = (bgr * (1 - a) + colored * a).astype(np.uint8)
    rgba = np.dstack([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), alpha])
    return cv2.resize(rgba, (size, size), interpolation=cv2.INTER_AREA)


def main() -> None:
    Image.fromarray(draw(), "RGBA").save(OUT, format="ICO", sizes=SIZES)
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
